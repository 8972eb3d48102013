import { open } from 'node:fs/promises';
import { arrow } from '../core/arrow.js';
import { decodeFeatureBatch, readFeatures, type FeatureBatch } from '../features/features.js';
import { seededGenerator, shuffleInPlace } from './random.js';

/** A padded batch for the head: x is [batch, steps, hidden] row-major, zero past each row's length. */
export interface HeadBatch {
  x: Float32Array;
  lengths: Int32Array;
  labels: Float32Array;
  batch: number;
  steps: number;
  ids: string[];
}

interface FeatureRow {
  id: string;
  label: number;
  features: Float32Array;
  length: number;
}

function rowsOf(b: FeatureBatch, split: string): FeatureRow[] {
  const rows: FeatureRow[] = [];
  for (let i = 0; i < b.id.length; i++) {
    if (b.split[i] === split) rows.push({ id: b.id[i], label: b.label[i], features: b.features[i], length: b.length[i] });
  }
  return rows;
}

/** Pads rows into one batch (steps = the longest row). */
export function padRows(rows: FeatureRow[], hidden: number): HeadBatch {
  const steps = Math.max(...rows.map((r) => r.length));
  const x = new Float32Array(rows.length * steps * hidden);
  rows.forEach((r, i) => x.set(r.features, i * steps * hidden));
  return {
    x,
    lengths: Int32Array.from(rows, (r) => r.length),
    labels: Float32Array.from(rows, (r) => r.label),
    batch: rows.length,
    steps,
    ids: rows.map((r) => r.id),
  };
}

/**
 * One split's rows in file order (length-sorted within the encoder's windows, so little padding), in
 * batches of at most `batchSize` rows. For evaluation.
 */
export async function* splitBatches(file: string, split: string, batchSize: number): AsyncGenerator<HeadBatch> {
  let pending: FeatureRow[] = [];
  let hidden = 0;
  for await (const b of readFeatures(file)) {
    hidden = b.width;
    pending.push(...rowsOf(b, split));
    while (pending.length >= batchSize) {
      yield padRows(pending.slice(0, batchSize), hidden);
      pending = pending.slice(batchSize);
    }
  }
  if (pending.length > 0) yield padRows(pending, hidden);
}

/** Rows gathered before sorting them by length and cutting batches: bounds memory and padding. */
const POOL_BATCHES = 32;

/**
 * One epoch of shuffled, length-bucketed training batches: the file's record batches are visited in a
 * seeded random order; their rows are pooled, shuffled, sorted by length and cut into batches of `batchSize`,
 * whose order is shuffled again. Memory is bounded by the pool, not the dataset.
 */
export async function* trainingBatches(file: string, split: string, batchSize: number, seed: number, epoch: number): AsyncGenerator<HeadBatch> {
  const rng = seededGenerator(seed, 0x5eed, epoch);
  const handle = await open(file);
  try {
    const reader = (await arrow.RecordBatchReader.from(handle)) as arrow.AsyncRecordBatchFileReader;
    await reader.open();
    const order = shuffleInPlace(
      Array.from({ length: reader.numRecordBatches }, (_, i) => i),
      rng,
    );
    let pool: FeatureRow[] = [];
    let hidden = 0;
    const drain = function* (all: boolean): Generator<HeadBatch> {
      // Rows are shuffled before the (stable) sort, so rows of equal length are batched in random order:
      // the features file keeps rows of equal length in their input order (an encoder window is sorted by
      // length), so its record batches of reviews cut at MAX_LENGTH often hold one label only, and
      // without this each batch would be a few such runs (label shares of 0.3–0.7 at 128 rows), not
      // random rows, as in the original's shuffled BucketIterator and bench/torch_head_reference.py.
      shuffleInPlace(pool, rng);
      pool.sort((a, b) => a.length - b.length);
      const batches: FeatureRow[][] = [];
      const full = all ? pool.length : pool.length - (pool.length % batchSize);
      for (let i = 0; i < full; i += batchSize) batches.push(pool.slice(i, Math.min(full, i + batchSize)));
      pool = pool.slice(full);
      for (const rows of shuffleInPlace(batches, rng)) yield padRows(rows, hidden);
    };
    for (const index of order) {
      const record = await reader.readRecordBatch(index);
      if (!record) continue;
      const decoded = decodeFeatureBatch(record);
      hidden = decoded.width;
      pool.push(...rowsOf(decoded, split));
      if (pool.length >= POOL_BATCHES * batchSize) yield* drain(false);
    }
    if (pool.length > 0) yield* drain(true);
  } finally {
    await handle.close();
  }
}
