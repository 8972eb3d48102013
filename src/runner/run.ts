import { copyFile, readFile, writeFile } from 'node:fs/promises';
import path from 'node:path';
import type { Metrics } from '../training/metrics.js';
import type { EpochRecord } from '../training/trained-head.js';
import { Cache, readEntryJson } from '../core/cache.js';
import { loadExperiments, type LoadedExperiment } from '../config/experiment.js';
import { UserError } from '../core/errors.js';
import { checkFolderOption } from '../core/system-errors.js';
import { planStages, runStages, stagesUntil, type StagesResult } from './pipeline.js';
import type { AnyStage, RunObserver, StageName } from '../stages/stage.js';
import type { Prediction } from '../inference/predictor.js';
import type { StepRenderer } from '../core/progress.js';

export interface RunRequest {
  /** The pipeline's stages in run order (src/stages' STAGES). */
  stages: AnyStage[];
  experiments: string[];
  sets: string[];
  cacheDir: string;
  runsDir: string;
  until?: StageName;
  force?: StageName | 'all';
  /** Names the run folder instead of the experiment file (one experiment only). */
  name?: string;
  /** A new run folder even when every stage is cached (see RunOptions.record). */
  record?: boolean;
  interactive: boolean;
  /** Draws the stages as they run (the CLI passes listr2's); default: plain lines. */
  renderer?: StepRenderer;
  /** Where progress goes instead of stderr. */
  stream?: NodeJS.WritableStream;
  signal?: AbortSignal;
  observer?: RunObserver;
}

/** A run's outcome: its stages, and once trained and evaluated, the backend and metrics (DESIGN §6). */
export interface RunResult extends StagesResult {
  backend?: string;
  metrics?: Metrics;
  /** TEXT's prediction, as the original prints at the end of a run. */
  prediction?: { text: string; probability: number; label: string };
}

export interface ExplainedStage {
  name: StageName;
  cached: boolean;
  key: string;
  reason: string;
}

/** Runs each experiment's stages (validating all of them first). */
export async function runExperiments(req: RunRequest): Promise<RunResult[]> {
  await checkFolderOption('--cache-dir', req.cacheDir);
  await checkFolderOption('--runs-dir', req.runsDir);
  const { until, force } = req;
  const loaded = loadExperiments(req.experiments, req.sets);
  if (req.name !== undefined) loaded[0].name = req.name;
  const all = req.stages;
  const results: RunResult[] = [];
  for (const experiment of loaded) {
    const selected = experiment.config.TRAIN ? all : await predictOnly(experiment, all, path.resolve(req.cacheDir));
    const stages = await runStages(experiment, selected, {
      cacheDir: path.resolve(req.cacheDir),
      runsDir: path.resolve(req.runsDir),
      until,
      force,
      interactive: req.interactive,
      stream: req.stream,
      renderer: req.renderer,
      signal: req.signal,
      observer: req.observer,
      record: req.record,
    });
    await recordIndex(experiment, all, req, stages);
    results.push(await recordOutcome(stages));
  }
  return results;
}

/**
 * Once the train stage is done, records in the cache which entries this experiment's head uses, so
 * `infer --config` finds it from the cache alone (after the dataset was moved). A failure to write it is
 * a warning: the run itself succeeded.
 */
async function recordIndex(experiment: LoadedExperiment, all: AnyStage[], req: RunRequest, result: StagesResult): Promise<void> {
  if (!result.stages.some((s) => s.name === 'train')) return;
  const { recordTrainedIndex } = await import('./trained-model.js');
  try {
    await recordTrainedIndex(experiment, all, req.cacheDir, Object.fromEntries(result.stages.map((s) => [s.name, s.path])));
  } catch (e) {
    (req.stream ?? process.stderr).write(`warning: could not record the trained head in the cache's index: ${(e as Error).message}\n`);
  }
}

/**
 * TRAIN: false only predicts TEXT with the head already trained for this config: every stage up to
 * train must come from the cache; evaluate is skipped.
 */
async function predictOnly(experiment: LoadedExperiment, all: AnyStage[], cacheDir: string): Promise<AnyStage[]> {
  const plan = await planStages(experiment, stagesUntil(all, 'train'), new Cache(cacheDir));
  if (!plan[plan.length - 1].entry) {
    throw new UserError(`${experiment.file}: TRAIN is false, but this config has no trained head yet (${plan[plan.length - 1].reason}); run it once with TRAIN: true (--set TRAIN=true)`);
  }
  return all.filter((s) => s.name !== 'evaluate');
}

/**
 * Puts the trained head's history and metrics into the run folder, with a report of learning curves,
 * and adds backend and metrics to the result (when the run went that far).
 */
async function recordOutcome(stages: StagesResult): Promise<RunResult> {
  const train = stages.stages.find((s) => s.name === 'train');
  const evaluate = stages.stages.find((s) => s.name === 'evaluate');
  const infer = stages.stages.find((s) => s.name === 'infer');
  // The infer stage's info is TEXT's prediction (InferInfo).
  const predicted = infer?.info as Partial<Prediction> | undefined;
  const prediction = predicted ? { text: String(predicted.text), probability: Number(predicted.probability), label: String(predicted.label) } : undefined;
  if (!train || !evaluate) return prediction ? { ...stages, prediction } : stages;
  const { HISTORY_FILE } = await import('../training/trained-head.js');
  const { METRICS_FILE } = await import('../training/metrics.js');
  const { writeReport } = await import('./report.js');
  const history = await readEntryJson<EpochRecord[]>(path.join(train.path, HISTORY_FILE));
  const metrics = await readEntryJson<Metrics>(path.join(evaluate.path, METRICS_FILE));
  const result: RunResult = { ...stages, backend: metrics.backend, metrics, ...(prediction && { prediction }) };
  // A reused run folder (every stage cached) already holds these, from the run that recorded it.
  if (stages.reused) return result;
  await copyFile(path.join(train.path, HISTORY_FILE), path.join(stages.run_dir, HISTORY_FILE));
  await writeFile(path.join(stages.run_dir, METRICS_FILE), JSON.stringify(metrics, null, 2));
  const configYaml = await readFile(path.join(stages.run_dir, 'config.yaml'), 'utf8').catch(() => undefined);
  await writeReport(stages.run_dir, stages.experiment, history, metrics, configYaml);
  await writeFile(path.join(stages.run_dir, 'run.json'), JSON.stringify(result, null, 2));
  return result;
}

/** For each stage: would it come from the cache, and if not, what changed. Runs nothing. */
export async function explainExperiments(req: RunRequest): Promise<{ experiment: string; stages: ExplainedStage[] }[]> {
  await checkFolderOption('--cache-dir', req.cacheDir);
  const { until, force } = req;
  const loaded = loadExperiments(req.experiments, req.sets);
  const selected = stagesUntil(req.stages, until);
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
