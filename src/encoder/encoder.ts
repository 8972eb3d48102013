// The frozen BERT encoder: transformers.js on onnxruntime-node, device selection, and length-aware
// batching. Used by the encode stage (features for training) and by inference (features for new texts).
import { existsSync } from 'node:fs';
import { readFile } from 'node:fs/promises';
import path from 'node:path';
import { UserError, messageOf } from '../core/errors.js';
import { loadTransformers, onnxruntimeProviders, sessionOptions } from '../core/onnxruntime.js';

/** Where DEVICE may ask the encoder to run. */
export type DeviceSetting = 'auto' | 'cpu' | 'cuda' | 'webgpu';
/** Where it does run. */
export type EncoderDevice = Exclude<DeviceSetting, 'auto'>;

/** Files of a model folder the encoder reads (for resolveModelFolder and fingerprints). */
export const ENCODER_FILES = { required: ['config.json', 'onnx/model.onnx'], optional: ['onnx/model.onnx_data'] };

/** The encoder files a model folder holds (absolute paths): what its fingerprint covers. */
export function encoderFiles(dir: string): string[] {
  return [...ENCODER_FILES.required, ...ENCODER_FILES.optional].map((f) => path.join(dir, f)).filter((f) => existsSync(f));
}

export interface EncoderOptions {
  device: DeviceSetting;
  /** Lines for the run log (device choice, fallbacks). */
  log?: (message: string) => void;
  /** ONNX Runtime intra-op threads; default: src/core/onnxruntime.ts's policy (SENTIMENT_THREADS, else ONNX Runtime's default, one per physical core). */
  threads?: number;
  /** Whether ONNX Runtime's idle threads spin (default true); see SessionOptionsRequest. */
  allowSpinning?: boolean;
}

/** One padded batch's output: `data` is [rows, seq, hidden] float32, padding included. */
export interface EncodedBatch {
  data: Float32Array;
  rows: number;
  seq: number;
  hidden: number;
}

export interface Encoder {
  device: EncoderDevice;
  /** Values per token (config.json's hidden_size): the width of the features, and the head's input size. */
  width: number;
  numHeads: number;
  maxPositions: number;
  /** Encodes rows of token ids (each `[CLS] … [SEP]`, unpadded) as one padded batch with an attention mask. */
  run(rows: ArrayLike<number>[]): Promise<EncodedBatch>;
  /** Like `run`, but each row's real tokens only: a Float32Array of length × hidden per row. */
  encode(rows: ArrayLike<number>[]): Promise<Float32Array[]>;
  dispose(): Promise<void>;
}

const CUDA_HINT = 'install it with `ONNXRUNTIME_NODE_INSTALL=cuda12 node node_modules/onnxruntime-node/script/install.js` on a machine with network access (see the README, "Installing"), or set DEVICE to cpu or auto';

/**
 * Loads the model's `onnx/model.onnx` (float32) from a local folder in the Hugging Face layout on DEVICE:
 * `auto` takes cuda when its execution provider loads, else cpu; an explicit device that is unavailable
 * is a UserError naming DEVICE and what is missing.
 */
