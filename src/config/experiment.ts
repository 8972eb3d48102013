import { readFileSync, existsSync, statSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import YAML, { isMap, isSeq, isScalar, isPair, LineCounter, type Document, type Node } from 'yaml';
import { Ajv, type ErrorObject, type ValidateFunction } from 'ajv';
import ajvErrorsModule from 'ajv-errors';
import { closest, distance } from 'fastest-levenshtein';
import { UserError, messageOf } from '../core/errors.js';
import { firstNonUtf8 } from '../core/lines.js';
import type { ExperimentConfig } from './experiment.generated.js';

/** Every key present: what the schema's defaults give after validation. */
export type Experiment = Required<ExperimentConfig>;

/** A validated experiment and where its values came from. */
export interface LoadedExperiment {
  /** File name without extension; names the run folder. */
  name: string;
  /** The experiment file, as given. */
  file: string;
  config: Experiment;
  /** Folder that relative paths in each key resolve against: the file's folder, or the current folder for --set. */
  baseDirs: Partial<Record<keyof Experiment, string>>;
  /** The --set overrides applied, in order. */
  overrides: Record<string, unknown>;
  /**
   * Where a key's value was written (`file:line:col`, a sweep position, or the --set flag), for problems
   * found after loading (a missing DATASET path, say); undefined for a key left to its default. Absent on
   * experiments built by hand.
   */
  locate?: (segments: string[]) => Pick<Problem, 'where' | 'line' | 'col'> | undefined;
}

/** One problem, printed as `where: KEY: message`. */
export interface Problem {
  where: string;
  /** For ordering problems by position within a file. */
  line?: number;
  col?: number;
  key?: string;
  message: string;
}

/** At most this many problems are printed; the rest are counted. */
export const MAX_SHOWN_PROBLEMS = 20;

export class ConfigError extends UserError {
  readonly problems: Problem[];
  constructor(problems: Problem[]) {
    const lines = problems.slice(0, MAX_SHOWN_PROBLEMS).map(formatProblem);
    if (problems.length > MAX_SHOWN_PROBLEMS) lines.push(`… and ${problems.length - MAX_SHOWN_PROBLEMS} more`);
    super(lines.join('\n'));
    this.name = 'ConfigError';
    this.problems = problems;
  }
}

/** Wrong command-line usage (exit 2), such as a --set without `=`. */
export class UsageError extends UserError {}

export function formatProblem(p: Problem): string {
  return [p.where, p.key, p.message].filter((s) => s !== undefined && s !== '').join(': ');
}

// ajv-errors is CommonJS with a default export; Node's ESM interop wraps it once more.
const ajvErrors = ((ajvErrorsModule as unknown as { default?: unknown }).default ?? ajvErrorsModule) as (ajv: Ajv) => Ajv;

const schemaDir = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../../schemas');

const schemas = new Map<string, Record<string, any>>();
export function loadSchema(name: 'experiment' | 'sweep'): Record<string, any> {
  if (!schemas.has(name)) schemas.set(name, JSON.parse(readFileSync(path.join(schemaDir, `${name}.schema.json`), 'utf8')));
  return schemas.get(name)!;
}

let validators: { strict: ValidateFunction; withDefaults: ValidateFunction } | undefined;
function experimentValidators() {
  if (!validators) {
    const schema = structuredClone(loadSchema('experiment'));
    const make = (useDefaults: boolean) => {
      const ajv = new Ajv({ allErrors: true, useDefaults, strict: false });
      ajvErrors(ajv);
      return ajv.compile(schema);
    };
    validators = { strict: make(false), withDefaults: make(true) };
  }
  return validators;
}

/** Keys the schema knows, for suggestions. */
function knownKeys(pathInConfig: string[]): string[] {
  const schema = loadSchema('experiment');
  if (pathInConfig[0] === 'DATASET') return Object.keys(schema.definitions.DatasetSpec.properties);
  return Object.keys(schema.properties);
}

/** The nearest known key, if it is close enough to be a plausible typo. */
export function suggestKey(unknown: string, known: string[]): string | undefined {
  const byCase = known.find((k) => k.toLowerCase() === unknown.toLowerCase());
  if (byCase) return byCase;
  const upper = unknown.toUpperCase();
  const best = closest(upper, known.map((k) => k.toUpperCase()));
  const index = known.map((k) => k.toUpperCase()).indexOf(best);
  return distance(upper, best) <= Math.max(2, Math.floor(unknown.length / 3)) ? known[index] : undefined;
}

/** Overrides from another file (a sweep), with where each one was written. */
export interface PresetOverrides {
  values: Record<string, unknown>;
  origins: Record<string, { label: string; line?: number; col?: number }>;
  /** Folder that relative MODEL / DATASET values resolve against. */
  baseDir: string;
}

export interface Origin {
  /** `file`, `--set KEY=VALUE`, or a position in a sweep file. */
  label: string;
  line?: number;
  col?: number;
  /** Where to point: a line counter and the document, for file values. */
  doc?: Document.Parsed;
  lines?: LineCounter;
}

/**
 * Parses one experiment file into a plain mapping, collecting syntax problems (with positions) rather
 * than stopping at the first.
 */
export function parseExperimentFile(file: string, problems: Problem[]): { values: Record<string, unknown>; origin: Origin } | undefined {
  let bytes: Buffer;
  try {
    if (!existsSync(file)) throw new Error('no such file');
    const info = statSync(file);
    if (info.isDirectory()) throw new Error('is a folder, not an experiment file');
    if (!info.isFile()) throw new Error('not a regular file');
    if (info.size > MAX_EXPERIMENT_BYTES) throw new Error(`${info.size.toLocaleString('en-US')} bytes is too large for an experiment file (at most ${MAX_EXPERIMENT_BYTES.toLocaleString('en-US')})`);
    bytes = readFileSync(file);
  } catch (e) {
    problems.push({ where: file, message: `cannot read experiment file: ${(e as Error).message}` });
    return undefined;
  }
  const nul = bytes.indexOf(0);
  if (nul !== -1) {
    const at = positionOf(bytes, nul);
    problems.push({ where: `${file}:${at.line}:${at.col}`, line: at.line, col: at.col, message: 'this is a binary file, not a YAML experiment file (it holds NUL bytes)' });
    return undefined;
  }
  const bad = firstNonUtf8(bytes);
  if (bad) {
    problems.push({
      where: `${file}:${bad.line}:${bad.col}`,
      line: bad.line,
      col: bad.col,
      message: `byte 0x${bad.byte.toString(16).toUpperCase().padStart(2, '0')} is not UTF-8; save the file as UTF-8`,
    });
    return undefined;
  }
  const text = bytes.toString('utf8');
  const lines = new LineCounter();
  const doc = YAML.parseDocument(text, { lineCounter: lines, uniqueKeys: true, prettyErrors: false });
  const origin: Origin = { label: file, doc, lines };
  if (doc.errors.length > 0) {
    for (const err of doc.errors) {
      const at = lines.linePos(err.pos[0]);
      const key = err.code === 'DUPLICATE_KEY' ? keyAtOffset(doc, err.pos[0]) : undefined;
      const message = err.code === 'DUPLICATE_KEY' ? 'duplicate key: each setting may appear only once' : firstLine(err.message);
      problems.push({ where: `${file}:${at.line}:${at.col}`, line: at.line, col: at.col, key, message });
    }
    return undefined;
  }
  const contents = doc.contents;
  if (contents === null || (isScalar(contents) && (contents.value === null || contents.value === ''))) {
    problems.push({ where: `${file}:1:1`, message: 'the file is empty: expected a mapping of settings such as `N_EPOCHS: 5`' });
    return undefined;
  }
  if (!isMap(contents)) {
    const at = lines.linePos(contents.range?.[0] ?? 0);
    const shown = JSON.stringify((contents as { value?: unknown }).value) ?? String((contents as { value?: unknown }).value);
    const found = isSeq(contents) ? 'a list' : `a single value (${shown.length > 60 ? `${shown.slice(0, 60)}…` : shown})`;
    problems.push({ where: `${file}:${at.line}:${at.col}`, message: `expected a mapping of settings such as \`N_EPOCHS: 5\`, found ${found}` });
    return undefined;
  }
  try {
    return { values: doc.toJS({ maxAliasCount: MAX_ALIAS_COUNT }) as Record<string, unknown>, origin };
  } catch (e) {
    // yaml refuses to expand aliases past maxAliasCount ("billion laughs"): point at the first alias.
    let first: Node | undefined;
    YAML.visit(doc, {
      Alias(_, node) {
        first ??= node;
        return YAML.visit.BREAK;
      },
    });
    const at = lines.linePos(first?.range?.[0] ?? 0);
    problems.push({
      where: `${file}:${at.line}:${at.col}`,
      line: at.line,
      col: at.col,
      message: first ? `aliases expand to too many values (over ${MAX_ALIAS_COUNT}; nested aliases, a "billion laughs"); an experiment file needs no such aliases` : firstLine(messageOf(e)),
    });
    return undefined;
  }
}

/** An experiment file is a few dozen lines; anything this large was given by mistake. */
const MAX_EXPERIMENT_BYTES = 1 << 20;
/** yaml's guard against alias expansion ("billion laughs"), stated here so it cannot silently change. */
const MAX_ALIAS_COUNT = 100;

/** 1-based line and column (in characters) of a byte offset. */
function positionOf(bytes: Buffer, offset: number): { line: number; col: number } {
  const before = bytes.subarray(0, offset);
  let line = 1;
  for (let i = before.indexOf(0x0a); i !== -1; i = before.indexOf(0x0a, i + 1)) line++;
  const lineStart = before.lastIndexOf(0x0a) + 1;
  return { line, col: bytes.subarray(lineStart, offset).toString('utf8').length + 1 };
}

function firstLine(s: string): string {
  const line = s.split('\n')[0].replace(/ at line \d+, column \d+:?$/, '');
  return line.length > 160 ? `${line.slice(0, 160)}…` : line;
}

function keyAtOffset(doc: Document.Parsed, offset: number): string | undefined {
  let found: string | undefined;
  YAML.visit(doc, {
    Pair(_, pair) {
      const k = pair.key as Node | null;
      if (k && isScalar(k) && k.range && k.range[0] <= offset && offset <= k.range[1]) found = String(k.value);
    },
  });
  return found;
}

/** The YAML node for a JSON-pointer path into the document (the key node when `atKey`). */
function nodeAt(doc: Document.Parsed, segments: string[], atKey: boolean): Node | undefined {
  let node: unknown = doc.contents;
  let keyNode: unknown;
  for (const seg of segments) {
    if (isMap(node)) {
      const pair = node.items.find((p) => isPair(p) && isScalar(p.key) && String(p.key.value) === seg);
      if (!pair) return undefined;
      keyNode = pair.key;
      node = pair.value;
    } else if (isSeq(node)) {
      node = node.items[Number(seg)];
      keyNode = node;
    } else {
      return undefined;
    }
  }
  return (atKey ? keyNode : node ?? keyNode) as Node | undefined;
}

export function whereIs(origin: Origin, segments: string[], atKey: boolean): Pick<Problem, 'where' | 'line' | 'col'> {
  if (!origin.doc || !origin.lines) return { where: origin.label, line: origin.line ?? Number.MAX_SAFE_INTEGER, col: origin.col };
  const node = nodeAt(origin.doc, segments, atKey);
  const at = origin.lines.linePos(node?.range?.[0] ?? 0);
  return { where: `${origin.label}:${at.line}:${at.col}`, line: at.line, col: at.col };
}

/** Parses `KEY=VALUE` (VALUE as YAML). Malformed flags are usage errors. */
export function parseSet(flag: string): { key: string; value: unknown } {
  const eq = flag.indexOf('=');
  if (eq <= 0) throw new UsageError(`--set expects KEY=VALUE (for example --set N_EPOCHS=3), got "${flag}"`);
  const key = flag.slice(0, eq).trim();
  const raw = flag.slice(eq + 1);
  let value: unknown;
  try {
    value = raw === '' ? '' : YAML.parse(raw);
  } catch {
    value = raw;
  }
  // For text-only keys, `--set TEXT=so: good` means the text, not a YAML mapping.
  if (typeof value !== 'string' && loadSchema('experiment').properties[key]?.type === 'string') value = raw;
  return { key, value };
}

/** Turns ajv's errors into positioned problems, one per real mistake. */
function describeErrors(errors: ErrorObject[], values: Record<string, unknown>, originOf: (key: string) => Origin): Problem[] {
  const problems: Problem[] = [];
  const seen = new Set<string>();
  for (const err of errors) {
    const segments = err.instancePath.split('/').slice(1).map((s) => s.replace(/~1/g, '/').replace(/~0/g, '~'));
    // DATASET is a string or a mapping: report only the branch that matches what was written.
    if (segments[0] === 'DATASET') {
      const isObject = typeof values.DATASET === 'object' && values.DATASET !== null && !Array.isArray(values.DATASET);
      const isString = typeof values.DATASET === 'string';
      const fromStringBranch = err.schemaPath.startsWith('#/properties/DATASET/oneOf/0');
      const fromObjectBranch = err.schemaPath.startsWith('#/definitions/DatasetSpec');
      if (err.keyword === 'oneOf' ? isObject || isString : !isObject && !isString) continue;
      if ((isObject && fromStringBranch) || (isString && fromObjectBranch)) continue;
    }
    const topKey = segments[0] ?? (err.params as { additionalProperty?: string }).additionalProperty;
    const origin = originOf(topKey ?? '');
    let keyPath = segments.join('.');
    let message: string;
    let atKey = false;
    if (err.keyword === 'additionalProperties') {
      const unknown = (err.params as { additionalProperty: string }).additionalProperty;
      segments.push(unknown);
      keyPath = segments.join('.');
      const suggestion = suggestKey(unknown, knownKeys(segments));
      message = `unknown key${suggestion ? `; did you mean ${suggestion}?` : ''}`;
      atKey = true;
    } else if (err.keyword === 'required') {
      message = `missing required key "${(err.params as { missingProperty: string }).missingProperty}"`;
    } else if (err.keyword === 'errorMessage') {
      message = err.message ?? 'invalid';
    } else if (err.keyword === 'oneOf' && segments[0] === 'DATASET') {
      message = 'must be a dataset name or path (a string), or a mapping with at least `path`';
    } else if (err.keyword === 'enum') {
      message = `must be one of ${(err.params as { allowedValues: unknown[] }).allowedValues.map((v) => JSON.stringify(v)).join(', ')}`;
    } else {
      message = err.message ?? 'invalid';
    }
    const actual = segments.reduce<unknown>((v, s) => (v && typeof v === 'object' ? (v as Record<string, unknown>)[s] : undefined), values);
    if (err.keyword !== 'additionalProperties' && err.keyword !== 'required' && actual !== undefined && (typeof actual !== 'object' || actual === null)) {
      message += ` (got ${JSON.stringify(actual)})`;
    }
    const at = whereIs(origin, segments, atKey);
    const id = `${at.where}|${keyPath}|${message}`;
    if (seen.has(id)) continue;
    seen.add(id);
    problems.push({ ...at, key: keyPath || undefined, message });
  }
  // File problems in line order, then --set problems.
  return problems.sort((a, b) => (a.line ?? 0) - (b.line ?? 0) || (a.col ?? 0) - (b.col ?? 0));
}

/**
 * Loads, merges (file, then --set overrides) and validates an experiment. All problems are
 * collected and thrown together as a ConfigError.
 */
export function loadExperiment(file: string, sets: string[] = [], cwd = process.cwd(), preset?: PresetOverrides): LoadedExperiment {
  const problems: Problem[] = [];
  const parsed = parseExperimentFile(file, problems);
  const overrides = sets.map(parseSet);
  if (!parsed) throw new ConfigError(problems);

  const values: Record<string, unknown> = { ...parsed.values };
  const fileDir = path.dirname(path.resolve(cwd, file));
  const baseDirs: LoadedExperiment['baseDirs'] = { MODEL: fileDir, DATASET: fileDir };
  const setOrigins = new Map<string, Origin>();
  for (const [key, value] of Object.entries(preset?.values ?? {})) {
    values[key] = value;
    const where = preset!.origins[key];
    setOrigins.set(key, { label: where.label, line: where.line, col: where.col });
    if (key === 'MODEL' || key === 'DATASET') baseDirs[key] = preset!.baseDir;
  }
  for (const { key, value } of overrides) {
    values[key] = value;
    setOrigins.set(key, { label: `--set ${key}=${typeof value === 'string' ? value : JSON.stringify(value)}` });
    if (key === 'MODEL' || key === 'DATASET') baseDirs[key] = cwd;
  }
  const originOf = (key: string) => setOrigins.get(key) ?? parsed.origin;

  const { strict, withDefaults } = experimentValidators();
  if (!strict(values)) {
    throw new ConfigError(describeErrors(strict.errors ?? [], values, originOf));
  }
  const config = structuredClone(values);
  withDefaults(config);
  const ext = path.extname(file);
  return {
    name: path.basename(file, ext),
    file,
    config: config as Experiment,
    baseDirs,
    overrides: Object.fromEntries(overrides.map(({ key, value }) => [key, value])),
    locate: (segments) => (setOrigins.has(segments[0]) || Object.hasOwn(parsed.values, segments[0]) ? whereIs(originOf(segments[0]), segments, false) : undefined),
  };
}

/** Validates several files, reporting every problem of every file at once. */
export function loadExperiments(files: string[], sets: string[] = [], cwd = process.cwd()): LoadedExperiment[] {
  const loaded: LoadedExperiment[] = [];
  const problems: Problem[] = [];
  for (const file of files) {
    try {
      loaded.push(loadExperiment(file, sets, cwd));
    } catch (e) {
      if (e instanceof ConfigError) problems.push(...e.problems);
      else throw e;
    }
  }
  if (problems.length > 0) throw new ConfigError(problems);
  return loaded;
}

