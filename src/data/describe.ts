import { createHash } from 'node:crypto';
import { open, readdir, stat } from 'node:fs/promises';
import type { Stats } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import type { DatasetSpec } from '../config/experiment.generated.js';
import { UserError } from '../core/errors.js';
import { imdbSource } from './download.js';
import { aclImdbSubfoldersIn, listAclImdbFolder } from './imdb.js';
import { checkTabularHead, detectDelimiter, readFirstLine } from './tabular.js';
import {
  DEFAULT_CLASSES,
  displayPath,
  type DatasetDescription,
  type FilesDescription,
  type SourceSplit,
  type TabularColumns,
  type TabularFile,
  type TabularFormat,
} from './types.js';

const DEFAULT_TEST_RATIO = 0.2;

const ACCEPTED_LAYOUTS = [
  'DATASET accepts:',
  '  imdb: downloads the official aclImdb_v1.tar.gz',
  '  a folder in the aclImdb layout (train/pos, train/neg, test/pos, test/neg holding <id>_<rating>.txt), or one containing aclImdb/',
  '  an aclImdb_v1.tar.gz archive (.tar.gz, .tgz or .tar)',
  '  a JSONL (.jsonl, .ndjson) or CSV (.csv, .tsv) file, with an optional separate test file (DATASET.test)',
  '  a folder holding train.jsonl or train.csv, and test.jsonl or test.csv',
];

const TABULAR_EXTENSIONS: Record<string, TabularFormat> = {
  '.jsonl': 'jsonl',
  '.ndjson': 'jsonl',
  '.csv': 'csv',
  '.tsv': 'csv',
};
const TAR_SUFFIXES = ['.tar.gz', '.tgz', '.tar'];
/** Options that only mean something for JSONL/CSV files. */
const TABULAR_ONLY_KEYS = ['test', 'test_ratio', 'text_column', 'label_column', 'id_column', 'threshold', 'delimiter'] as const;
/**
 * The schema's defaults for DatasetSpec. The config loader fills them in (ajv useDefaults), so a value equal to its
 * default cannot be told from an absent one and must mean the same.
 */
const SPEC_DEFAULTS: Partial<Record<keyof DatasetSpec, unknown>> = {
  test_ratio: DEFAULT_TEST_RATIO,
  text_column: 'text',
  label_column: 'label',
};

function isSet<K extends keyof DatasetSpec>(spec: DatasetSpec, key: K): boolean {
  return spec[key] !== undefined && spec[key] !== SPEC_DEFAULTS[key];
}

/**
 * Resolves a DATASET value (string or mapping, as written) without reading the data itself; relative paths are
 * resolved against baseDir. Throws UserError when the path does not exist or is not a recognised layout.
 */
