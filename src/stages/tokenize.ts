import { readFile } from 'node:fs/promises';
import { existsSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { Worker } from 'node:worker_threads';
import { ArrowFileWriter, arrow, int32Column, int32ListColumn, int8Column, readArrowBatches, utf8Column } from '../runner/arrow.js';
import { UserError } from '../runner/errors.js';
import { askedThreads } from '../runner/threads.js';
import { TOKENIZER_FILES, resolveModelFolder } from '../runner/model-files.js';
import type { Stage } from '../runner/stage.js';
import type { Experiment } from '../runner/config.js';
import { tokenizeChunk, type TokenizeReply } from './tokenize-worker.js';

export const TOKENS_FILE = 'tokens.arrow';

export const tokensSchema = new arrow.Schema([
  new arrow.Field('id', new arrow.Utf8(), false),
  new arrow.Field('input_ids', new arrow.List(new arrow.Field('item', new arrow.Int32(), false)), false),
  new arrow.Field('length', new arrow.Int32(), false),
  new arrow.Field('label', new arrow.Int8(), false),
  new arrow.Field('split', new arrow.Utf8(), false),
]);

/** A tokenizer that turns a text into `[CLS] … [SEP]` ids, keeping the head of long texts. */
export interface TextTokenizer {
  encode(text: string): Int32Array;
  maxLength: number;
}

/** The model's own tokenizer (tokenizer.json through transformers.js), truncating to `maxLength` ids. */
export async function loadTokenizer(dir: string, maxLength: number): Promise<TextTokenizer> {
  const { env, AutoTokenizer } = await import('@huggingface/transformers');
  env.allowRemoteModels = false;
  env.localModelPath = '/';
  const limit = await modelMaxLength(dir);
  if (limit !== undefined && maxLength > limit) {
    throw new UserError(`MAX_LENGTH: ${maxLength} is longer than this model accepts (${limit} tokens, from ${dir})`);
  }
  const tokenizer = await AutoTokenizer.from_pretrained(path.resolve(dir));
  // The template's special tokens around an empty text: [CLS] [SEP] for BERT.
  const specials = tokenizer.encode('');
  const prefix = specials.slice(0, 1);
  const suffix = specials.slice(1);
  const room = maxLength - prefix.length - suffix.length;
  return {
    maxLength,
    encode(text: string): Int32Array {
      const body = tokenizer.encode(text, { add_special_tokens: false });
      const kept = body.length > room ? body.slice(0, room) : body;
      const ids = new Int32Array(prefix.length + kept.length + suffix.length);
      ids.set(prefix, 0);
      ids.set(kept, prefix.length);
      ids.set(suffix, prefix.length + kept.length);
      return ids;
    },
  };
}

/** The model's position limit, from config.json or tokenizer_config.json. */
async function modelMaxLength(dir: string): Promise<number | undefined> {
  for (const [file, key] of [
    ['config.json', 'max_position_embeddings'],
    ['tokenizer_config.json', 'model_max_length'],
  ] as const) {
    const p = path.join(dir, file);
    if (!existsSync(p)) continue;
    const value = JSON.parse(await readFile(p, 'utf8'))[key];
    if (typeof value === 'number' && value > 0 && value < 1e9) return value;
  }
  return undefined;
}

/** Below this many rows, starting worker threads costs more than it saves. */
const MIN_ROWS_FOR_WORKERS = 4096;

/** Worker threads for tokenizing: SENTIMENT_THREADS, else one per core (at most 8). */
export function tokenizeThreads(env: NodeJS.ProcessEnv = process.env): number {
  return askedThreads(env) ?? Math.min(os.availableParallelism(), 8);
}

type ChunkTokenizer = (texts: string[]) => Promise<{ flat: Int32Array; offsets: Int32Array }>;

/**
 * Tokenizes on one worker thread per core: each call splits its texts into one chunk per worker and
 * joins the results in order.
 */
export async function startWorkerPool(dir: string, maxLength: number, size: number): Promise<{ tokenize: ChunkTokenizer; close: () => Promise<void> }> {
  // Workers load this module's sibling: .js when built; .ts under tsx (tests, bench), where the
  // worker must register tsx itself because Node 20 workers don't inherit loader hooks.
  const ext = path.extname(fileURLToPath(import.meta.url));
  const entry = JSON.stringify(new URL(`./tokenize-worker${ext}`, import.meta.url).href);
  const source =
    ext === '.ts'
      ? `import(${JSON.stringify(import.meta.resolve('tsx/esm/api'))}).then((tsx) => { tsx.register(); return import(${entry}); })`
      : `import(${entry})`;
  const workers = await Promise.all(
    Array.from({ length: size }, () => {
      const worker = new Worker(source, { eval: true, workerData: { role: 'sentiment-tokenize', dir, maxLength } });
      return new Promise<Worker>((resolve, reject) => {
        worker.once('message', () => resolve(worker));
        worker.once('error', reject);
      });
    }),
  );
  let seq = 0;
  const ask = (worker: Worker, texts: string[]) =>
    new Promise<TokenizeReply>((resolve, reject) => {
      const id = seq++;
      const onMessage = (reply: TokenizeReply) => {
        if (reply.seq !== id) return;
        worker.off('message', onMessage);
        worker.off('error', reject);
        if (reply.error) reject(new Error(reply.error));
        else resolve(reply);
      };
      worker.on('message', onMessage);
      worker.once('error', reject);
      worker.postMessage({ seq: id, texts });
    });
  return {
    async tokenize(texts) {
      const per = Math.ceil(texts.length / workers.length);
      const replies = await Promise.all(workers.map((w, i) => ask(w, texts.slice(i * per, (i + 1) * per))));
      const offsets = new Int32Array(texts.length + 1);
      const flat = new Int32Array(replies.reduce((n, r) => n + r.flat.length, 0));
      let row = 0;
      let base = 0;
      for (const r of replies) {
        flat.set(r.flat, base);
        for (let i = 1; i < r.offsets.length; i++) offsets[row + i] = base + r.offsets[i];
        row += r.offsets.length - 1;
        base += r.flat.length;
      }
      return { flat, offsets };
    },
    async close() {
      await Promise.all(workers.map((w) => w.terminate()));
    },
  };
}

export function tokenizerReads(config: Experiment) {
  return { MAX_LENGTH: config.MAX_LENGTH };
}

export const tokenizeStage: Stage = {
  name: 'tokenize',
  version: 1,
  upstream: ['data'],
  reads: tokenizerReads,
  async inputs(ctx) {
    const folder = await resolveModelFolder(ctx.config.MODEL, ctx.experiment.baseDirs.MODEL ?? process.cwd(), ctx.cache.root, TOKENIZER_FILES);
    const files = ['tokenizer.json', 'tokenizer_config.json', 'special_tokens_map.json'].map((f) => path.join(folder.dir, f)).filter((f) => existsSync(f));
    return { tokenizer: await ctx.fingerprint(files, folder.dir) };
  },
  async produce(ctx) {
    const folder = await resolveModelFolder(ctx.config.MODEL, ctx.experiment.baseDirs.MODEL ?? process.cwd(), ctx.cache.root, TOKENIZER_FILES);
    // Loading here first also reports a bad MAX_LENGTH before any worker starts.
    const tokenizer = await loadTokenizer(folder.dir, ctx.config.MAX_LENGTH);
    const data = ctx.upstream.data!;
    const total = Number((data.manifest.info as { rows: number }).rows);
    const threads = tokenizeThreads();
    const pool = total >= MIN_ROWS_FOR_WORKERS && threads > 1 ? await startWorkerPool(folder.dir, ctx.config.MAX_LENGTH, threads) : undefined;
    const tokenize: ChunkTokenizer = pool ? pool.tokenize : async (texts) => tokenizeChunk((t) => tokenizer.encode(t), texts);
    const writer = await ArrowFileWriter.create(path.join(ctx.dir, TOKENS_FILE), tokensSchema);
    let done = 0;
    let atMaxLength = 0;
    let longest = 0;
    let tokensWritten = 0;
    try {
      for await (const batch of readArrowBatches(path.join(data.dir, 'data.arrow'))) {
        ctx.signal.throwIfAborted();
        const texts = batch.getChild('text')!.toArray() as string[];
        const { flat, offsets } = await tokenize(texts);
        const lengths = new Int32Array(texts.length);
        for (let i = 0; i < texts.length; i++) {
          lengths[i] = offsets[i + 1] - offsets[i];
          if (lengths[i] === ctx.config.MAX_LENGTH) atMaxLength++;
          if (lengths[i] > longest) longest = lengths[i];
        }
        await writer.write([
          utf8Column(batch.getChild('id')!.toArray() as string[]),
          int32ListColumn(flat, offsets),
          int32Column(lengths),
          int8Column(batch.getChild('label')!.toArray() as Int8Array),
          utf8Column(batch.getChild('split')!.toArray() as string[]),
        ]);
        tokensWritten += flat.length;
        done += texts.length;
        ctx.progress.update(done, total, 'rows');
      }
    } finally {
      await pool?.close();
    }
    const rows = await writer.close();
    return { rows, tokens: tokensWritten, rows_at_max_length: atMaxLength, longest, threads: pool ? threads : 1, files: [TOKENS_FILE] };
  },
};
