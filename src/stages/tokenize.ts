import { readFile } from 'node:fs/promises';
import { existsSync } from 'node:fs';
import path from 'node:path';
import { ArrowFileWriter, arrow, int32Column, int32ListColumn, int8Column, readArrowBatches, utf8Column } from '../runner/arrow.js';
import { UserError } from '../runner/errors.js';
import { TOKENIZER_FILES, resolveModelFolder } from '../runner/model-files.js';
import type { Stage } from '../runner/stage.js';
import type { Experiment } from '../runner/config.js';

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

/** Rows per record batch: bounds memory while tokenizing. */
const BATCH_ROWS = 2048;

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
    const tokenizer = await loadTokenizer(folder.dir, ctx.config.MAX_LENGTH);
    const data = ctx.upstream.data!;
    const total = Number((data.manifest.info as { rows: number }).rows);
    const writer = new ArrowFileWriter(path.join(ctx.dir, TOKENS_FILE), tokensSchema);
    let done = 0;
    let tokens = 0;
    let atMaxLength = 0;
    let maxSeen = 0;
    for await (const batch of readArrowBatches(path.join(data.dir, 'data.arrow'))) {
      const ids = batch.getChild('id')!.toArray() as string[];
      const texts = batch.getChild('text')!;
      const encoded: Int32Array[] = [];
      for (let start = 0; start < batch.numRows; start += BATCH_ROWS) {
        ctx.signal.throwIfAborted();
        const end = Math.min(batch.numRows, start + BATCH_ROWS);
        for (let i = start; i < end; i++) {
          const row = tokenizer.encode(texts.get(i) as string);
          if (row.length === tokenizer.maxLength) atMaxLength++;
          encoded.push(row);
        }
        done += end - start;
        ctx.progress.update(done, total, 'rows');
      }
      const offsets = new Int32Array(encoded.length + 1);
      for (let i = 0; i < encoded.length; i++) offsets[i + 1] = offsets[i] + encoded[i].length;
      const flat = new Int32Array(offsets[encoded.length]);
      const lengths = new Int32Array(encoded.length);
      encoded.forEach((row, i) => {
        flat.set(row, offsets[i]);
        lengths[i] = row.length;
        if (row.length > maxSeen) maxSeen = row.length;
      });
      tokens += flat.length;
      writer.write([
        utf8Column(ids),
        int32ListColumn(flat, offsets),
        int32Column(lengths),
        int8Column(batch.getChild('label')!.toArray() as Int8Array),
        utf8Column(batch.getChild('split')!.toArray() as string[]),
      ]);
    }
    const rows = await writer.close();
    return { rows, tokens, rows_at_max_length: atMaxLength, longest: maxSeen, files: [TOKENS_FILE] };
  },
};
