import { writeFile } from 'node:fs/promises';
import path from 'node:path';
import type { Experiment } from '../config/experiment.js';
import { HEAD_FILE, HEAD_INFO_FILE, HISTORY_FILE, evaluateSplit, type EpochRecord, type HeadInfo } from '../training/trained-head.js';
import { UserError } from '../core/errors.js';
import type { Stage, UpstreamEntry } from './stage.js';
import { createHead, resolveBackend, type HeadSettings } from '../model/index.js';
import { trainingBatches } from '../training/batches.js';
import { MetricsAccumulator } from '../training/metrics.js';
import { writeSafetensors, type NamedTensor } from '../training/safetensors.js';
import { FEATURES_FILE } from '../features/features.js';

/** The head the train stage builds: the GRU settings it reads, on features `inputSize` wide (the encoder's width). */
export function headSettings(config: TrainReads, inputSize: number): HeadSettings {
  return {
    inputSize,
    hiddenSize: config.HIDDEN_DIM,
    layers: config.N_LAYERS,
    bidirectional: config.BIDIRECTIONAL,
    dropout: config.DROPOUT,
    learningRate: config.LEARNING_RATE,
    seed: config.SEED,
  };
}

export function trainReads(config: Experiment) {
  return {
    HIDDEN_DIM: config.HIDDEN_DIM,
    N_LAYERS: config.N_LAYERS,
    BIDIRECTIONAL: config.BIDIRECTIONAL,
    DROPOUT: config.DROPOUT,
    OUTPUT_DIM: config.OUTPUT_DIM,
    BATCH_SIZE: config.BATCH_SIZE,
    N_EPOCHS: config.N_EPOCHS,
    LEARNING_RATE: config.LEARNING_RATE,
    SEED: config.SEED,
    // Engines differ in floating-point order, so results are per engine as resolved (auto → the installed one).
    BACKEND: resolveBackend(config.BACKEND),
  };
}

function copyWeights(w: Record<string, NamedTensor>): Record<string, NamedTensor> {
  return Object.fromEntries(Object.entries(w).map(([k, t]) => [k, { shape: [...t.shape], data: Float32Array.from(t.data) }]));
}

/** Rows of a split, from the data stage's manifest. */
export function splitRows(data: UpstreamEntry<'data'>, split: string): number | undefined {
  return data.manifest.info.splits[split]?.rows;
}

export type TrainReads = ReturnType<typeof trainReads>;

/** train's manifest info. */
export interface TrainInfo {
  backend: string;
  kernel: string;
  best_epoch: number;
  best_valid_loss: number;
  epochs: number;
  stopped?: string;
  files: string[];
}

/**
 * Trains the head on the cached features: Adam, mean BCE on logits, shuffled length-bucketed batches;
 * after each epoch the valid split is evaluated and the head is kept when valid loss improved.
 */
export const trainStage: Stage<'train', TrainReads, 'data' | 'encode'> = {
  name: 'train',
  // 2: the GRU runs on ONNX Runtime by default (same results up to float rounding).
  // 3: BACKEND in the key is the engine as resolved; wasm and cpu run tfjs's kernels.
  version: 3,
  upstream: ['data', 'encode'],
  reads: trainReads,
  async produce(ctx) {
    const config = ctx.reads;
    const encode = ctx.upstream.encode;
    const featuresFile = path.join(encode.dir, FEATURES_FILE);
    const head = await createHead(headSettings(config, encode.manifest.info.hidden_size), { backend: config.BACKEND });
    ctx.progress.log(`training on ${head.backendDescription} (kernel ${head.kernel})`);
    const trainRows = splitRows(ctx.upstream.data, 'train');
    const validRows = splitRows(ctx.upstream.data, 'valid');
    const history: EpochRecord[] = [];
    let best: { loss: number; epoch: number; weights: Record<string, NamedTensor> } | undefined;
    // head.safetensors is rewritten whenever valid loss improves, so it always holds the best head so far.
    // Set when the loss stops being a number: training ends there, keeping the best head so far.
    let diverged: string | undefined;
    try {
      epochs: for (let epoch = 1; epoch <= config.N_EPOCHS; epoch++) {
        const started = performance.now();
        const train = new MetricsAccumulator();
        let lossSum = 0;
        let batchNumber = 0;
        for await (const b of trainingBatches(featuresFile, 'train', config.BATCH_SIZE, config.SEED, epoch)) {
          ctx.signal.throwIfAborted();
          batchNumber++;
          const { loss, logits } = await head.trainStep(b);
          if (!Number.isFinite(loss)) {
            diverged = `the training loss became ${loss} at epoch ${epoch}, batch ${batchNumber}`;
            break epochs;
          }
          lossSum += loss * b.batch;
          train.add(logits, b.labels);
          ctx.progress.update(train.count, trainRows, 'rows', `epoch ${epoch}/${config.N_EPOCHS}`, `loss ${(lossSum / train.count).toFixed(4)}`);
        }
        const valid = await evaluateSplit(head, featuresFile, 'valid', config.BATCH_SIZE, (n) => ctx.progress.update(n, validRows, 'rows', `epoch ${epoch}/${config.N_EPOCHS} · valid`), ctx.signal);
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
          await writeSafetensors(path.join(ctx.dir, HEAD_FILE), best.weights, { backend: head.backend, best_epoch: String(epoch) });
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
        ctx.progress.log(
          `epoch ${epoch}: train loss ${record.train_loss.toFixed(4)} acc ${(100 * record.train_accuracy).toFixed(2)}% · valid loss ${record.valid_loss.toFixed(4)} acc ${(100 * record.valid_accuracy).toFixed(2)}%${improved ? ' · kept' : ''}`,
        );
      }
      if (diverged) {
        if (!best) {
          throw new UserError(`train: ${diverged}, before any epoch finished, so there is no head to keep`, [
            `LEARNING_RATE is ${config.LEARNING_RATE}: a smaller one may help; or the features hold values that are not numbers (check the encode stage's input, or force it: --force encode)`,
          ]);
        }
        ctx.progress.log(`warning: ${diverged}; training stopped there, keeping the head of epoch ${best.epoch} (valid loss ${best.loss.toFixed(4)})`);
      }
      const info: HeadInfo = { settings: head.settings, backend: head.backend, kernel: head.kernel, best_epoch: best!.epoch, best_valid_loss: best!.loss, ...(diverged && { stopped: diverged }) };
      await writeFile(path.join(ctx.dir, HEAD_INFO_FILE), JSON.stringify(info, null, 2));
      await writeFile(path.join(ctx.dir, HISTORY_FILE), JSON.stringify(history, null, 2));
      return { backend: head.backend, kernel: head.kernel, best_epoch: best!.epoch, best_valid_loss: best!.loss, epochs: history.length, ...(diverged && { stopped: diverged }), files: [HEAD_FILE, HEAD_INFO_FILE, HISTORY_FILE] };
    } finally {
      head.dispose();
    }
  },
};
