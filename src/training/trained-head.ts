import path from 'node:path';
import type { Experiment } from '../config/experiment.js';
import { readEntryJson } from '../core/cache.js';
import { createHead, type Head, type HeadSettings } from '../model/index.js';
import { splitBatches } from './batches.js';
import { MetricsAccumulator } from './metrics.js';
import { readSafetensors } from './safetensors.js';

/** A trained head on disk (a train entry, or an export): its weights, settings and history. */

export const HEAD_FILE = 'head.safetensors';
export const HEAD_INFO_FILE = 'head.json';
export const HISTORY_FILE = 'history.json';

/** One epoch of training, as kept in history.json and drawn as learning curves. */
export interface EpochRecord {
  epoch: number;
  train_loss: number;
  train_accuracy: number;
  valid_loss: number;
  valid_accuracy: number;
  seconds: number;
  /** Whether this epoch's head is the one kept (best valid loss so far). */
  best: boolean;
}

/** What a trained head needs besides its weights, to be rebuilt for evaluation or inference. */
export interface HeadInfo {
  settings: HeadSettings;
  backend: string;
  kernel: string;
  best_epoch: number;
  best_valid_loss: number;
  /** Why training ended before N_EPOCHS (the loss stopped being a number), when it did. */
  stopped?: string;
}

/** Loss and accuracy of `head` on one split (eval mode). */
export async function evaluateSplit(head: Head, featuresFile: string, split: string, batchSize: number, onBatch?: (rows: number) => void, signal?: AbortSignal): Promise<MetricsAccumulator> {
  const acc = new MetricsAccumulator();
  for await (const b of splitBatches(featuresFile, split, batchSize)) {
    signal?.throwIfAborted();
    acc.add(await head.predict(b), b.labels);
    onBatch?.(acc.count);
  }
  return acc;
}

/**
 * Rebuilds a trained head from a folder holding head.json and head.safetensors (a train entry, or an
 * export), on `backend`, or by default on the engine it was trained on (which its train key holds).
 */
export async function loadTrainedHead(dir: string, backend?: Experiment['BACKEND'], options: { allowSpinning?: boolean } = {}): Promise<{ head: Head; info: HeadInfo }> {
  const info = await readEntryJson<HeadInfo>(path.join(dir, HEAD_INFO_FILE));
  const head = await createHead(info.settings, { backend: backend ?? (info.backend as Experiment['BACKEND']), allowSpinning: options.allowSpinning });
  const { tensors } = await readSafetensors(path.join(dir, HEAD_FILE));
  head.setWeights(tensors);
  return { head, info };
}
