import { existsSync, statSync } from 'node:fs';
import path from 'node:path';
import { Ajv } from 'ajv';
import { ConfigError, loadExperiment, loadSchema, parseExperimentFile, suggestKey, whereIs, type LoadedExperiment, type Problem } from '../config/experiment.js';
import type { SweepConfig } from '../config/experiment.generated.js';
import { isLocalModel } from '../core/model-files.js';
import { checkFolderOption } from '../core/system-errors.js';

/** One expanded trial: its overrides of the base experiment, validated. */
export interface Trial {
  /** t1, t2, ... in expansion order. */
  id: string;
  /** Short label of what this trial sets, e.g. `HIDDEN_DIM=128 N_LAYERS=1`. */
  label: string;
  overrides: Record<string, unknown>;
  experiment: LoadedExperiment;
}

export interface LoadedSweep {
  name: string;
  file: string;
  baseFile: string;
  trials: Trial[];
}

type Origin = { label: string; line?: number; col?: number };

/** More trials than this is a mistake in the grid (each one trains a model). */
const MAX_TRIALS = 10_000;

/** The grid's combinations, in key order (the last key varies fastest). */
export function cartesian(grid: Record<string, unknown[]>): { values: Record<string, unknown>; index: Record<string, number> }[] {
  let combos: { values: Record<string, unknown>; index: Record<string, number> }[] = [{ values: {}, index: {} }];
  for (const [key, options] of Object.entries(grid)) {
    combos = combos.flatMap((c) => options.map((v, i) => ({ values: { ...c.values, [key]: v }, index: { ...c.index, [key]: i } })));
  }
  return combos;
}

/**
 * Reads a sweep file, expands `grid` (cartesian product) and `trials` (explicit, after the grid's),
 * each over `set`, and validates every trial like an experiment file: all problems are reported at
 * once, each naming the sweep file, line and key.
 */
