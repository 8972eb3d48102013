import { createReadStream, createWriteStream, existsSync } from 'node:fs';
import { Readable } from 'node:stream';
import { copyFile, cp, mkdir, readdir, readFile, stat, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { createHash } from 'node:crypto';
import canonicalize from 'canonicalize';
import writeFileAtomic from 'write-file-atomic';
import { Cache, type CacheEntry, type StageKey } from '../core/cache.js';
import { loadExperiment, UsageError, type Experiment, type LoadedExperiment } from '../config/experiment.js';
import { UserError } from '../core/errors.js';
import { checkFolderOption } from '../core/system-errors.js';
import { planStages, stagesUntil } from './pipeline.js';
import type { AnyStage } from '../stages/stage.js';
import { resolveModelFolder, TOKENIZER_FILES } from '../core/model-files.js';
import { ArrowFileWriter, arrow } from '../core/arrow.js';

/** One input row's answer; `error` instead of a prediction for a row that has no usable text. */
export interface InferRow {
  line: number;
  text: string;
  probability: number | null;
  label: string | null;
  error?: string;
}

export interface InferRequest {
  /** The pipeline's stages, to find the trained head's entries by key. */
  stages: AnyStage[];
  /** An experiment file (finds its head through the cache), or… */
  config?: string;
  /** …a folder written by `sentiment export`. */
  model?: string;
  sets: string[];
  cacheDir: string;
}

/** What `sentiment export` writes next to head.safetensors, head.json and encoder/. */
interface ExportedModel {
  format: 1;
  experiment: string;
  config: Experiment;
  classes: [string, string];
}

const EXPORT_MANIFEST = 'sentiment-model.json';

/** The stages whose entries a trained head needs, as the index records them. */
const TRAINED_STAGES = ['data', 'tokenize', 'encode', 'train'] as const;
type TrainedKeys = Record<(typeof TRAINED_STAGES)[number], StageKey>;

/** `<cache>/index/<id>.json`: the keys a run that trained this experiment used (see trainedIndexId). */
interface TrainedIndex {
  format: 1;
  experiment: string;
  keys: TrainedKeys;
  createdAt: string;
}

export const INDEX_DIR = 'index';

/**
 * What identifies an experiment's trained head without fingerprints of external files, so it can be found
 * after its dataset was moved: the version and config values of every stage up to train, and DATASET and
 * MODEL as given with the folders they resolve against. SHA-256 of its canonical JSON.
 */
export function trainedIndexId(experiment: LoadedExperiment, stages: AnyStage[]): string {
  const { config, baseDirs } = experiment;
  const identity = {
    stages: Object.fromEntries(stagesUntil(stages, 'train').map((s) => [s.name, { version: s.version, config: s.reads(config) }])),
    DATASET: { value: config.DATASET ?? null, baseDir: baseDirs.DATASET ?? process.cwd() },
    MODEL: { value: config.MODEL ?? null, baseDir: baseDirs.MODEL ?? process.cwd() },
  };
  return createHash('sha256').update(canonicalize(identity) ?? '').digest('hex');
}

/**
 * Records, after a run completed the train stage, which entries it used, so `infer --config` and `export
 * --config` find the head from the cache alone (written atomically; the latest run wins). `paths` are the
 * run's stage entry folders.
 */
export async function recordTrainedIndex(experiment: LoadedExperiment, stages: AnyStage[], cacheDir: string, paths: Partial<Record<string, string>>): Promise<void> {
  const cache = new Cache(path.resolve(cacheDir));
  const keys: Partial<TrainedKeys> = {};
  for (const name of TRAINED_STAGES) {
    const at = paths[name] ? cache.entryOf(path.join(paths[name], 'manifest.json')) : undefined;
    if (!at || at.stage !== name) return;
    keys[name] = at.key;
  }
  const record: TrainedIndex = { format: 1, experiment: experiment.name, keys: keys as TrainedKeys, createdAt: new Date().toISOString() };
  const dir = path.join(cache.root, INDEX_DIR);
  await mkdir(dir, { recursive: true });
  await writeFileAtomic(path.join(dir, `${trainedIndexId(experiment, stages)}.json`), `${JSON.stringify(record, null, 2)}\n`);
}

/** The entries the index names for this experiment, when it has a record and every entry is intact. */
async function indexedEntries(experiment: LoadedExperiment, stages: AnyStage[], cache: Cache): Promise<{ train: CacheEntry; data: CacheEntry } | undefined> {
  let record: TrainedIndex;
  try {
    record = JSON.parse(await readFile(path.join(cache.root, INDEX_DIR, `${trainedIndexId(experiment, stages)}.json`), 'utf8')) as TrainedIndex;
  } catch {
    return undefined;
  }
  if (record?.format !== 1 || typeof record.keys !== 'object' || record.keys === null) return undefined;
  const found: Partial<Record<string, CacheEntry>> = {};
  for (const name of TRAINED_STAGES) {
    const key = record.keys[name];
    if (typeof key !== 'string' || !/^[0-9a-f]{64}$/.test(key)) return undefined;
    const entry = await cache.lookup(name, key);
    if (!entry) return undefined;
    found[name] = entry;
  }
  return { train: found.train!, data: found.data! };
}

/**
 * The cache entries `sentiment run` made for this config (same --set overrides): found by planning every
 * stage's key as a run would; when that cannot be done because an input is gone (the dataset was moved),
 * through the index the run recorded (recordTrainedIndex), so only the cache is needed.
 */
async function trainedEntries(configFile: string, sets: string[], cacheDir: string, stages: AnyStage[]): Promise<{ config: Experiment; modelBaseDir: string; train: CacheEntry; data: CacheEntry; name: string }> {
  const experiment = loadExperiment(configFile, sets);
  await checkFolderOption('--cache-dir', cacheDir);
  const cache = new Cache(path.resolve(cacheDir));
  let found: { train?: CacheEntry; data?: CacheEntry };
  // Why the plan could not be made (an input that cannot be read), when the index has no record either.
  let unplanned: string | undefined;
  try {
    const plan = await planStages(experiment, stagesUntil(stages, 'train'), cache);
    found = { train: plan.find((p) => p.stage.name === 'train')!.entry, data: plan.find((p) => p.stage.name === 'data')!.entry };
  } catch (e) {
    if (!(e instanceof UserError)) throw e;
    // An input is gone (say the dataset was moved): the index the run recorded needs only the cache.
    found = (await indexedEntries(experiment, stages, cache)) ?? {};
    unplanned = e.message;
  }
  const { train, data } = found;
  if (!train || !data) {
    const command = ['sentiment run', configFile, ...sets.map((s) => `--set ${JSON.stringify(s).slice(1, -1)}`)].join(' ');
    const exportCommand = ['sentiment export --config', configFile, ...sets.map((s) => `--set ${JSON.stringify(s).slice(1, -1)}`), '--out DIR'].join(' ');
    throw new UserError(`${configFile}: no trained head for this config${sets.length ? ' and these --set overrides' : ''} in ${path.resolve(cacheDir)}${unplanned ? ` (nor could its key be computed: ${unplanned})` : ''}. Train it first with: ${command}`, [
      `To use a trained model elsewhere (another machine, without its dataset or this cache), write it to a folder with \`${exportCommand}\` and predict with \`sentiment infer --model DIR\`.`,
    ]);
  }
  return { config: experiment.config, modelBaseDir: experiment.baseDirs.MODEL ?? process.cwd(), train, data, name: experiment.name };
}

/** Loads tokenizer, encoder and head once, for a config (via the cache) or an exported folder. */
export async function openPredictor(req: InferRequest) {
  const { createPredictor } = await import('../inference/predictor.js');
  const { loadTrainedHead } = await import('../training/trained-head.js');
  let config: Experiment;
  let classes: [string, string];
  let headDir: string;
  let modelBaseDir: string;
  if (req.model) {
    const dir = path.resolve(req.model);
    const manifestFile = path.join(dir, EXPORT_MANIFEST);
    if (!existsSync(manifestFile)) throw new UserError(`--model ${req.model}: not a folder written by \`sentiment export\` (no ${EXPORT_MANIFEST})`);
    const exported = JSON.parse(await readFile(manifestFile, 'utf8')) as ExportedModel;
    config = { ...exported.config, MODEL: path.join(dir, 'encoder') };
    classes = exported.classes;
    headDir = dir;
    modelBaseDir = dir;
  } else {
    const found = await trainedEntries(req.config!, req.sets, req.cacheDir, req.stages);
    config = found.config;
    classes = (found.data.manifest.info as { classes: [string, string] }).classes;
    headDir = found.train.dir;
    modelBaseDir = found.modelBaseDir;
  }
  const { head } = await loadTrainedHead(headDir, config.BACKEND);
  const predictor = await createPredictor({ config, modelBaseDir, cacheRoot: path.resolve(req.cacheDir), head, classes });
  return {
    predictor,
    async close() {
      await predictor.dispose();
      head.dispose();
    },
  };
}

/** How an input file of `infer --file` is read. */
export type TextFormat = 'txt' | 'csv' | 'jsonl';
export const TEXT_FORMATS: readonly TextFormat[] = ['txt', 'csv', 'jsonl'];

const FORMAT_OF_EXTENSION: Record<string, TextFormat> = { '.txt': 'txt', '.csv': 'csv', '.tsv': 'csv', '.jsonl': 'jsonl', '.ndjson': 'jsonl' };

/** One input record of `infer --file`: its line, its text, or why it has none. */
export interface TextRow {
  line: number;
  text: string;
  error?: string;
  /** Some bytes were not UTF-8 and were read as U+FFFD. */
  nonUtf8?: boolean;
}

/** `--file` as shown in messages. */
export function inputLabel(file: string): string {
  return file === '-' ? 'stdin' : file;
}

/**
 * Checks --file before any work: it exists and is a file, and its format is known (from --format, else its
 * extension; stdin, `-`, is lines of text unless --format says otherwise). Returns the format.
 */
export async function checkInputFile(file: string, format?: string): Promise<TextFormat> {
  if (format !== undefined && !TEXT_FORMATS.includes(format as TextFormat)) {
    throw new UsageError(`--format ${format}: use one of ${TEXT_FORMATS.join(', ')}`);
  }
  if (file === '-') return (format as TextFormat | undefined) ?? 'txt';
  let info;
  try {
    info = await stat(file);
  } catch {
    throw new UserError(`--file ${file}: no such file`);
  }
  if (info.isDirectory()) throw new UserError(`--file ${file}: is a folder; give a .txt, .csv or .jsonl file`);
  if (!info.isFile()) throw new UserError(`--file ${file}: not a regular file`);
  if (format) return format as TextFormat;
  const ext = path.extname(file).toLowerCase();
  const found = FORMAT_OF_EXTENSION[ext];
  if (!found) {
    throw new UserError(`--file ${file}: unknown format ${ext ? `"${ext}"` : '(no extension)'}; use a .txt (one text per line), .csv/.tsv or .jsonl file, or say which with --format txt|csv|jsonl`);
  }
  return found;
}

const OUT_EXTENSIONS = ['.csv', '.jsonl', '.ndjson', '.arrow', '.feather'];

/** Checks --out before any work: a known extension, in a folder that exists, not a folder itself, not the input. */
export async function checkOutputFile(out: string, input?: string): Promise<void> {
  const ext = path.extname(out).toLowerCase();
  const exists = await stat(out).catch(() => undefined);
  if (exists?.isDirectory()) throw new UserError(`--out ${out}: is a folder; give a file name ending in .csv, .jsonl or .arrow`);
  if (!OUT_EXTENSIONS.includes(ext)) throw new UserError(`--out ${out}: use a .csv, .jsonl or .arrow file`);
  const parent = path.dirname(path.resolve(out));
  const dir = await stat(parent).catch(() => undefined);
  if (!dir) throw new UserError(`--out ${out}: the folder ${path.dirname(out)} does not exist`);
  if (!dir.isDirectory()) throw new UserError(`--out ${out}: ${path.dirname(out)} is not a folder`);
  if (input && input !== '-' && path.resolve(input) === path.resolve(out)) throw new UserError(`--out ${out}: is the --file being read; write to another file`);
}

/** Chunks of a stream, the first ones (up to a line break) read ahead so the CSV delimiter can be detected. */
async function peekFirstLine(input: NodeJS.ReadableStream): Promise<{ first: string; stream: NodeJS.ReadableStream }> {
  const iterator = (input as AsyncIterable<Buffer | string>)[Symbol.asyncIterator]();
  const head: Buffer[] = [];
  let size = 0;
  for (;;) {
    const next = await iterator.next();
    if (next.done) break;
    const chunk = typeof next.value === 'string' ? Buffer.from(next.value) : next.value;
    head.push(chunk);
    size += chunk.length;
    if (chunk.includes(0x0a) || size > 1 << 20) break;
  }
  let first = Buffer.concat(head).toString('utf8');
  if (first.charCodeAt(0) === 0xfeff) first = first.slice(1);
  const end = first.search(/\r?\n/);
  const stream = Readable.from(
    (async function* () {
      yield* head;
      for (;;) {
        const next = await iterator.next();
        if (next.done) return;
        yield next.value;
      }
    })(),
  );
  return { first: end === -1 ? first : first.slice(0, end), stream };
}

/**
 * Rows of a .txt (one text per line), .csv or .jsonl file (or stdin for `-`), streamed: exactly one row per
 * input record, with the line it starts on; rows without usable text carry an `error`. Lines end at `\n`
 * only (a trailing `\r` is dropped), a UTF-8 BOM is skipped, and bytes that are not UTF-8 are read as U+FFFD
 * and flagged. A CSV record whose field count differs from the header's is an error row; a quote that never
 * closes (so nothing after it can be read) throws a UserError naming the line where its record begins, after
 * every row before it has been given.
 */
export async function* readTextRows(
  file: string,
  textColumn: string,
  opts: { format?: TextFormat; stdin?: NodeJS.ReadableStream } = {},
): AsyncGenerator<TextRow> {
  const format = opts.format ?? (await checkInputFile(file));
  const label = inputLabel(file);
  const open = () => (file === '-' ? (opts.stdin ?? process.stdin) : createReadStream(file));
  if (format === 'csv') {
    const { detectDelimiter, readCsvRecords } = await import('../data/tabular.js');
    const { first, stream } = await peekFirstLine(open());
    const delimiter = detectDelimiter(first);
    let header: string[] | undefined;
    let column = -1;
    for await (const { record, line, nonUtf8, error } of readCsvRecords(stream, label, delimiter)) {
      if (error !== undefined) {
        yield { line, text: '', error: `malformed CSV record: ${error}` };
        continue;
      }
      if (!header) {
        header = record;
        column = header.indexOf(textColumn);
        if (column === -1) column = header.findIndex((h) => h.trim() === textColumn);
        if (column === -1) {
          const shown = header.slice(0, 20).map((h) => (h.length > 40 ? `${h.slice(0, 40)}…` : h));
          throw new UserError(`--file ${label}:${line}: no column "${textColumn}" (columns: ${shown.join(', ')}${header.length > 20 ? ', …' : ''}); choose one with --text-column`);
        }
        continue;
      }
      const text = record[column] ?? '';
      const flag = nonUtf8 ? { nonUtf8: true } : {};
      if (record.length !== header.length) yield { line, text, error: `row has ${record.length} field${record.length === 1 ? '' : 's'}, header has ${header.length}`, ...flag };
      else yield text.trim() ? { line, text, ...flag } : { line, text, error: 'empty text', ...flag };
    }
    return;
  }
  const { splitLines } = await import('../core/lines.js');
  for await (const { line, text: raw, nonUtf8 } of splitLines(open() as AsyncIterable<Buffer>)) {
    const flag = nonUtf8 ? { nonUtf8: true } : {};
    if (format === 'jsonl') {
      if (!raw.trim()) {
        yield { line, text: '', error: 'empty line', ...flag };
        continue;
      }
      let value: unknown;
      try {
        value = JSON.parse(raw);
      } catch (e) {
        yield { line, text: '', error: `invalid JSON: ${(e as Error).message}`, ...flag };
        continue;
      }
      const text = value !== null && typeof value === 'object' && !Array.isArray(value) ? (value as Record<string, unknown>)[textColumn] : undefined;
      if (typeof text !== 'string' || !text.trim()) yield { line, text: typeof text === 'string' ? text : '', error: `no text in field "${textColumn}"`, ...flag };
      else yield { line, text, ...flag };
    } else {
      yield raw.trim() ? { line, text: raw, ...flag } : { line, text: raw, error: 'empty line', ...flag };
    }
  }
}

/** Where --file results go: CSV, JSONL or Arrow by --out's extension, or JSON lines on stdout. Check --out with checkOutputFile first. */
export async function openRowWriter(out: string | undefined, stdout: NodeJS.WritableStream) {
  const ext = out ? path.extname(out).toLowerCase() : '';
  if (out && !OUT_EXTENSIONS.includes(ext)) throw new UserError(`--out ${out}: use a .csv, .jsonl or .arrow file`);
  if (ext === '.arrow' || ext === '.feather') {
    const schema = new arrow.Schema([
      new arrow.Field('line', new arrow.Int32(), false),
      new arrow.Field('text', new arrow.Utf8(), false),
      new arrow.Field('probability', new arrow.Float64(), true),
      new arrow.Field('label', new arrow.Utf8(), true),
      new arrow.Field('error', new arrow.Utf8(), true),
    ]);
    const writer = await ArrowFileWriter.create(out!, schema);
    let wrote = false;
    const write = async (rows: InferRow[]) => {
      wrote = true;
      await writer.write([
          arrow.vectorFromArray(rows.map((r) => r.line), new arrow.Int32()).data[0],
          arrow.vectorFromArray(rows.map((r) => r.text), new arrow.Utf8()).data[0],
          arrow.vectorFromArray(rows.map((r) => r.probability), new arrow.Float64()).data[0],
          arrow.vectorFromArray(rows.map((r) => r.label), new arrow.Utf8()).data[0],
          arrow.vectorFromArray(rows.map((r) => r.error ?? null), new arrow.Utf8()).data[0],
      ]);
    };
    return {
      write,
      // No rows: one empty batch, so the file still holds the schema and is a valid Arrow file.
      close: async () => {
        if (!wrote) await write([]);
        await writer.close();
      },
    };
  }
  const stream: NodeJS.WritableStream = out ? createWriteStream(out) : stdout;
  let failed: Error | undefined;
  if (out) stream.on('error', (e: Error) => (failed = e));
  const put = (s: string) => {
    if (failed) return Promise.reject(new UserError(`--out ${out}: ${failed.message}`));
    return stream.write(s) ? Promise.resolve() : new Promise<void>((r) => stream.once('drain', () => r()));
  };
  const close = () =>
    out
      ? new Promise<void>((resolve, reject) => {
          if (failed) reject(new UserError(`--out ${out}: ${failed.message}`));
          else stream.end(() => resolve());
        })
      : Promise.resolve();
  if (ext === '.csv') {
    const { stringify } = await import('csv-stringify/sync');
    await put(stringify([['line', 'text', 'probability', 'label', 'error']]));
    return {
      write: (rows: InferRow[]) => put(stringify(rows.map((r) => [r.line, r.text, r.probability ?? '', r.label ?? '', r.error ?? '']))),
      close,
    };
  }
  return {
    write: (rows: InferRow[]) => put(rows.map((r) => `${JSON.stringify(r)}\n`).join('')),
    close,
  };
}

/** Rows predicted together: bounds memory while streaming a file. */
const FILE_CHUNK = 256;

export interface InferFileCounts {
  rows: number;
  errors: number;
  /** Rows with bytes that are not UTF-8, and the line of the first. */
  nonUtf8: number;
  firstNonUtf8?: number;
}

/**
 * Predicts every row of a file, streaming: each input row gives exactly one output row, in order (rows
 * without usable text get an `error` instead of a prediction). When reading fails part-way (a CSV quote that
 * never closes), every row read before is still predicted and written, then the error is thrown.
 */
export async function inferFile(
  predictor: { predict(texts: string[]): Promise<{ probability: number; label: string }[]> },
  rows: AsyncIterable<TextRow>,
  write: (rows: InferRow[]) => Promise<void>,
  onProgress?: (done: number) => void,
  /** Stops reading (Ctrl-C); the rows read so far are still predicted and written. */
  signal?: AbortSignal,
): Promise<InferFileCounts> {
  let chunk: TextRow[] = [];
  const counts: InferFileCounts = { rows: 0, errors: 0, nonUtf8: 0 };
  const flush = async () => {
    const usable = chunk.filter((r) => !r.error);
    const predictions = usable.length > 0 ? await predictor.predict(usable.map((r) => r.text)) : [];
    let k = 0;
    const out = chunk.map((r): InferRow => {
      if (r.nonUtf8) {
        counts.nonUtf8++;
        counts.firstNonUtf8 ??= r.line;
      }
      if (r.error) {
        counts.errors++;
        return { line: r.line, text: r.text, probability: null, label: null, error: r.error };
      }
      const p = predictions[k++]!;
      return { line: r.line, text: r.text, probability: p.probability, label: p.label };
    });
    await write(out);
    counts.rows += chunk.length;
    chunk = [];
    onProgress?.(counts.rows);
  };
  const iterator = rows[Symbol.asyncIterator]();
  let readError: { error: unknown } | undefined;
  for (;;) {
    if (signal?.aborted) {
      await iterator.return?.();
      break;
    }
    let next: IteratorResult<TextRow>;
    try {
      next = await iterator.next();
    } catch (error) {
      readError = { error };
      break;
    }
    if (next.done) break;
    chunk.push(next.value);
    if (chunk.length >= FILE_CHUNK) await flush();
  }
  if (chunk.length > 0) await flush();
  if (readError) throw readError.error;
  return counts;
}

/** --out of `sentiment export` must be a new or empty folder, or one an earlier export wrote (it is updated). */
export async function checkExportFolder(outDir: string): Promise<void> {
  const info = await stat(outDir).catch(() => undefined);
  if (!info) return;
  if (!info.isDirectory()) throw new UserError(`--out ${outDir}: is a file; export writes a folder, so give a new folder name`);
  const entries = await readdir(outDir);
  if (entries.length > 0 && !entries.includes(EXPORT_MANIFEST)) {
    throw new UserError(`--out ${outDir}: the folder is not empty and was not written by \`sentiment export\` (no ${EXPORT_MANIFEST}); give a new or empty folder`);
  }
}

/**
 * Writes a self-contained model folder: the head, its settings and the resolved config, the dataset's
 * classes, and a copy of the encoder's files (tokenizer, config, ONNX weights) under encoder/.
 */
export async function exportModel(configFile: string, sets: string[], cacheDir: string, outDir: string, stages: AnyStage[]): Promise<{ dir: string; files: string[] }> {
  await checkExportFolder(outDir);
  const found = await trainedEntries(configFile, sets, cacheDir, stages);
  const { ENCODER_FILES } = await import('../encoder/encoder.js');
  const folder = await resolveModelFolder(found.config.MODEL, found.modelBaseDir, path.resolve(cacheDir), {
    required: [...TOKENIZER_FILES.required, ...ENCODER_FILES.required],
    optional: [...TOKENIZER_FILES.optional, ...ENCODER_FILES.optional],
  });
  const dir = path.resolve(outDir);
  await mkdir(path.join(dir, 'encoder'), { recursive: true });
  const files = [...TOKENIZER_FILES.required, ...TOKENIZER_FILES.optional, ...ENCODER_FILES.required, ...ENCODER_FILES.optional].filter((f, i, all) => all.indexOf(f) === i);
  const copied: string[] = [];
  for (const f of files) {
    if (!existsSync(path.join(folder.dir, f))) continue;
    await mkdir(path.dirname(path.join(dir, 'encoder', f)), { recursive: true });
    await cp(path.join(folder.dir, f), path.join(dir, 'encoder', f));
    copied.push(`encoder/${f}`);
  }
  for (const f of ['head.safetensors', 'head.json']) await copyFile(path.join(found.train.dir, f), path.join(dir, f));
  const manifest: ExportedModel = {
    format: 1,
    experiment: found.name,
    config: found.config,
    classes: (found.data.manifest.info as { classes: [string, string] }).classes,
  };
  await writeFile(path.join(dir, EXPORT_MANIFEST), JSON.stringify(manifest, null, 2));
  return { dir, files: [EXPORT_MANIFEST, 'head.safetensors', 'head.json', ...copied] };
}
