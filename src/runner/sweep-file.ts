import { existsSync, statSync } from 'node:fs';
import path from 'node:path';
import { Ajv } from 'ajv';
import { ConfigError, loadExperiment, loadSchema, parseExperimentFile, parseSet, suggestKey, whereIs, type LoadedExperiment, type Problem } from '../config/experiment.js';
import type { Distribution, SweepConfig } from '../config/experiment.generated.js';
import type { EarlyStop } from './asha.js';
import { isLocalModel } from '../core/model-files.js';
import { DISTRIBUTIONS, distributionOf, formatSampled, rangeProblem, sampleSpace } from './search.js';

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
  /** A random search's method, trial count and the seed it sampled with (`search.seed`, else the sweep's SEED). */
  search?: { method: 'random'; trials: number; seed: number };
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

/** The part of the sweep schema at `segments` (a space entry's schema under search.space.KEY). */
function sweepSchemaAt(segments: string[]): Record<string, any> | undefined {
  const root = loadSchema('sweep');
  let node: Record<string, any> | undefined = root;
  for (const s of segments) {
    if (!node) return undefined;
    node = node.properties?.[s] ?? (typeof node.additionalProperties === 'object' ? node.additionalProperties : undefined);
    if (node?.$ref) node = root.definitions[(node.$ref as string).split('/').pop()!];
  }
  return node;
}

const isSpaceEntry = (segments: string[]) => segments.length === 3 && segments[0] === 'search' && segments[1] === 'space';
const ONE_OF = DISTRIBUTIONS.join(', ');

/** The sweep schema's errors as positioned problems, with plain words for search space entries. */
function schemaProblems(errors: import('ajv').ErrorObject[], values: Record<string, unknown>, file: string, at: (segments: string[], atKey?: boolean) => Origin): Problem[] {
  const problems: Problem[] = [];
  for (const err of errors) {
    const segments = err.instancePath.split('/').slice(1).map((s) => s.replace(/~1/g, '/').replace(/~0/g, '~'));
    const key = segments.join('.') || undefined;
    if (err.keyword === 'additionalProperties') {
      const unknown = (err.params as { additionalProperty: string }).additionalProperty;
      const suggestion = suggestKey(unknown, Object.keys(sweepSchemaAt(segments)?.properties ?? {}));
      const kinds = isSpaceEntry(segments) ? ` (a search space entry is one of ${ONE_OF})` : '';
      problems.push({ where: at([...segments, unknown], true).label, key: [...segments, unknown].join('.'), message: `unknown key${suggestion ? `; did you mean ${suggestion}?` : kinds}` });
    } else if (err.keyword === 'required' && segments.length === 0) {
      problems.push({ where: `${file}:1:1`, message: `missing required key "${(err.params as { missingProperty: string }).missingProperty}" (the experiment file the trials start from)` });
    } else if (err.keyword === 'required') {
      problems.push({ where: at(segments).label, key, message: `missing required key "${(err.params as { missingProperty: string }).missingProperty}"` });
    } else if (isSpaceEntry(segments) && (err.keyword === 'maxProperties' || err.keyword === 'minProperties')) {
      const entry = segments.reduce<any>((v, s) => v?.[s], values) as Record<string, unknown>;
      const named = Object.keys(entry).filter((k) => (DISTRIBUTIONS as readonly string[]).includes(k));
      if (err.keyword === 'maxProperties' && named.length < 2) continue; // an unknown key, reported as such
      problems.push({ where: at(segments, true).label, key, message: `give exactly one of ${ONE_OF}${named.length > 0 ? ` (got ${named.join(', ')})` : ''}` });
    } else if (isSpaceEntry(segments) && err.keyword === 'type') {
      problems.push({ where: at(segments).label, key, message: `must be a mapping with one of ${ONE_OF}, for example { int: [16, 128] }` });
    } else if (segments.join('.') === 'search.space' && err.keyword === 'minProperties') {
      problems.push({ where: at(segments, true).label, key, message: 'name at least one experiment key to sample' });
    } else if (err.keyword === 'enum') {
      problems.push({ where: at(segments).label, key, message: `must be one of ${(err.params as { allowedValues: unknown[] }).allowedValues.map((v) => JSON.stringify(v)).join(', ')}` });
    } else {
      const actual = segments.reduce<unknown>((v, s) => (v && typeof v === 'object' ? (v as Record<string, unknown>)[s] : undefined), values);
      const got = actual !== undefined && (actual === null || typeof actual !== 'object') ? ` (got ${JSON.stringify(actual)})` : '';
      problems.push({ where: at(segments).label, key, message: `${err.message ?? 'invalid'}${got}` });
    }
  }
  return problems;
}

