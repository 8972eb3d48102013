// A worker thread that tokenizes chunks of texts for the tokenize stage (one per core).
import { parentPort, workerData } from 'node:worker_threads';
import { loadTokenizer } from './tokenizer.js';

export interface TokenizeRequest {
  seq: number;
  texts: string[];
}

export interface TokenizeReply {
  seq: number;
  /** Row i's ids are flat[offsets[i] .. offsets[i+1]). */
  flat: Int32Array;
  offsets: Int32Array;
  error?: string;
}

/** Tokenizes texts into one flat array with row offsets (cheap to transfer between threads). */
export function tokenizeChunk(encode: (text: string) => Int32Array, texts: string[]): { flat: Int32Array; offsets: Int32Array } {
  const rows = texts.map(encode);
  const offsets = new Int32Array(rows.length + 1);
  for (let i = 0; i < rows.length; i++) offsets[i + 1] = offsets[i] + rows[i].length;
  const flat = new Int32Array(offsets[rows.length]);
  rows.forEach((row, i) => flat.set(row, offsets[i]));
  return { flat, offsets };
}

if (parentPort && workerData?.role === 'sentiment-tokenize') {
  const port = parentPort;
  const tokenizer = await loadTokenizer(workerData.dir as string, workerData.maxLength as number);
  port.on('message', (req: TokenizeRequest) => {
    try {
      const { flat, offsets } = tokenizeChunk((t) => tokenizer.encode(t), req.texts);
      port.postMessage({ seq: req.seq, flat, offsets } satisfies TokenizeReply, [flat.buffer as ArrayBuffer, offsets.buffer as ArrayBuffer]);
    } catch (e) {
      port.postMessage({ seq: req.seq, flat: new Int32Array(0), offsets: new Int32Array(0), error: (e as Error).message });
    }
  });
  port.postMessage('ready');
}
