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

/**
 * `--force` may stand alone: give it the value `all` unless a stage name follows. A bare word after it
 * (no .yaml/.yml, no folder, not a flag) is a mistyped stage, not an experiment file: a usage error.
 */
export function bareForce(argv: string[]): string[] {
  return argv.flatMap((arg, i) => {
    if (arg !== '--force') return [arg];
    const next = argv[i + 1] ?? '';
    if ((STAGE_NAMES as readonly string[]).includes(next)) return [arg];
    if (/^[A-Za-z][\w-]*$/.test(next) && !/\.ya?ml$/i.test(next)) stageName('--force', next);
    return ['--force=all'];
  });
}