export async function describeDataset(dataset: string | DatasetSpec, baseDir: string): Promise<DatasetDescription> {
  const spec: DatasetSpec = typeof dataset === 'string' ? { path: dataset } : dataset;
  const key = typeof dataset === 'string' ? 'DATASET' : 'DATASET.path';
  const classes = checkClasses(spec.classes);

  if (spec.path === 'imdb') {
    rejectTabularOptions(spec, 'imdb');
    const { url, sha256 } = imdbSource();
    return {
      kind: 'imdb-download',
      classes,
      inputs: [],
      identity: { source: 'imdb', url, sha256, classes },
      hasTest: true,
      testRatio: null,
      location: url,
      url,
      sha256,
    };
  }

  const abs = resolvePath(baseDir, spec.path);
  const st = await statOrThrow(abs, key, spec.path, baseDir);

  if (st.isFile()) {
    const lower = abs.toLowerCase();
    if (TAR_SUFFIXES.some((s) => lower.endsWith(s))) {
      rejectTabularOptions(spec, displayPath(abs));
      await checkLooksLikeTar(abs, key);
      return {
        kind: 'aclimdb-tar',
        classes,
        inputs: [abs],
        identity: { source: 'aclimdb-tar', classes },
        hasTest: true,
        testRatio: null,
        location: abs,
        file: abs,
      };
    }
    const format = tabularFormatOf(abs);
    if (!format) {
      throw new UserError(`${key}: ${displayPath(abs)} is not a recognised dataset file (unknown extension)`, ACCEPTED_LAYOUTS);
    }
    const files: TabularFile[] = [{ path: abs, source: 'train', format }];
    if (spec.test !== undefined) {
      const testAbs = resolvePath(baseDir, spec.test);
      const testSt = await statOrThrow(testAbs, 'DATASET.test', spec.test, baseDir);
      const testFormat = testSt.isFile() ? tabularFormatOf(testAbs) : undefined;
      if (!testFormat) {
        throw new UserError(`DATASET.test: ${displayPath(testAbs)} is not a JSONL (.jsonl, .ndjson) or CSV (.csv, .tsv) file`);
      }
      files.push({ path: testAbs, source: 'test', format: testFormat });
    }
    return describeFiles(spec, classes, files, abs);
  }

  if (!st.isDirectory()) {
    throw new UserError(`${key}: ${displayPath(abs)} is neither a file nor a folder`, ACCEPTED_LAYOUTS);
  }

  for (const root of [abs, path.join(abs, 'aclImdb')]) {
    const present = await aclImdbSubfoldersIn(root);
    if (present.length === 0) continue;
    if (present.length < 4) {
      const missing = ['train/pos', 'train/neg', 'test/pos', 'test/neg'].filter((s) => !present.includes(s));
      throw new UserError(`${key}: ${displayPath(root)} looks like an aclImdb folder but lacks ${missing.join(', ')}`, ACCEPTED_LAYOUTS);
    }
    rejectTabularOptions(spec, displayPath(root));
    const inputs = await listAclImdbFolder(root);
    const names = inputs.map((f) => path.relative(root, f).split(path.sep).join('/')).join('\n');
    return {
      kind: 'aclimdb-folder',
      classes,
      inputs,
      identity: {
        source: 'aclimdb-folder',
        classes,
        // The ids come from the file names, which a content fingerprint of `inputs` alone might not cover.
        files_sha256: createHash('sha256').update(names).digest('hex'),
      },
      hasTest: true,
      testRatio: null,
      location: root,
      root,
    };
  }

  if (spec.test !== undefined) {
    throw new UserError(`DATASET.test: only applies when DATASET.path is a single training file, and ${displayPath(abs)} is a folder`);
  }
  const entries = (await readdir(abs, { withFileTypes: true })).sort((a, b) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0));
  const files: TabularFile[] = [];
  for (const source of ['train', 'test'] as SourceSplit[]) {
    const candidates = entries.filter(
      (e) => !e.isDirectory() && path.parse(e.name).name === source && tabularFormatOf(e.name) !== undefined,
    );
    if (candidates.length > 1) {
      throw new UserError(
        `${key}: ${displayPath(abs)} holds several ${source} files (${candidates.map((c) => c.name).join(', ')}); keep one or point DATASET.path at a file`,
      );
    }
    if (candidates[0]) {
      const file = path.join(abs, candidates[0].name);
      files.push({ path: file, source, format: tabularFormatOf(file)! });
    }
  }
  if (!files.some((f) => f.source === 'train')) {
    const shown = entries.slice(0, 10).map((e) => (e.isDirectory() ? `${e.name}/` : e.name));
    const listing = entries.length === 0 ? 'it is empty' : `it holds ${shown.join(', ')}${entries.length > 10 ? ', ...' : ''}`;
    throw new UserError(`${key}: ${displayPath(abs)} is not a recognised dataset folder (${listing})`, ACCEPTED_LAYOUTS);
  }
  return describeFiles(spec, classes, files, abs);
}

function resolvePath(baseDir: string, p: string): string {
  const expanded = p === '~' || p.startsWith('~/') ? path.join(os.homedir(), p.slice(1)) : p;
  return path.resolve(baseDir, expanded);
}

async function statOrThrow(abs: string, key: string, written: string, baseDir: string): Promise<Stats> {
  try {
    return await stat(abs);
  } catch (e) {
    const code = (e as { code?: unknown }).code;
    const why = code === 'ENOENT' || code === 'ENOTDIR' ? 'does not exist' : `cannot be read (${String(code ?? e)})`;
    const from = path.isAbsolute(written) ? [] : [`("${written}" resolved from ${displayPath(baseDir) || '.'})`];
    throw new UserError(`${key}: ${displayPath(abs)} ${why}`, [...from, ...ACCEPTED_LAYOUTS]);
  }
}

