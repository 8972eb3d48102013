import { existsSync } from 'node:fs';
import path from 'node:path';
import { ArrowFileWriter, arrow, int32Column, int8Column, readArrowBatches, utf8Column, type ColumnData } from '../runner/arrow.js';
import { resolveModelFolder } from '../runner/model-files.js';
import { askedThreads } from '../runner/threads.js';
import type { Experiment } from '../runner/config.js';
import type { KeyContext, Progress, Stage } from '../runner/stage.js';
import { ENCODER_FILES, loadEncoder, planBatches, type BatchOptions, type Encoder } from '../encoder/encoder.js';
import { float16ArrayToFloat32, float32ArrayToFloat16 } from '../encoder/float16.js';
import { TOKENS_FILE } from './tokenize.js';

export const FEATURES_FILE = 'features.arrow';
export type EncoderDtype = 'float16' | 'float32';

/**
 * `features`: one vector of `hidden` values per real token of the row (no padding), so a row's list
 * has `length` entries.
 */
export function featuresSchema(hidden: number, dtype: EncoderDtype): arrow.Schema {
  const value = dtype === 'float16' ? new arrow.Float16() : new arrow.Float32();
  const vector = new arrow.FixedSizeList(hidden, new arrow.Field('item', value, false));
  return new arrow.Schema([
    new arrow.Field('id', new arrow.Utf8(), false),
    new arrow.Field('split', new arrow.Utf8(), false),
    new arrow.Field('label', new arrow.Int8(), false),
    new arrow.Field('length', new arrow.Int32(), false),
    new arrow.Field('features', new arrow.List(new arrow.Field('item', vector, false)), false),
  ]);
}

/** List<FixedSizeList<Float16|Float32>> from flat values and per-row token offsets. */
function featuresColumn(schema: arrow.Schema, values: Uint16Array | Float32Array, tokenOffsets: Int32Array): ColumnData {
  const listType = schema.fields[4].type as arrow.List<arrow.FixedSizeList>;
  const vectorType = listType.children[0].type as arrow.FixedSizeList;
  const valueType = vectorType.children[0].type;
  const tokens = tokenOffsets[tokenOffsets.length - 1];
  const leaf = arrow.makeData({ type: valueType as arrow.Float, length: values.length, nullCount: 0, data: values as never });
  const vectors = arrow.makeData({ type: vectorType, length: tokens, nullCount: 0, child: leaf });
  return arrow.makeData({ type: listType, length: tokenOffsets.length - 1, nullCount: 0, valueOffsets: tokenOffsets, child: vectors });
}

/** Rows sorted and batched together at most: bounds memory (the window's token ids) and limits reordering. */
const WINDOW_ROWS = 4096;

export interface EncodeFileOptions {
  tokensFile: string;
  outFile: string;
  encoder: Encoder;
  dtype: EncoderDtype;
  batching?: BatchOptions;
  /** Rows in tokensFile, for progress. */
  totalRows?: number;
  progress?: Progress;
  signal?: AbortSignal;
}

export interface EncodeFileInfo {
  rows: number;
  tokens: number;
  batches: number;
  /** Tokens run through the encoder, padding included. */
  padded_tokens: number;
}

/**
 * Encodes tokens.arrow into features.arrow: windows of rows are cut into padded batches (length-sorted
 * unless `batching.sortByLength` is false), and each batch becomes one record batch holding each row's
 * real tokens only. Rows may be reordered within a window; memory is bounded by the window's ids and one
 * batch's features.
 */
