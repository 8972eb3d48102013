import { writeFile } from 'node:fs/promises';
import path from 'node:path';
import { UserError } from '../core/errors.js';
import type { Progress } from '../core/progress.js';
import { createHead, resolveBackend, type BackendName, type BackendSetting, type HeadSettings } from '../model/index.js';
import { trainingBatches } from './batches.js';
import { MetricsAccumulator } from './metrics.js';
import { writeSafetensors, type NamedTensor } from './safetensors.js';
import { HEAD_FILE, HEAD_INFO_FILE, HISTORY_FILE, evaluateSplit, type EpochRecord, type HeadInfo } from './trained-head.js';

/** The engine a BACKEND setting stands for here, without loading it (train keys hold it). */
export function resolveEngine(setting: BackendSetting): BackendName {
  return resolveBackend(setting);
}

export interface TrainHeadOptions {
  /** The GRU head to build (its input size is the features' width). */
  settings: HeadSettings;
  engine: BackendName;
  featuresFile: string;
  batchSize: number;
  epochs: number;
  /** Shuffles the batches (dropout and initialisation draw from settings.seed). */
  seed: number;
  /** Rows of the train and valid splits, for progress. */
  rows: { train?: number; valid?: number };
  /** Where head.safetensors (the best head so far, rewritten as it improves), head.json and history.json go. */
  outDir: string;
  progress: Progress;
  signal: AbortSignal;
}

function copyWeights(w: Record<string, NamedTensor>): Record<string, NamedTensor> {
  return Object.fromEntries(Object.entries(w).map(([k, t]) => [k, { shape: [...t.shape], data: Float32Array.from(t.data) }]));
}

/**
 * Trains the head on a features file: Adam, mean BCE on logits, shuffled length-bucketed batches;
 * after each epoch the valid split is evaluated and the head is kept when valid loss improved. A loss
 * that stops being a number ends training there, keeping the best head so far (or fails in the first epoch).
 */
export async function trainHead(o: TrainHeadOptions): Promise<{ info: HeadInfo; history: EpochRecord[] }> {
  const head = await createHead(o.settings, { backend: o.engine });
  o.progress.log(`training on ${head.backendDescription} (kernel ${head.kernel})`);
  const { train: trainRows, valid: validRows } = o.rows;
  const history: EpochRecord[] = [];
  let best: { loss: number; epoch: number; weights: Record<string, NamedTensor> } | undefined;
  // head.safetensors is rewritten whenever valid loss improves, so it always holds the best head so far.
  // Set when the loss stops being a number: training ends there, keeping the best head so far.
  let diverged: string | undefined;
  try {
    epochs: for (let epoch = 1; epoch <= o.epochs; epoch++) {
      const started = performance.now();
      const train = new MetricsAccumulator();
      let lossSum = 0;
      let batchNumber = 0;
      for await (const b of trainingBatches(o.featuresFile, 'train', o.batchSize, o.seed, epoch)) {
        o.signal.throwIfAborted();
        batchNumber++;
        const { loss, logits } = await head.trainStep(b);
        if (!Number.isFinite(loss)) {
          diverged = `the training loss became ${loss} at epoch ${epoch}, batch ${batchNumber}`;
          break epochs;
        }
        lossSum += loss * b.batch;
        train.add(logits, b.labels);
        o.progress.update(train.count, trainRows, 'rows', `epoch ${epoch}/${o.epochs}`, `loss ${(lossSum / train.count).toFixed(4)}`);
      }
      const valid = await evaluateSplit(head, o.featuresFile, 'valid', o.batchSize, (n) => o.progress.update(n, validRows, 'rows', `epoch ${epoch}/${o.epochs} · valid`), o.signal);
      // Train loss as the original reports it: averaged over examples while the head was changing.
      const trainLoss = lossSum / Math.max(1, train.count);
      const v = valid.lossAndAccuracy();
      if (!Number.isFinite(v.loss)) {
        diverged = `the valid loss became ${v.loss} after epoch ${epoch}`;
        break;
      }
      const improved = !best || v.loss < best.loss;
      if (improved) {
        best = { loss: v.loss, epoch, weights: copyWeights(head.getWeights()) };
        await writeSafetensors(path.join(o.outDir, HEAD_FILE), best.weights, { backend: head.backend, best_epoch: String(epoch) });
      }
      const record: EpochRecord = {
        epoch,
        train_loss: trainLoss,
        train_accuracy: train.lossAndAccuracy().accuracy,
        valid_loss: v.loss,
        valid_accuracy: v.accuracy,
        seconds: (performance.now() - started) / 1000,
        best: improved,
      };
      history.push(record);
      o.progress.log(
        `epoch ${epoch}: train loss ${record.train_loss.toFixed(4)} acc ${(100 * record.train_accuracy).toFixed(2)}% · valid loss ${record.valid_loss.toFixed(4)} acc ${(100 * record.valid_accuracy).toFixed(2)}%${improved ? ' · kept' : ''}`,
      );
    }
    if (diverged) {
      if (!best) {
        throw new UserError(`train: ${diverged}, before any epoch finished, so there is no head to keep`, [
          `LEARNING_RATE is ${o.settings.learningRate}: a smaller one may help; or the features hold values that are not numbers (check the encode stage's input, or force it: --force encode)`,
        ]);
      }
      o.progress.log(`warning: ${diverged}; training stopped there, keeping the head of epoch ${best.epoch} (valid loss ${best.loss.toFixed(4)})`);
    }
    const info: HeadInfo = { settings: head.settings, backend: head.backend, kernel: head.kernel, best_epoch: best!.epoch, best_valid_loss: best!.loss, ...(diverged && { stopped: diverged }) };
    await writeFile(path.join(o.outDir, HEAD_INFO_FILE), JSON.stringify(info, null, 2));
    await writeFile(path.join(o.outDir, HISTORY_FILE), JSON.stringify(history, null, 2));
    return { info, history };
  } finally {
    head.dispose();
  }
}