export async function loadEncoder(dir: string, options: EncoderOptions): Promise<Encoder> {
  const absDir = path.resolve(dir);
  const config = JSON.parse(await readFile(path.join(absDir, 'config.json'), 'utf8')) as Record<string, unknown>;
  const hiddenSize = Number(config.hidden_size);
  const numHeads = Number(config.num_attention_heads ?? 1);
  const maxPositions = Number(config.max_position_embeddings ?? Infinity);
  if (!(hiddenSize > 0)) throw new UserError(`MODEL: ${absDir}/config.json has no hidden_size`);
  const log = options.log ?? (() => {});
  const { AutoModel, Tensor } = await loadTransformers();
  // transformers.js picks the execution provider from `device`; the rest are src/core/onnxruntime.ts's.
  const session_options = sessionOptions('encoder', { threads: options.threads || undefined, allowSpinning: options.allowSpinning });
  const load = (device: EncoderDevice) => AutoModel.from_pretrained(absDir, { dtype: 'fp32', device, session_options });

  const providers = onnxruntimeProviders();
  let device: EncoderDevice;
  let model: Awaited<ReturnType<typeof load>>;
  if (options.device === 'auto') {
    if (providers.cudaInstalled) {
      try {
        model = await load('cuda');
        device = 'cuda';
      } catch (e) {
        log(`DEVICE auto: the CUDA execution provider did not start (${firstLine(e)}); using cpu`);
        model = await load('cpu');
        device = 'cpu';
      }
    } else {
      model = await load('cpu');
      device = 'cpu';
    }
    log(`DEVICE auto → ${device}${device === 'cpu' && !providers.cudaInstalled ? ' (the CUDA execution provider is not installed)' : ''}`);
  } else {
    device = options.device;
    if (!providers.backends.some((b) => b.name === device)) {
      throw new UserError(`DEVICE: ${device} is unavailable: this onnxruntime-node build (${process.platform}-${process.arch}) has no ${device} execution provider; it has ${providers.backends.map((b) => b.name).join(', ')}. Set DEVICE to cpu or auto.`);
    }
    if (device === 'cuda' && !providers.cudaInstalled) {
      throw new UserError(`DEVICE: cuda is unavailable: the CUDA execution provider of onnxruntime-node is not installed (no libonnxruntime_providers_cuda.so in ${providers.binDir}); ${CUDA_HINT}.`);
    }
    try {
      model = await load(device);
    } catch (e) {
      const why =
        device === 'cuda'
          ? `ONNX Runtime could not start the CUDA execution provider (${firstLine(e)}); it needs an NVIDIA GPU, its driver, and the CUDA 12 and cuDNN 9 libraries on the library path. Set DEVICE to cpu or auto to run on the CPU.`
          : device === 'webgpu'
            ? `ONNX Runtime could not start the WebGPU execution provider (${firstLine(e)}); it needs a GPU adapter that Dawn can use (Vulkan on Linux). Set DEVICE to cpu or auto.`
            : `ONNX Runtime could not load ${path.join(absDir, 'onnx/model.onnx')} (${firstLine(e)})`;
      throw new UserError(`DEVICE: ${device}: ${why}`, [], { cause: e });
    }
    log(`DEVICE ${device}`);
  }

  const run = async (rows: ArrayLike<number>[]): Promise<EncodedBatch> => {
    let seq = 0;
    for (const r of rows) if (r.length > seq) seq = r.length;
    if (rows.length === 0 || seq === 0) return { data: new Float32Array(0), rows: rows.length, seq, hidden: hiddenSize };
    if (seq > maxPositions) throw new UserError(`MAX_LENGTH: a row of ${seq} tokens is longer than this model accepts (${maxPositions})`);
    const n = rows.length * seq;
    const ids = new BigInt64Array(n);
    const mask = new BigInt64Array(n);
    for (let b = 0; b < rows.length; b++) {
      const row = rows[b];
      const base = b * seq;
      for (let t = 0; t < row.length; t++) {
        ids[base + t] = BigInt(row[t]);
        mask[base + t] = 1n;
      }
    }
    const dims = [rows.length, seq];
    const out = (await model({
      input_ids: new Tensor('int64', ids, dims),
      attention_mask: new Tensor('int64', mask, dims),
      token_type_ids: new Tensor('int64', new BigInt64Array(n), dims),
    })) as { last_hidden_state: { data: Float32Array; dims: number[]; dispose?: () => void } };
    const hidden = out.last_hidden_state;
    if (hidden.dims[2] !== hiddenSize) throw new Error(`encoder output has hidden size ${hidden.dims[2]}, config.json says ${hiddenSize}`);
    return { data: hidden.data, rows: rows.length, seq, hidden: hiddenSize };
  };
  return {
    device,
    width: hiddenSize,
    numHeads,
    maxPositions,
    run,
    async encode(rows) {
      const batch = await run(rows);
      return rows.map((row, b) => batch.data.slice(b * batch.seq * hiddenSize, (b * batch.seq + row.length) * hiddenSize));
    },
    async dispose() {
      await model.dispose();
    },
  };
}

function firstLine(e: unknown): string {
  return messageOf(e).split('\n')[0].trim();
}

export interface BatchOptions {
  /** Most tokens in one padded batch: rows × padded length (a longer row gets a batch of its own). */
  tokenBudget?: number;
  /**
   * Most attention-score elements in one batch, rows × heads × padded length²: bounds the memory of
   * the attention matrices, which grow with the square of the length (matters for 12-head models).
   */
  attentionBudget?: number;
  numHeads?: number;
  /** Sort rows by length first, so batches are padded little (default true). */
  sortByLength?: boolean;
}

/**
 * Measured on imdb-bert-tiny (2 CPU cores, MAX_LENGTH 512, 2,000 IMDB reviews): 2k–4k tokens per batch
 * encode fastest (~165k tokens/s); 16k is ~15% slower and ONNX Runtime's arena then holds ~300 MiB more.
 */
export const DEFAULT_BATCHING = { tokenBudget: 4096, attentionBudget: 64 * 1024 * 1024, sortByLength: true } as const;

/**
 * Cuts rows into padded batches: indexes into `lengths`, in the order to run them. With sorting, rows go
 * longest first (the largest batch shapes come early, so the allocator's peak shows at once) and each
 * batch pads to its first row's length; without, batches keep the input order.
 */
export function planBatches(lengths: ArrayLike<number>, options: BatchOptions = {}): Int32Array[] {
  const tokenBudget = options.tokenBudget ?? DEFAULT_BATCHING.tokenBudget;
  const attentionBudget = options.attentionBudget ?? DEFAULT_BATCHING.attentionBudget;
  const heads = options.numHeads ?? 1;
  const order = Int32Array.from({ length: lengths.length }, (_, i) => i);
  if (options.sortByLength ?? DEFAULT_BATCHING.sortByLength) order.sort((a, b) => lengths[b] - lengths[a] || a - b);
  const batches: Int32Array[] = [];
  let start = 0;
  while (start < order.length) {
    let end = start + 1;
    let longest = Math.max(1, lengths[order[start]]);
    while (end < order.length) {
      const padded = Math.max(longest, lengths[order[end]]);
      const rows = end - start + 1;
      if (rows * padded > tokenBudget || rows * heads * padded * padded > attentionBudget) break;
      longest = padded;
      end++;
    }
    batches.push(order.slice(start, end));
    start = end;
  }
  return batches;
}

/**
 * Encodes any number of rows of token ids with length-sorted batches, returning each row's real tokens
 * (length × hidden float32) in input order: what inference needs for a file of texts.
 */
export async function encodeRows(encoder: Encoder, rows: ArrayLike<number>[], options: BatchOptions = {}): Promise<Float32Array[]> {
  const out: Float32Array[] = new Array(rows.length);
  const lengths = rows.map((r) => r.length);
  for (const batch of planBatches(lengths, { numHeads: encoder.numHeads, ...options })) {
    const encoded = await encoder.encode(Array.from(batch, (i) => rows[i]));
    batch.forEach((i, k) => (out[i] = encoded[k]));
  }
  return out;
}
