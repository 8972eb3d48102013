import path from 'node:path';
import { Cache } from './cache.js';
import { loadExperiments } from './config.js';
import { UsageError } from './config.js';
import { planStages, runStages, stagesUntil, type RunResult } from './pipeline.js';
import { formatSeconds } from './progress.js';
import { STAGE_NAMES, type StageName } from './stage.js';

export interface RunRequest {
  experiments: string[];
  sets: string[];
  cacheDir: string;
  runsDir: string;
  until?: string;
  force?: string;
  interactive: boolean;
  signal?: AbortSignal;
}

export interface ExplainedStage {
  name: StageName;
  cached: boolean;
  key: string;
  reason: string;
}

function stageName(flag: string, value: string | undefined): StageName | undefined {
  if (value === undefined) return undefined;
  if (!(STAGE_NAMES as readonly string[]).includes(value)) {
    throw new UsageError(`${flag} expects a stage name (${STAGE_NAMES.join(', ')}), got "${value}"`);
  }
  return value as StageName;
}

async function stages() {
  return (await import('../stages/index.js')).STAGES;
}

/** Runs each experiment's stages (validating all of them first). */
export async function runExperiments(req: RunRequest): Promise<RunResult[]> {
  const until = stageName('--until', req.until);
  const force = req.force === 'all' ? 'all' : stageName('--force', req.force);
  const loaded = loadExperiments(req.experiments, req.sets);
  const all = await stages();
  const results: RunResult[] = [];
  for (const experiment of loaded) {
    results.push(
      await runStages(experiment, all, {
        cacheDir: path.resolve(req.cacheDir),
        runsDir: path.resolve(req.runsDir),
        until,
        force,
        interactive: req.interactive,
        signal: req.signal,
      }),
    );
  }
  return results;
}

/** For each stage: would it come from the cache, and if not, what changed. Runs nothing. */
export async function explainExperiments(req: RunRequest): Promise<{ experiment: string; stages: ExplainedStage[] }[]> {
  const until = stageName('--until', req.until);
  const force = req.force === 'all' ? 'all' : stageName('--force', req.force);
  const loaded = loadExperiments(req.experiments, req.sets);
  const selected = stagesUntil(await stages(), until);
  const cache = new Cache(path.resolve(req.cacheDir));
  const out = [];
  for (const experiment of loaded) {
    const plan = await planStages(experiment, selected, cache, force);
    out.push({
      experiment: experiment.name,
      stages: plan.map((p) => ({ name: p.stage.name, cached: p.entry !== undefined, key: p.key, reason: p.reason })),
    });
  }
  return out;
}

/** Plain-text summary of a run, for the terminal. */
export function formatRun(result: RunResult): string {
  const width = Math.max(...result.stages.map((s) => s.name.length));
  const lines = result.stages.map((s) => `  ${s.name.padEnd(width)}  ${s.cached ? 'cached  ' : 'computed'}  ${formatSeconds(s.seconds).padStart(6)}  ${s.path}`);
  return [`${result.experiment}: run folder ${result.run_dir}`, ...lines].join('\n');
}
