import path from 'node:path';
import { checkFolderOption } from '../core/system-errors.js';
import { createHash } from 'node:crypto';
import canonicalize from 'canonicalize';
import type { EpochRecord } from '../training/trained-head.js';
import type { Executor, TrialStatus } from './executor.js';
import { loadSweep, trialSets, type LoadedSweep } from './sweep-file.js';

/**
 * Names a sweep by what it runs (its trials' settings and its early stopping), so trials of the same
 * sweep share early-stopping rungs across processes and machines, and a changed sweep starts afresh.
 */
export function sweepIdOf(sweep: LoadedSweep): string {
  const identity = { base: sweep.baseFile, trials: sweep.trials.map((t) => [t.id, t.overrides]), early_stop: sweep.earlyStop ?? null };
  return createHash('sha256').update(canonicalize(identity) ?? '').digest('hex').slice(0, 16);
}

export interface SweepTrialResult {
  id: string;
  label: string;
  overrides: Record<string, unknown>;
  status: TrialStatus;
  run_dir?: string;
  metrics?: import('../training/metrics.js').Metrics;
  /** Epochs trained (in this sweep, or before it for a cached or resumed trial). */
  epochs: number;
  /** Those epochs' measures; the last one's valid loss ranks a stopped trial. */
  history: EpochRecord[];
  /** Why early stopping ended the trial. */
  stopped?: string;
  error?: string;
  seconds: number;
}

export interface SweepResult {
  sweep: string;
  sweep_dir: string;
  executor: string;
  /** How the trials were chosen, for a random search. */
  search?: LoadedSweep['search'];
  trials: SweepTrialResult[];
}

/** Finished trials by valid loss (best first), then stopped ones by their last epoch's valid loss, then the rest. */
export function byValidLoss(trials: SweepTrialResult[]): SweepTrialResult[] {
  const rank = (t: SweepTrialResult) => (t.status === 'done' ? 0 : t.status === 'stopped' ? 1 : 2);
  const loss = (t: SweepTrialResult) => (t.status === 'done' ? t.metrics?.valid.loss : t.history.at(-1)?.valid_loss) ?? Infinity;
  return [...trials].sort((a, b) => rank(a) - rank(b) || loss(a) - loss(b));
}

/**
 * Runs every trial through `executor` (stages shared through the cache, so data/tokenize/encode are
 * computed once for trials that share them; a rerun finishes completed trials from the cache), then
 * writes results.csv, results.json and comparison.html to a sweep folder.
 */
export async function runSweep(
  file: string,
  options: {
    cacheDir: string;
    runsDir: string;
    executor: Executor;
    onOutcome?: (trial: SweepTrialResult, done: number, total: number) => void;
    onEpoch?: (id: string, record: EpochRecord) => void;
    signal?: AbortSignal;
    /** `--set KEY=VALUE` overrides applied to every trial, last. */
    sets?: string[];
  },
): Promise<SweepResult> {
  const sweep = loadSweep(file, process.cwd(), options.sets ?? []);
  await checkFolderOption('--cache-dir', options.cacheDir);
  await checkFolderOption('--runs-dir', options.runsDir);
  const sweepDir = path.dirname(path.resolve(file));
  const jobs = sweep.trials.map((t) => ({
    id: t.id,
    name: `${sweep.name}/${t.id}`,
    experimentFile: sweep.baseFile,
    sets: trialSets(t, sweepDir),
    cacheDir: path.resolve(options.cacheDir),
    runsDir: path.resolve(options.runsDir),
  }));
  const toResult = (o: import('./executor.js').TrialOutcome): SweepTrialResult => {
    const trial = sweep.trials.find((t) => t.id === o.id)!;
    const epochs = o.epochs ?? [];
    return {
      id: o.id,
      label: trial.label,
      overrides: trial.overrides,
      status: o.status,
      run_dir: o.result?.run_dir,
      metrics: o.result?.metrics,
      epochs: epochs.length,
      history: epochs,
      ...(o.stopped && { stopped: o.stopped }),
      error: o.error,
      seconds: o.seconds,
    };
  };
  let done = 0;
  const outcomes = await options.executor.run(jobs, {
    onOutcome: (o) => options.onOutcome?.(toResult(o), ++done, jobs.length),
    onEpoch: options.onEpoch,
    earlyStop: sweep.earlyStop,
    sweepId: sweepIdOf(sweep),
    signal: options.signal,
  });
  const trials = outcomes.map(toResult);
  const { makeRunDir } = await import('./pipeline.js');
  const outDir = await makeRunDir(path.resolve(options.runsDir), path.join(sweep.name, 'sweeps'));
  const result: SweepResult = { sweep: sweep.name, sweep_dir: outDir, executor: options.executor.description, ...(sweep.search && { search: sweep.search }), trials };
  // Each trial's own output, to read why one failed.
  const { writeFile } = await import('node:fs/promises');
  for (const o of outcomes) if (o.stderr) await writeFile(path.join(outDir, `${o.id}.stderr.log`), o.stderr);
  await writeSweepResults(result);
  return result;
}

// CSV cells: empty where a measure is undefined (no metrics, or ROC-AUC with one class).
const pct = (x: number | null | undefined) => (x === null || x === undefined || !Number.isFinite(x) ? '' : x.toFixed(4));

async function writeSweepResults(result: SweepResult): Promise<void> {
  const { writeFile } = await import('node:fs/promises');
  const { stringify } = await import('csv-stringify/sync');
  const sorted = byValidLoss(result.trials);
  await writeFile(path.join(result.sweep_dir, 'results.json'), JSON.stringify({ ...result, trials: sorted }, null, 2));
  const header = ['trial', 'overrides', 'status', 'epochs', 'train_loss', 'train_accuracy', 'valid_loss', 'valid_accuracy', 'test_loss', 'test_accuracy', 'test_f1', 'test_roc_auc', 'seconds', 'run_dir', 'error'];
  const rows = sorted.map((t) => {
    const m = t.metrics;
    // A stopped trial has no evaluation: its last epoch's train and valid measures.
    const last = t.status === 'stopped' ? t.history.at(-1) : undefined;
    const train = m?.train ?? (last && { loss: last.train_loss, accuracy: last.train_accuracy });
    const valid = m?.valid ?? (last && { loss: last.valid_loss, accuracy: last.valid_accuracy });
    return [t.id, t.label, t.status, String(t.epochs), pct(train?.loss), pct(train?.accuracy), pct(valid?.loss), pct(valid?.accuracy), pct(m?.test.loss), pct(m?.test.accuracy), pct(m?.test.f1), pct(m?.test.roc_auc), t.seconds.toFixed(1), t.run_dir ?? '', t.error ?? t.stopped ?? ''];
  });
  await writeFile(path.join(result.sweep_dir, 'results.csv'), stringify([header, ...rows]));
  // The executors bring each trial's epochs (from a worker's machine too), stopped trials' included.
  const histories = sorted.flatMap((t) => t.history.map((e) => ({ trial: `${t.id} ${t.label}`, epoch: e.epoch, valid_loss: e.valid_loss, train_loss: e.train_loss })));
  const { writeSweepReport } = await import('./report.js');
  await writeSweepReport(result.sweep_dir, result.sweep, sorted, histories);
}
