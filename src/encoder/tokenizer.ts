import { readFile } from 'node:fs/promises';
import { existsSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { Worker } from 'node:worker_threads';
import { UserError } from '../core/errors.js';
import { loadTransformers } from '../core/onnxruntime.js';
import { askedThreads } from '../core/settings.js';
import type { TokenizeReply } from './tokenize-worker.js';

/** A tokenizer that turns a text into `[CLS] … [SEP]` ids, keeping the head of long texts. */
export interface TextTokenizer {
  encode(text: string): Int32Array;
  maxLength: number;
}

/** The model's own tokenizer (tokenizer.json through transformers.js), truncating to `maxLength` ids. */
export async function loadTokenizer(dir: string, maxLength: number): Promise<TextTokenizer> {
  const { AutoTokenizer } = await loadTransformers();
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
export async function modelMaxLength(dir: string): Promise<number | undefined> {
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

/** Worker threads for tokenizing: the threads asked for (SENTIMENT_THREADS), else one per core (at most 8). */
export function tokenizeThreads(asked: number | undefined = askedThreads()): number {
  return asked ?? Math.min(os.availableParallelism(), 8);
}

export type ChunkTokenizer = (texts: string[]) => Promise<{ flat: Int32Array; offsets: Int32Array }>;

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