/** A value's relative MODEL / DATASET paths made absolute against `dir`. */
function absolutePaths(key: string, value: unknown, dir: string): unknown {
  let v = value;
  if (key === 'MODEL' && typeof v === 'string' && isLocalModel(v, dir)) v = path.resolve(dir, v);
  if (key === 'DATASET' && typeof v === 'string' && v !== 'imdb') v = path.resolve(dir, v);
  if (key === 'DATASET' && v && typeof v === 'object') {
    const spec = { ...(v as Record<string, unknown>) };
    for (const k of ['path', 'test']) if (typeof spec[k] === 'string' && spec[k] !== 'imdb') spec[k] = path.resolve(dir, spec[k] as string);
    v = spec;
  }
  return v;
}

/** A problem's message without the value it was found on, to report a problem once across trials. */
const withoutValue = (p: Problem) => `${p.where}|${p.key}|${p.message.replace(/ \(got [\s\S]*\)$/, '')}`;

/**
 * Reads a sweep file, expands `grid` (cartesian product) and `trials` (explicit, after the grid's), or
 * samples `search`, each over `set` and then `sets` (`--set KEY=VALUE` flags, applied last), and
 * validates every trial like an experiment file: all problems are reported at once, each naming the
 * sweep file, line and key (or the --set flag).
 */