export async function encodeTokensFile(options: EncodeFileOptions): Promise<EncodeFileInfo> {
  const { encoder, dtype } = options;
  const hidden = encoder.hiddenSize;
  const schema = featuresSchema(hidden, dtype);
  const writer = await ArrowFileWriter.create(options.outFile, schema);
  let done = 0;
  let tokens = 0;
  let padded = 0;
  let batches = 0;
  try {
    for await (const input of readArrowBatches(options.tokensFile)) {
      const idsCol = input.getChild('input_ids')!.data[0];
      const child = idsCol.children[0];
      const values = (child.values as Int32Array).subarray(child.offset);
      const offsets = (idsCol.valueOffsets as Int32Array).subarray(idsCol.offset, idsCol.offset + input.numRows + 1);
      const idCol = input.getChild('id')!;
      const splitCol = input.getChild('split')!;
      const labelCol = input.getChild('label')!.toArray() as Int8Array;
      for (let windowStart = 0; windowStart < input.numRows; windowStart += WINDOW_ROWS) {
        const windowEnd = Math.min(input.numRows, windowStart + WINDOW_ROWS);
        const lengths = new Int32Array(windowEnd - windowStart);
        for (let i = 0; i < lengths.length; i++) lengths[i] = offsets[windowStart + i + 1] - offsets[windowStart + i];
        for (const plan of planBatches(lengths, { numHeads: encoder.numHeads, ...options.batching })) {
          options.signal?.throwIfAborted();
          const rows = Array.from(plan, (w) => values.subarray(offsets[windowStart + w], offsets[windowStart + w + 1]));
          const out = await encoder.run(rows);
          padded += out.rows * out.seq;
          // Real tokens only, row after row.
          const tokenOffsets = new Int32Array(rows.length + 1);
          for (let b = 0; b < rows.length; b++) tokenOffsets[b + 1] = tokenOffsets[b] + rows[b].length;
          const count = tokenOffsets[rows.length];
          const flat = dtype === 'float16' ? new Uint16Array(count * hidden) : new Float32Array(count * hidden);
          for (let b = 0; b < rows.length; b++) {
            const src = out.data.subarray(b * out.seq * hidden, (b * out.seq + rows[b].length) * hidden);
            if (flat instanceof Uint16Array) float32ArrayToFloat16(src, flat.subarray(tokenOffsets[b] * hidden));
            else flat.set(src, tokenOffsets[b] * hidden);
          }
          const rowIndex = Array.from(plan, (w) => windowStart + w);
          await writer.write([
            utf8Column(rowIndex.map((i) => idCol.get(i) as string)),
            utf8Column(rowIndex.map((i) => splitCol.get(i) as string)),
            int8Column(Int8Array.from(rowIndex, (i) => labelCol[i])),
            int32Column(Int32Array.from(rows, (r) => r.length)),
            featuresColumn(schema, flat, tokenOffsets),
          ]);
          tokens += count;
          done += rows.length;
          batches++;
          options.progress?.update(done, options.totalRows, 'rows');
        }
      }
    }
  } catch (e) {
    // Closed before the cache removes the stage's folder.
    await writer.close().catch(() => {});
    throw e;
  }
  await writer.close();
  return { rows: done, tokens, batches, padded_tokens: padded };
}

/** One record batch of features.arrow, features decoded to float32. */
export interface FeatureBatch {
  id: string[];
  split: string[];
  label: Int8Array;
  length: Int32Array;
  hiddenSize: number;
  dtype: EncoderDtype;
  /** Per row: length × hidden float32 values (views into one buffer per batch). */
  features: Float32Array[];
}

/** Decodes one record batch of features.arrow (float16 to float32). */
export function decodeFeatureBatch(batch: arrow.RecordBatch): FeatureBatch {
  const list = batch.getChild('features')!.data[0];
  const vectors = list.children[0];
  const leaf = vectors.children[0];
  const hidden = (vectors.type as arrow.FixedSizeList).listSize;
  const dtype: EncoderDtype = leaf.type.typeId === arrow.Type.Float && (leaf.type as arrow.Float).precision === arrow.Precision.HALF ? 'float16' : 'float32';
  const offsets = (list.valueOffsets as Int32Array).subarray(list.offset, list.offset + batch.numRows + 1);
  const first = offsets[0];
  const start = (vectors.offset + first) * hidden + leaf.offset;
  const end = (vectors.offset + offsets[batch.numRows]) * hidden + leaf.offset;
  const raw = leaf.values as Uint16Array | Float32Array;
  const values = dtype === 'float16' ? float16ArrayToFloat32((raw as Uint16Array).subarray(start, end)) : (raw as Float32Array).subarray(start, end);
  const features: Float32Array[] = [];
  for (let i = 0; i < batch.numRows; i++) features.push(values.subarray((offsets[i] - first) * hidden, (offsets[i + 1] - first) * hidden));
  return {
    id: batch.getChild('id')!.toArray() as string[],
    split: batch.getChild('split')!.toArray() as string[],
    label: Int8Array.from(batch.getChild('label')!.toArray() as Int8Array),
    length: Int32Array.from(batch.getChild('length')!.toArray() as Int32Array),
    hiddenSize: hidden,
    dtype,
    features,
  };
}

