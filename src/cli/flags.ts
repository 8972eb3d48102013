import { UsageError } from '../config/experiment.js';
import { STAGE_NAMES, type StageName } from '../stages/stage.js';

/** A flag's value that must name a stage (--until, --force STAGE). */
export function stageName(flag: string, value: string | undefined): StageName | undefined {
  if (value === undefined) return undefined;
  if (!(STAGE_NAMES as readonly string[]).includes(value)) {
    throw new UsageError(`${flag} expects a stage name (${STAGE_NAMES.join(', ')}), got "${value}"`);
  }
  return value as StageName;
}