function tabularFormatOf(file: string): TabularFormat | undefined {
  return TABULAR_EXTENSIONS[path.extname(file).toLowerCase()];
}

function checkClasses(classes: DatasetSpec['classes']): [string, string] {
  if (classes === undefined) return [...DEFAULT_CLASSES];
  if (!Array.isArray(classes) || classes.length !== 2 || classes.some((c) => typeof c !== 'string' || c === '')) {
    throw new UserError('DATASET.classes: expected two class names, e.g. [negative, positive]');
  }
  if (classes[0] === classes[1]) throw new UserError(`DATASET.classes: the two class names must differ (both are "${classes[0]}")`);
  return [classes[0], classes[1]];
}

function rejectTabularOptions(spec: DatasetSpec, what: string): void {
  const given = TABULAR_ONLY_KEYS.filter((k) => isSet(spec, k));
  if (given.length > 0) {
    throw new UserError(
      `DATASET.${given[0]}: only applies to JSONL/CSV files, and DATASET is ${what} (aclImdb layout); remove ${given.map((k) => `DATASET.${k}`).join(', ')}`,
    );
  }
}

async function checkLooksLikeTar(file: string, key: string): Promise<void> {
  const handle = await open(file, 'r');
  try {
    const head = Buffer.alloc(512);
    const { bytesRead } = await handle.read(head, 0, 512, 0);
    const gzip = bytesRead >= 2 && head[0] === 0x1f && head[1] === 0x8b;
    const ustar = bytesRead >= 262 && head.toString('latin1', 257, 262) === 'ustar';
    if (!gzip && !ustar) {
      throw new UserError(`${key}: ${displayPath(file)} is neither a gzip file nor a tar archive`, ACCEPTED_LAYOUTS);
    }
  } finally {
    await handle.close();
  }
}

async function describeFiles(
  spec: DatasetSpec,
  classes: [string, string],
  files: TabularFile[],
  location: string,
): Promise<FilesDescription> {
  const hasTest = files.some((f) => f.source === 'test');
  if (hasTest && isSet(spec, 'test_ratio')) {
    throw new UserError('DATASET.test_ratio: only applies when there is no test file, and this dataset has one');
  }
  const testRatio = hasTest ? null : (spec.test_ratio ?? DEFAULT_TEST_RATIO);
  if (testRatio !== null && !(testRatio > 0 && testRatio < 1)) {
    throw new UserError(`DATASET.test_ratio: must be between 0 and 1 (exclusive), got ${testRatio}`);
  }
  if (spec.threshold !== undefined && !Number.isFinite(spec.threshold)) {
    throw new UserError('DATASET.threshold: must be a number');
  }
  if (spec.delimiter !== undefined) {
    if (spec.delimiter.length !== 1) throw new UserError(`DATASET.delimiter: must be one character, got ${JSON.stringify(spec.delimiter)}`);
    if (!files.some((f) => f.format === 'csv')) throw new UserError('DATASET.delimiter: only applies to CSV files');
  }
  const columns: TabularColumns = {
    text: spec.text_column ?? 'text',
    label: spec.label_column ?? 'label',
    // `id` (the schema default) means line numbers: the shared IMDB JSONL's `id` repeats across the two classes.
    id: isSet(spec, 'id_column') ? spec.id_column! : null,
  };
  for (const file of files) {
    if (file.format === 'csv') {
      const fallback = path.extname(file.path).toLowerCase() === '.tsv' ? '\t' : ',';
      file.delimiter = spec.delimiter ?? detectDelimiter(await readFirstLine(file.path), fallback);
    }
    await checkTabularHead(file, columns);
  }
  const threshold = spec.threshold ?? null;
  return {
    kind: 'files',
    classes,
    inputs: files.map((f) => f.path),
    identity: {
      source: 'files',
      tables: files.map((f) => ({ source: f.source, format: f.format, ...(f.delimiter ? { delimiter: f.delimiter } : {}) })),
      text_column: columns.text,
      label_column: columns.label,
      id_column: columns.id,
      classes,
      threshold,
      test_ratio: testRatio,
    },
    hasTest,
    testRatio,
    location,
    files,
    columns,
    threshold,
  };
}