export function loadSweep(file: string, cwd = process.cwd()): LoadedSweep {
  const problems: Problem[] = [];
  const parsed = parseExperimentFile(file, problems);
  if (!parsed) throw new ConfigError(problems);
  const at = (segments: string[], atKey = false): Origin => {
    const w = whereIs(parsed.origin, segments, atKey);
    return { label: w.where, line: w.line, col: w.col };
  };

  const ajv = new Ajv({ allErrors: true, strict: false });
  const validate = ajv.compile(loadSchema('sweep'));
  if (!validate(parsed.values)) {
    for (const err of validate.errors ?? []) {
      const segments = err.instancePath.split('/').slice(1);
      if (err.keyword === 'additionalProperties') {
        const unknown = (err.params as { additionalProperty: string }).additionalProperty;
        const suggestion = suggestKey(unknown, Object.keys(loadSchema('sweep').properties));
        problems.push({ where: at([...segments, unknown], true).label, key: unknown, message: `unknown key${suggestion ? `; did you mean ${suggestion}?` : ''}` });
      } else if (err.keyword === 'required') {
        problems.push({ where: `${file}:1:1`, message: `missing required key "${(err.params as { missingProperty: string }).missingProperty}" (the experiment file the trials start from)` });
      } else {
        problems.push({ where: at(segments).label, key: segments.join('.') || undefined, message: err.message ?? 'invalid' });
      }
    }
    throw new ConfigError(problems);
  }
  const sweep = parsed.values as unknown as SweepConfig;
  const sweepDir = path.dirname(path.resolve(cwd, file));
  const baseFile = path.resolve(sweepDir, sweep.base);
  const baseInfo = existsSync(baseFile) ? statSync(baseFile) : undefined;
  if (!baseInfo || !baseInfo.isFile()) {
    const why = !baseInfo ? 'no such file' : baseInfo.isDirectory() ? 'is a folder, not an experiment file' : 'not a regular file';
    problems.push({ where: at(['base']).label, key: 'base', message: `${sweep.base}: ${why} (resolved against the sweep file's folder to ${baseFile})` });
    throw new ConfigError(problems);
  }
  const common = (sweep.set ?? {}) as Record<string, unknown>;
  const commonOrigins = Object.fromEntries(Object.keys(common).map((k) => [k, at(['set', k])]));

  const specs: { values: Record<string, unknown>; origins: Record<string, Origin> }[] = [];
  const grid = (sweep.grid ?? {}) as Record<string, unknown[]>;
  const combinations = Object.values(grid).reduce((n, options) => n * options.length, 1);
  if (combinations > MAX_TRIALS) {
    problems.push({ where: at(['grid']).label, key: 'grid', message: `${combinations.toLocaleString('en-US')} combinations; a sweep runs at most ${MAX_TRIALS.toLocaleString('en-US')} trials` });
    throw new ConfigError(problems);
  }
  if (Object.keys(grid).length > 0) {
    for (const combo of cartesian(grid)) {
      specs.push({ values: combo.values, origins: Object.fromEntries(Object.entries(combo.index).map(([k, i]) => [k, at(['grid', k, String(i)])])) });
    }
  }
  (sweep.trials ?? []).forEach((t, i) => {
    const values = t as Record<string, unknown>;
    specs.push({ values, origins: Object.fromEntries(Object.keys(values).map((k) => [k, at(['trials', String(i), k])])) });
  });
  if (specs.length === 0) specs.push({ values: {}, origins: {} });

  const trials: Trial[] = [];
  const seen = new Set<string>();
  const name = path.basename(file, path.extname(file));
  specs.forEach((spec, i) => {
    const overrides = { ...common, ...spec.values };
    const origins = { ...commonOrigins, ...spec.origins };
    try {
      const experiment = loadExperiment(baseFile, [], cwd, { values: overrides, origins, baseDir: sweepDir });
      const label = Object.entries(spec.values).map(([k, v]) => `${k}=${typeof v === 'string' ? v : JSON.stringify(v)}`).join(' ') || 'base';
      trials.push({ id: `t${i + 1}`, label, overrides, experiment });
    } catch (e) {
      if (!(e instanceof ConfigError)) throw e;
      // A bad `set` value fails every trial the same way: report it once.
      for (const p of e.problems) {
        const line = `${p.where}|${p.key}|${p.message}`;
        if (!seen.has(line)) {
          seen.add(line);
          problems.push(p);
        }
      }
    }
  });
  if (problems.length > 0) throw new ConfigError(problems);
  return { name, file, baseFile, trials };
}

/**
 * A trial's overrides as `--set KEY=VALUE` arguments for another process: JSON values (valid YAML),
 * with relative MODEL / DATASET paths made absolute, since they were relative to the sweep file.
 */
export function trialSets(trial: Trial, sweepDir: string): string[] {
  return Object.entries(trial.overrides).map(([key, value]) => {
    let v = value;
    if (key === 'MODEL' && typeof v === 'string' && isLocalModel(v, sweepDir)) v = path.resolve(sweepDir, v);
    if (key === 'DATASET' && typeof v === 'string' && v !== 'imdb') v = path.resolve(sweepDir, v);
    if (key === 'DATASET' && v && typeof v === 'object') {
      const spec = { ...(v as Record<string, unknown>) };
      for (const k of ['path', 'test']) if (typeof spec[k] === 'string' && spec[k] !== 'imdb') spec[k] = path.resolve(sweepDir, spec[k] as string);
      v = spec;
    }
    return `${key}=${JSON.stringify(v)}`;
  });
}

export interface SweepTrialResult {
  id: string;
  label: string;
  overrides: Record<string, unknown>;
  status: 'done' | 'failed';
  run_dir?: string;
  metrics?: import('../training/metrics.js').Metrics;
  error?: string;
  seconds: number;
}

export interface SweepResult {
  sweep: string;
  sweep_dir: string;
  executor: string;
  trials: SweepTrialResult[];
}

