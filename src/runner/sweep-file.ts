import { existsSync, statSync } from 'node:fs';
import path from 'node:path';
import { Ajv } from 'ajv';
import { ConfigError, loadExperiment, loadSchema, parseExperimentFile, suggestKey, whereIs, type LoadedExperiment, type Problem } from '../config/experiment.js';
import type { SweepConfig } from '../config/experiment.generated.js';
import type { EarlyStop } from './asha.js';
import { isLocalModel } from '../core/model-files.js';

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
  /** The sweep file's `early_stop`, if any. */
  earlyStop?: EarlyStop;
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
  return { name, file, baseFile, trials, ...(sweep.early_stop && { earlyStop: sweep.early_stop }) };
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