export function loadSweep(file: string, cwd = process.cwd(), sets: string[] = []): LoadedSweep {
  const problems: Problem[] = [];
  const parsed = parseExperimentFile(file, problems);
  const flags = sets.map(parseSet);
  if (!parsed) throw new ConfigError(problems);
  const at = (segments: string[], atKey = false): Origin => {
    const w = whereIs(parsed.origin, segments, atKey);
    return { label: w.where, line: w.line, col: w.col };
  };

  const ajv = new Ajv({ allErrors: true, strict: false });
  const validate = ajv.compile(loadSchema('sweep'));
  if (!validate(parsed.values)) throw new ConfigError(schemaProblems(validate.errors ?? [], parsed.values, file, at));
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
  const grid = (sweep.grid ?? {}) as Record<string, unknown[]>;
  const space = (sweep.search?.space ?? {}) as Record<string, Distribution>;

  // What the sweep varies, and where: a --set of one of these keys would make the trials alike.
  const varied = new Map<string, string>();
  for (const k of Object.keys(grid)) varied.set(k, `grid, ${at(['grid', k], true).label}`);
  for (const k of Object.keys(space)) varied.set(k, `search, ${at(['search', 'space', k], true).label}`);
  (sweep.trials ?? []).forEach((t, i) => {
    for (const k of Object.keys(t)) if (!varied.has(k)) varied.set(k, `trials, ${at(['trials', String(i), k], true).label}`);
  });
  const conflicts: Problem[] = [];
  for (const { key } of flags) {
    const where = varied.get(key);
    if (where) conflicts.push({ where: `--set ${key}`, message: `the sweep varies ${key} (${where}); a --set would make its trials identical` });
  }

  if (sweep.search) {
    for (const other of ['grid', 'trials'] as const) {
      if (sweep[other] !== undefined) {
        problems.push({ where: at([other], true).label, key: other, message: `cannot be combined with search (${at(['search'], true).label}): a sweep either samples its trials or lists them` });
      }
    }
    for (const [k, entry] of Object.entries(space)) {
      const { name, arg } = distributionOf(entry);
      const wrong = rangeProblem(name, arg);
      if (wrong) problems.push({ where: at(['search', 'space', k, name]).label, key: `search.space.${k}.${name}`, message: wrong });
    }
  }
  if (problems.length > 0) throw new ConfigError([...problems, ...conflicts]);
  problems.push(...conflicts);

  const specs: { values: Record<string, unknown>; origins: Record<string, Origin>; label?: string }[] = [];
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

  // Space keys whose candidate values (choice options, range ends) are not valid values of the key: each
  // reported once, where it is written, rather than through every trial that sampled it.
  const badSpaceKeys = new Set<string>();
  let search: LoadedSweep['search'];
  if (sweep.search) {
    const spaceOrigins = Object.fromEntries(Object.keys(space).map((k) => [k, at(['search', 'space', k], true)]));
    const experimentKeys = Object.keys(loadSchema('experiment').properties);
    for (const [k, entry] of Object.entries(space)) {
      if (!experimentKeys.includes(k)) {
        const suggestion = suggestKey(k, experimentKeys);
        problems.push({ where: spaceOrigins[k].label, key: k, message: `unknown key${suggestion ? `; did you mean ${suggestion}?` : ''}` });
        badSpaceKeys.add(k);
        continue;
      }
      const { name, arg } = distributionOf(entry);
      arg.forEach((v, i) => {
        const origin = at(['search', 'space', k, name, String(i)]);
        try {
          loadExperiment(baseFile, [], cwd, { values: { ...common, [k]: v }, origins: { ...commonOrigins, [k]: origin }, baseDir: sweepDir });
        } catch (e) {
          if (!(e instanceof ConfigError)) throw e;
          const own = e.problems.filter((p) => p.key?.split('.')[0] === k);
          if (own.length > 0) badSpaceKeys.add(k);
          problems.push(...own);
        }
      });
    }
    const baseSeed = parseExperimentFile(baseFile, [])?.values.SEED;
    const seedOf = (v: unknown) => (typeof v === 'number' && Number.isInteger(v) && v >= 0 ? v : undefined);
    const seed = sweep.search.seed ?? seedOf(common.SEED) ?? seedOf(baseSeed) ?? (loadSchema('experiment').properties.SEED.default as number);
    search = { method: sweep.search.method, trials: sweep.search.trials, seed };
    for (const values of sampleSpace(space, sweep.search.trials, seed)) {
      const label = Object.entries(values).map(([k, v]) => `${k}=${formatSampled(v)}`).join(' ');
      specs.push({ values, origins: spaceOrigins, label });
    }
  }
  if (specs.length === 0) specs.push({ values: {}, origins: {} });

  // --set values, applied last; relative paths in them are relative to the current folder.
  const flagValues = Object.fromEntries(flags.map(({ key, value }) => [key, absolutePaths(key, value, cwd)]));
  const trials: Trial[] = [];
  const seen = new Set<string>();
  const name = path.basename(file, path.extname(file));
  specs.forEach((spec, i) => {
    const values = { ...common, ...spec.values };
    const origins = { ...commonOrigins, ...spec.origins };
    try {
      const experiment = loadExperiment(baseFile, sets, cwd, { values, origins, baseDir: sweepDir });
      const label = spec.label ?? (Object.entries(spec.values).map(([k, v]) => `${k}=${typeof v === 'string' ? v : JSON.stringify(v)}`).join(' ') || 'base');
      trials.push({ id: `t${i + 1}`, label, overrides: { ...values, ...flagValues }, experiment });
    } catch (e) {
      if (!(e instanceof ConfigError)) throw e;
      // A bad `set` or --set value fails every trial the same way, and a sampled key the same way with
      // different values: report each once.
      for (const p of e.problems) {
        const top = p.key?.split('.')[0] ?? '';
        if (badSpaceKeys.has(top) && spec.origins[top]?.label === p.where) continue;
        const id = withoutValue(p);
        if (!seen.has(id)) {
          seen.add(id);
          problems.push(p);
        }
      }
    }
  });
  if (problems.length > 0) throw new ConfigError(problems);
  return { name, file, baseFile, trials, ...(sweep.early_stop && { earlyStop: sweep.early_stop }), ...(search && { search }) };
}

/**
 * A trial's overrides as `--set KEY=VALUE` arguments for another process: JSON values (valid YAML),
 * with relative MODEL / DATASET paths made absolute, since they were relative to the sweep file.
 */
export function trialSets(trial: Trial, sweepDir: string): string[] {
  return Object.entries(trial.overrides).map(([key, value]) => `${key}=${JSON.stringify(absolutePaths(key, value, sweepDir))}`);
}
