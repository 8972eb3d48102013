import { createReadStream, createWriteStream, existsSync } from 'node:fs';
import { copyFile, cp, mkdir, readFile, writeFile } from 'node:fs/promises';
import path from 'node:path';
import readline from 'node:readline';
import { Cache, type CacheEntry } from './cache.js';
import { loadExperiment, type Experiment } from './config.js';
import { UserError } from './errors.js';
import { planStages, stagesUntil } from './pipeline.js';
import { resolveModelFolder, TOKENIZER_FILES } from './model-files.js';
import { ArrowFileWriter, arrow } from './arrow.js';

/** One input row's answer; `error` instead of a prediction for a row that has no usable text. */
export interface InferRow {
  line: number;
  text: string;
  probability: number | null;
  label: string | null;
  error?: string;
}

export interface InferRequest {
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

/** The cache entries `sentiment run` made for this config (same --set overrides), found by key. */
async function trainedEntries(configFile: string, sets: string[], cacheDir: string): Promise<{ config: Experiment; modelBaseDir: string; train: CacheEntry; data: CacheEntry; name: string }> {
  const experiment = loadExperiment(configFile, sets);
  const { STAGES } = await import('../stages/index.js');
  const plan = await planStages(experiment, stagesUntil(STAGES, 'train'), new Cache(path.resolve(cacheDir)));
  const train = plan.find((p) => p.stage.name === 'train')!.entry;
  const data = plan.find((p) => p.stage.name === 'data')!.entry;
  if (!train || !data) {
    const command = ['sentiment run', configFile, ...sets.map((s) => `--set ${JSON.stringify(s).slice(1, -1)}`)].join(' ');
    throw new UserError(`${configFile}: no trained head for this config${sets.length ? ' and these --set overrides' : ''} in ${path.resolve(cacheDir)}. Train it first with: ${command}`);
  }
  return { config: experiment.config, modelBaseDir: experiment.baseDirs.MODEL ?? process.cwd(), train, data, name: experiment.name };
}

/** Loads tokenizer, encoder and head once, for a config (via the cache) or an exported folder. */
export async function openPredictor(req: InferRequest) {
  const { createPredictor } = await import('../inference/predictor.js');
  const { loadTrainedHead } = await import('../stages/train.js');
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
    const found = await trainedEntries(req.config!, req.sets, req.cacheDir);
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

/** Rows of a .txt (one text per line), .csv or .jsonl file, streamed; unusable rows carry an error. */
export async function* readTextRows(file: string, textColumn: string): AsyncGenerator<{ line: number; text: string; error?: string }> {
  if (!existsSync(file)) throw new UserError(`--file ${file}: no such file`);
  const ext = path.extname(file).toLowerCase();
  if (ext === '.csv' || ext === '.tsv') {
    const { parse } = await import('csv-parse');
    const { detectDelimiter, readFirstLine } = await import('../data/tabular.js');
    const delimiter = detectDelimiter(await readFirstLine(file));
    const parser = createReadStream(file).pipe(parse({ delimiter, columns: true, relax_column_count: true, bom: true, info: true }));
    let checked = false;
    for await (const { record, info } of parser as AsyncIterable<{ record: Record<string, string>; info: { lines: number } }>) {
      if (!checked) {
        checked = true;
        if (!(textColumn in record)) throw new UserError(`--file ${file}: no column "${textColumn}" (columns: ${Object.keys(record).join(', ')}); choose one with --text-column`);
      }
      const text = record[textColumn];
      yield text?.trim() ? { line: info.lines, text } : { line: info.lines, text: text ?? '', error: 'empty text' };
    }
    return;
  }
  const lines = readline.createInterface({ input: createReadStream(file), crlfDelay: Infinity });
  let line = 0;
  for await (const raw of lines) {
    line++;
    if (ext === '.jsonl' || ext === '.ndjson') {
      if (!raw.trim()) {
        yield { line, text: '', error: 'empty line' };
        continue;
      }
      let value: unknown;
      try {
        value = JSON.parse(raw);
      } catch (e) {
        yield { line, text: '', error: `invalid JSON: ${(e as Error).message}` };
        continue;
      }
      const text = (value as Record<string, unknown> | null)?.[textColumn];
      if (typeof text !== 'string' || !text.trim()) yield { line, text: typeof text === 'string' ? text : '', error: `no text in field "${textColumn}"` };
      else yield { line, text };
    } else {
      yield raw.trim() ? { line, text: raw } : { line, text: raw, error: 'empty line' };
    }
  }
}

/** Where --file results go: CSV, JSONL or Arrow by --out's extension, or JSON lines on stdout. */
export async function openRowWriter(out: string | undefined, stdout: NodeJS.WritableStream) {
  const ext = out ? path.extname(out).toLowerCase() : '';
  if (out) await mkdir(path.dirname(path.resolve(out)), { recursive: true });
  if (ext === '.arrow' || ext === '.feather') {
    const schema = new arrow.Schema([
      new arrow.Field('line', new arrow.Int32(), false),
      new arrow.Field('text', new arrow.Utf8(), false),
      new arrow.Field('probability', new arrow.Float64(), true),
      new arrow.Field('label', new arrow.Utf8(), true),
      new arrow.Field('error', new arrow.Utf8(), true),
    ]);
    const writer = await ArrowFileWriter.create(out!, schema);
    return {
      async write(rows: InferRow[]) {
        await writer.write([
          arrow.vectorFromArray(rows.map((r) => r.line), new arrow.Int32()).data[0],
          arrow.vectorFromArray(rows.map((r) => r.text), new arrow.Utf8()).data[0],
          arrow.vectorFromArray(rows.map((r) => r.probability), new arrow.Float64()).data[0],
          arrow.vectorFromArray(rows.map((r) => r.label), new arrow.Utf8()).data[0],
          arrow.vectorFromArray(rows.map((r) => r.error ?? null), new arrow.Utf8()).data[0],
        ]);
      },
      close: () => writer.close().then(() => undefined),
    };
  }
  if (out && ext !== '.csv' && ext !== '.jsonl' && ext !== '.ndjson') throw new UserError(`--out ${out}: use a .csv, .jsonl or .arrow file`);
  const stream: NodeJS.WritableStream = out ? createWriteStream(out) : stdout;
  const put = (s: string) => (stream.write(s) ? Promise.resolve() : new Promise<void>((r) => stream.once('drain', () => r())));
  if (ext === '.csv') {
    const { stringify } = await import('csv-stringify/sync');
    await put(stringify([['line', 'text', 'probability', 'label', 'error']]));
    return {
      write: (rows: InferRow[]) => put(stringify(rows.map((r) => [r.line, r.text, r.probability ?? '', r.label ?? '', r.error ?? '']))),
      close: () => (out ? new Promise<void>((r) => stream.end(() => r())) : Promise.resolve()),
    };
  }
  return {
    write: (rows: InferRow[]) => put(rows.map((r) => `${JSON.stringify(r)}\n`).join('')),
    close: () => (out ? new Promise<void>((r) => stream.end(() => r())) : Promise.resolve()),
  };
}

/** Rows predicted together: bounds memory while streaming a file. */
const FILE_CHUNK = 256;

/**
 * Predicts every row of a file, streaming: each input row gives exactly one output row, in order (rows
 * without usable text get an `error` instead of a prediction). Returns counts.
 */
export async function inferFile(
  predictor: { predict(texts: string[]): Promise<{ probability: number; label: string }[]> },
  rows: AsyncIterable<{ line: number; text: string; error?: string }>,
  write: (rows: InferRow[]) => Promise<void>,
  onProgress?: (done: number) => void,
): Promise<{ rows: number; errors: number }> {
  let chunk: { line: number; text: string; error?: string }[] = [];
  let done = 0;
  let errors = 0;
  const flush = async () => {
    const usable = chunk.filter((r) => !r.error);
    const predictions = await predictor.predict(usable.map((r) => r.text));
    let k = 0;
    const out = chunk.map((r): InferRow => {
      if (r.error) {
        errors++;
        return { line: r.line, text: r.text, probability: null, label: null, error: r.error };
      }
      const p = predictions[k++];
      return { line: r.line, text: r.text, probability: p.probability, label: p.label };
    });
    await write(out);
    done += chunk.length;
    chunk = [];
    onProgress?.(done);
  };
  for await (const row of rows) {
    chunk.push(row);
    if (chunk.length >= FILE_CHUNK) await flush();
  }
  if (chunk.length > 0) await flush();
  return { rows: done, errors };
}

/**
 * Writes a self-contained model folder: the head, its settings and the resolved config, the dataset's
 * classes, and a copy of the encoder's files (tokenizer, config, ONNX weights) under encoder/.
 */
export async function exportModel(configFile: string, sets: string[], cacheDir: string, outDir: string): Promise<{ dir: string; files: string[] }> {
  const found = await trainedEntries(configFile, sets, cacheDir);
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
