import path from 'node:path';
import type { Experiment } from '../config/experiment.js';
import { HEAD_FILE, HEAD_INFO_FILE, HISTORY_FILE } from '../training/trained-head.js';
import { resolveEngine, trainHead, type TrainHeadOptions } from '../training/train-head.js';
import type { Stage, UpstreamEntry } from './stage.js';
import { FEATURES_FILE } from '../features/features.js';

/** The head the train stage builds: the GRU settings it reads, on features `inputSize` wide (the encoder's width). */
export function headSettings(config: TrainReads, inputSize: number): TrainHeadOptions['settings'] {
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
    LR_SCHEDULE: config.LR_SCHEDULE,
    LR_WARMUP: config.LR_WARMUP,
    PATIENCE: config.PATIENCE,
    SEED: config.SEED,
    // Engines differ in floating-point order, so results are per engine as resolved (auto → the installed one).
    BACKEND: resolveEngine(config.BACKEND),
  };
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

/** Trains the head on the cached features (trainHead), keeping the best-valid head and the history. */
export const trainStage: Stage<'train', TrainReads, 'data' | 'encode'> = {
  name: 'train',
  // 2: the GRU runs on ONNX Runtime by default (same results up to float rounding).
  // 3: BACKEND in the key is the engine as resolved; wasm and cpu run tfjs's kernels.
  // 4: rows of equal length are shuffled before bucketing (batches were runs of one label; see batches.ts).
  version: 4,
  upstream: ['data', 'encode'],
  reads: trainReads,
  async produce(ctx) {
    const config = ctx.reads;
    const encode = ctx.upstream.encode;
    const { info, history } = await trainHead({
      settings: headSettings(config, encode.manifest.info.hidden_size),
      engine: config.BACKEND,
      featuresFile: path.join(encode.dir, FEATURES_FILE),
      batchSize: config.BATCH_SIZE,
      epochs: config.N_EPOCHS,
      seed: config.SEED,
      schedule: config.LR_SCHEDULE,
      warmup: config.LR_WARMUP,
      patience: config.PATIENCE,
      resumeDir: ctx.resumeDir,
      rows: { train: splitRows(ctx.upstream.data, 'train'), valid: splitRows(ctx.upstream.data, 'valid'), test: splitRows(ctx.upstream.data, 'test') },
      outDir: ctx.dir,
      progress: ctx.progress,
      signal: ctx.signal,
      ...(ctx.observer?.afterEpoch && { afterEpoch: ctx.observer.afterEpoch }),
    });
    return { backend: info.backend, kernel: info.kernel, best_epoch: info.best_epoch, best_valid_loss: info.best_valid_loss, epochs: history.length, ...(info.stopped && { stopped: info.stopped }), files: [HEAD_FILE, HEAD_INFO_FILE, HISTORY_FILE] };
  },
};
