import { readFileSync } from 'node:fs';
import path from 'node:path';
import type { Batch, HeadSettings, NamedTensor } from '../../src/model/index.js';
import { Random } from '../../src/model/random.js';
import { REPO } from '../helpers.js';

interface JsonTensor {
  shape: number[];
  data: number[];
}

/** One case of test/fixtures/gru/reference.json (made by make_reference.py with PyTorch). */
export interface ReferenceCase {
  name: string;
  settings: Pick<HeadSettings, 'inputSize' | 'hiddenSize' | 'layers' | 'bidirectional'>;
  batch: number;
  steps: number;
  lengths: number[];
  labels: number[];
  x: number[];
  weights: Record<string, JsonTensor>;
  logits: number[];
  loss: number;
  grads: Record<string, JsonTensor>;
  input_grad: number[];
  learning_rate: number;
  weights_after_adam: Record<string, JsonTensor>;
  weights_after_two_adam_steps: Record<string, JsonTensor>;
}

export function referenceCases(): ReferenceCase[] {
  const file = path.join(REPO, 'test/fixtures/gru/reference.json');
  return (JSON.parse(readFileSync(file, 'utf8')) as { cases: ReferenceCase[] }).cases;
}

export function toNamedTensors(w: Record<string, JsonTensor>): Record<string, NamedTensor> {
  return Object.fromEntries(Object.entries(w).map(([k, t]) => [k, { shape: t.shape, data: Float32Array.from(t.data) }]));
}

export function referenceBatch(c: ReferenceCase): Batch {
  return { x: Float32Array.from(c.x), lengths: Int32Array.from(c.lengths), labels: Float32Array.from(c.labels), batch: c.batch, steps: c.steps };
}

/** Largest |actual − expected| / max(1, |expected|). */
export function worstError(actual: ArrayLike<number>, expected: ArrayLike<number>): number {
  if (actual.length !== expected.length) throw new Error(`length ${actual.length} ≠ ${expected.length}`);
  let worst = 0;
  for (let i = 0; i < expected.length; i++) {
    const e = Math.abs(actual[i] - expected[i]) / Math.max(1, Math.abs(expected[i]));
    worst = Number.isNaN(e) ? Infinity : Math.max(worst, e);
  }
  return worst;
}

/** A random zero-padded batch with the given lengths and 0/1 labels. */
export function randomBatch(inputSize: number, lengths: number[], seed = 7): Batch {
  const rng = new Random(seed, 1000);
  const batch = lengths.length;
  const steps = Math.max(...lengths);
  const x = new Float32Array(batch * steps * inputSize);
  lengths.forEach((len, b) => {
    for (let i = 0; i < len * inputSize; i++) x[b * steps * inputSize + i] = rng.normal();
  });
  const labels = Float32Array.from(lengths, () => (rng.nextFloat() < 0.5 ? 0 : 1));
  return { x, lengths: Int32Array.from(lengths), labels, batch, steps };
}

export const tinySettings = (overrides: Partial<HeadSettings> = {}): HeadSettings => ({
  inputSize: 3,
  hiddenSize: 3,
  layers: 2,
  bidirectional: true,
  dropout: 0,
  learningRate: 1e-3,
  seed: 12345,
  ...overrides,
});