/** Finished trials by valid loss (best first), failed ones last. */
export function byValidLoss(trials: SweepTrialResult[]): SweepTrialResult[] {
  const loss = (t: SweepTrialResult) => t.metrics?.valid.loss ?? Infinity;
  return [...trials].sort((a, b) => loss(a) - loss(b));
}

/**
 * Runs every trial through `executor` (stages shared through the cache, so data/tokenize/encode are
 * computed once for trials that share them; a rerun finishes completed trials from the cache), then
 * writes results.csv, results.json and comparison.html to a sweep folder.
 */
export async function runSweep(
  file: string,
  options: { cacheDir: string; runsDir: string; executor: import('./executor.js').Executor; onOutcome?: (trial: SweepTrialResult, done: number, total: number) => void; signal?: AbortSignal },
): Promise<SweepResult> {
  const sweep = loadSweep(file);
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
    return { id: o.id, label: trial.label, overrides: trial.overrides, status: o.status, run_dir: o.result?.run_dir, metrics: o.result?.metrics, error: o.error, seconds: o.seconds };
  };
  let done = 0;
  const outcomes = await options.executor.run(jobs, (o) => options.onOutcome?.(toResult(o), ++done, jobs.length), options.signal);
  const trials = outcomes.map(toResult);
  const { makeRunDir } = await import('./pipeline.js');
  const outDir = await makeRunDir(path.resolve(options.runsDir), path.join(sweep.name, 'sweeps'));
  const result: SweepResult = { sweep: sweep.name, sweep_dir: outDir, executor: options.executor.description, trials };
  // Each trial's own output, to read why one failed.
  const { writeFile } = await import('node:fs/promises');
  for (const o of outcomes) if (o.stderr) await writeFile(path.join(outDir, `${o.id}.stderr.log`), o.stderr);
  await writeSweepResults(result);
  return result;
}

// CSV cells: empty where a measure is undefined (no metrics, or ROC-AUC with one class).
const pct = (x: number | null | undefined) => (x === null || x === undefined || !Number.isFinite(x) ? '' : x.toFixed(4));

async function writeSweepResults(result: SweepResult): Promise<void> {
  const { writeFile, readFile } = await import('node:fs/promises');
  const { stringify } = await import('csv-stringify/sync');
  const sorted = byValidLoss(result.trials);
  await writeFile(path.join(result.sweep_dir, 'results.json'), JSON.stringify({ ...result, trials: sorted }, null, 2));
  const header = ['trial', 'overrides', 'status', 'train_loss', 'train_accuracy', 'valid_loss', 'valid_accuracy', 'test_loss', 'test_accuracy', 'test_f1', 'test_roc_auc', 'seconds', 'run_dir', 'error'];
  const rows = sorted.map((t) => {
    const m = t.metrics;
    return [t.id, t.label, t.status, pct(m?.train.loss), pct(m?.train.accuracy), pct(m?.valid.loss), pct(m?.valid.accuracy), pct(m?.test.loss), pct(m?.test.accuracy), pct(m?.test.f1), pct(m?.test.roc_auc), t.seconds.toFixed(1), t.run_dir ?? '', t.error ?? ''];
  });
  await writeFile(path.join(result.sweep_dir, 'results.csv'), stringify([header, ...rows]));
  const histories: { trial: string; epoch: number; valid_loss: number; train_loss: number }[] = [];
  for (const t of sorted) {
    if (!t.run_dir) continue;
    try {
      const h = JSON.parse(await readFile(path.join(t.run_dir, 'history.json'), 'utf8')) as { epoch: number; valid_loss: number; train_loss: number }[];
      for (const e of h) histories.push({ trial: `${t.id} ${t.label}`, epoch: e.epoch, valid_loss: e.valid_loss, train_loss: e.train_loss });
    } catch {
      // no history (a TRAIN: false trial)
    }
  }
  const { writeSweepReport } = await import('./report.js');
  await writeSweepReport(result.sweep_dir, result.sweep, sorted, histories);
}
