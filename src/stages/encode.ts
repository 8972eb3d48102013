import path from 'node:path';
import { ArrowFileWriter, int32Column, int8Column, readArrowBatches, utf8Column } from '../core/arrow.js';
import { resolveModelFolder } from '../core/model-files.js';
import type { Experiment } from '../config/experiment.js';
import type { KeyContext, Progress, Sources, Stage } from './stage.js';
import { ENCODER_FILES, encoderFiles, loadEncoder, planBatches, type BatchOptions, type Encoder } from '../encoder/encoder.js';
import { float32ArrayToFloat16 } from '../core/float16.js';
import { TOKENS_FILE } from './tokenize.js';
import { QUANTIZER_VERSION, quantizedEncoder, type QuantizeSetting } from '../encoder/quantize.js';
import { FEATURES_FILE, featuresColumn, featuresSchema, type EncoderDtype } from '../features/features.js';


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
  const hidden = encoder.width;
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

export function encoderReads(config: Experiment) {
  // DEVICE is deliberately not read: features do not depend on where they were computed.
  return { ENCODER_DTYPE: config.ENCODER_DTYPE, ENCODER_QUANTIZE: quantizeRead(config) };
}

/**
 * ENCODER_QUANTIZE as a stage reads it: undefined for none, which drops out of the key's canonical JSON,
 * so the entries made before the setting existed keep their keys.
 */
export function quantizeRead(config: Pick<Experiment, 'ENCODER_QUANTIZE'>): Exclude<QuantizeSetting, 'none'> | undefined {
  return config.ENCODER_QUANTIZE === 'none' ? undefined : config.ENCODER_QUANTIZE;
}

/** With quantization, the quantizer's version is an input too: a change to the rewrite changes the features. */
export function quantizeInputs(reads: { ENCODER_QUANTIZE: QuantizeSetting | undefined }) {
  return reads.ENCODER_QUANTIZE ? { quantizer: QUANTIZER_VERSION } : {};
}

/** The encoder of MODEL (a local folder, or a hub id fetched into the cache). */
export function encoderFolder(sources: Sources) {
  return resolveModelFolder(sources.model.value, sources.model.baseDir, sources.cacheRoot, ENCODER_FILES);
}

/** encode's manifest info. */
export interface EncodeInfo {
  rows: number;
  tokens: number;
  /** The encoder's width: values per token in features.arrow (the head's input size). */
  hidden_size: number;
  dtype: EncoderDtype;
  /** ENCODER_QUANTIZE: the weights the features were computed with. */
  quantize: QuantizeSetting;
  device: string;
  /** ONNX Runtime intra-op threads: SENTIMENT_THREADS, or ONNX Runtime's default (one per physical core). */
  threads: number | 'onnxruntime default';
  batches: number;
  padded_tokens: number;
  files: string[];
}

/** The encoder files' fingerprints (their content, not their place). */
export async function encoderInputs(ctx: Omit<KeyContext<unknown>, 'reads'>) {
  const folder = await encoderFolder(ctx.sources);
  return { encoder: await ctx.fingerprint(encoderFiles(folder.dir), folder.dir) };
}

export const encodeStage: Stage<'encode', ReturnType<typeof encoderReads>, 'tokenize'> = {
  name: 'encode',
  version: 1,
  upstream: ['tokenize'],
  reads: encoderReads,
  async inputs(ctx) {
    return { ...(await encoderInputs(ctx)), ...quantizeInputs(ctx.reads) };
  },
  async produce(ctx) {
    const folder = await quantizedEncoder((await encoderFolder(ctx.sources)).dir, ctx.reads.ENCODER_QUANTIZE ?? 'none', ctx.sources.cacheRoot, (m) => ctx.progress.log(m));
    // Named in the run's log, so `cache gc` keeps the quantized encoder as long as the run (infer needs it).
    if (ctx.reads.ENCODER_QUANTIZE) ctx.progress.log(`ENCODER_QUANTIZE ${ctx.reads.ENCODER_QUANTIZE} → ${folder.dir}`);
    const tokenize = ctx.upstream.tokenize;
    const totalRows = tokenize.manifest.info.rows || undefined;
    const threads = ctx.settings.threads;
    const encoder = await loadEncoder(folder.dir, { device: ctx.settings.device, threads, log: (m) => ctx.progress.log(m) });
    try {
      const dtype = ctx.reads.ENCODER_DTYPE;
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
        hidden_size: encoder.width,
        dtype,
        quantize: ctx.reads.ENCODER_QUANTIZE ?? 'none',
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