/** Reads features.arrow record batch by record batch (memory bounded by one batch), decoding float16. */
export async function* readFeatures(file: string): AsyncGenerator<FeatureBatch> {
  for await (const batch of readArrowBatches(file)) yield decodeFeatureBatch(batch);
}

export interface FeatureRow {
  id: string;
  split: string;
  label: number;
  length: number;
  /** length × hidden float32 values. */
  features: Float32Array;
}

/** readFeatures, one row at a time. */
export async function* readFeatureRows(file: string): AsyncGenerator<FeatureRow> {
  for await (const b of readFeatures(file)) {
    for (let i = 0; i < b.id.length; i++) yield { id: b.id[i], split: b.split[i], label: b.label[i], length: b.length[i], features: b.features[i] };
  }
}

/** ONNX Runtime intra-op threads: SENTIMENT_THREADS when set (as for tokenize), else ONNX Runtime's default (one per physical core). */
export function encoderThreads(env: NodeJS.ProcessEnv = process.env): number | undefined {
  return askedThreads(env);
}

export function encoderReads(config: Experiment) {
  // DEVICE is deliberately not read: features do not depend on where they were computed.
  return { ENCODER_DTYPE: config.ENCODER_DTYPE };
}

function modelFolder(ctx: KeyContext) {
  return resolveModelFolder(ctx.config.MODEL, ctx.experiment.baseDirs.MODEL ?? process.cwd(), ctx.cache.root, ENCODER_FILES);
}

export const encodeStage: Stage = {
  name: 'encode',
  version: 1,
  upstream: ['tokenize'],
  reads: encoderReads,
  async inputs(ctx) {
    const folder = await modelFolder(ctx);
    const files = [...ENCODER_FILES.required, ...ENCODER_FILES.optional].map((f) => path.join(folder.dir, f)).filter((f) => existsSync(f));
    return { encoder: await ctx.fingerprint(files, folder.dir) };
  },
  async produce(ctx) {
    const folder = await modelFolder(ctx);
    const tokenize = ctx.upstream.tokenize!;
    const totalRows = Number((tokenize.manifest.info as { rows?: number }).rows) || undefined;
    const threads = encoderThreads();
    const encoder = await loadEncoder(folder.dir, { device: ctx.config.DEVICE, threads, log: (m) => ctx.progress.log(m) });
    try {
      const dtype = ctx.config.ENCODER_DTYPE;
      const info = await encodeTokensFile({
        tokensFile: path.join(tokenize.dir, TOKENS_FILE),
        outFile: path.join(ctx.dir, FEATURES_FILE),
        encoder,
        dtype,
        totalRows,
        progress: ctx.progress,
        signal: ctx.signal,
      });
      ctx.progress.log(`encoded ${info.rows} rows, ${info.tokens} tokens (${((100 * info.tokens) / Math.max(1, info.padded_tokens)).toFixed(1)}% of the padded batches) on ${encoder.device}`);
      return {
        rows: info.rows,
        tokens: info.tokens,
        hidden_size: encoder.hiddenSize,
        dtype,
        device: encoder.device,
        threads: threads ?? 'onnxruntime default',
        batches: info.batches,
        padded_tokens: info.padded_tokens,
        files: [FEATURES_FILE],
      };
    } finally {
      await encoder.dispose();
    }
  },
};
