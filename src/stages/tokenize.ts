import { existsSync } from 'node:fs';
import path from 'node:path';
import { ArrowFileWriter, arrow, int32Column, int32ListColumn, int8Column, readArrowBatches, utf8Column } from '../core/arrow.js';
import { TOKENIZER_FILES, resolveModelFolder } from '../core/model-files.js';
import type { KeyContext, Sources, Stage } from './stage.js';
import type { Experiment } from '../config/experiment.js';
import { tokenizeChunk } from '../encoder/tokenize-worker.js';
import { loadTokenizer, startWorkerPool, tokenizeThreads, type ChunkTokenizer } from '../encoder/tokenizer.js';

export const TOKENS_FILE = 'tokens.arrow';

export const tokensSchema = new arrow.Schema([
  new arrow.Field('id', new arrow.Utf8(), false),
  new arrow.Field('input_ids', new arrow.List(new arrow.Field('item', new arrow.Int32(), false)), false),
  new arrow.Field('length', new arrow.Int32(), false),
  new arrow.Field('label', new arrow.Int8(), false),
  new arrow.Field('split', new arrow.Utf8(), false),
]);

/** Below this many rows, starting worker threads costs more than it saves. */
const MIN_ROWS_FOR_WORKERS = 4096;

export function tokenizerReads(config: Experiment) {
  return { MAX_LENGTH: config.MAX_LENGTH };
}

/** tokenize's manifest info. */
export interface TokenizeInfo {
  rows: number;
  tokens: number;
  rows_at_max_length: number;
  longest: number;
  threads: number;
  files: string[];
}

/** The tokenizer of MODEL (a local folder, or a hub id fetched into the cache). */
export function tokenizerFolder(sources: Sources) {
  return resolveModelFolder(sources.model.value, sources.model.baseDir, sources.cacheRoot, TOKENIZER_FILES);
}

/** The tokenizer files' fingerprints (their content, not their place). */
export async function tokenizerInputs(ctx: Omit<KeyContext<unknown>, 'reads'>) {
  const folder = await tokenizerFolder(ctx.sources);
  const files = ['tokenizer.json', 'tokenizer_config.json', 'special_tokens_map.json'].map((f) => path.join(folder.dir, f)).filter((f) => existsSync(f));
  return { tokenizer: await ctx.fingerprint(files, folder.dir) };
}

export const tokenizeStage: Stage<'tokenize', ReturnType<typeof tokenizerReads>, 'data'> = {
  name: 'tokenize',
  version: 1,
  upstream: ['data'],
  reads: tokenizerReads,
  inputs: tokenizerInputs,
  async produce(ctx) {
    const folder = await tokenizerFolder(ctx.sources);
    // Loading here first also reports a bad MAX_LENGTH before any worker starts.
    const tokenizer = await loadTokenizer(folder.dir, ctx.reads.MAX_LENGTH);
    const data = ctx.upstream.data;
    const total = data.manifest.info.rows;
    const threads = tokenizeThreads(ctx.settings.threads);
    const pool = total >= MIN_ROWS_FOR_WORKERS && threads > 1 ? await startWorkerPool(folder.dir, ctx.reads.MAX_LENGTH, threads) : undefined;
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
          if (lengths[i] === ctx.reads.MAX_LENGTH) atMaxLength++;
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
