import type { Prediction, Predictor } from './predictor.js';

/**
 * Micro-batching over a Predictor, for a server: callers submit their texts; what arrives within
 * `maxWaitMs` of the oldest waiting caller, or of the end of the previous batch when that is later, goes
 * through one `predictor.predict` call, which sorts by length for the encoder and the head, and each
 * caller gets its own predictions back in its own order. A batch starts sooner when `maxBatch` texts
 * wait, or once every caller the previous batch answered is back beside those that were already
 * waiting when it ended: clients that send their next request as soon as they are answered then make one
 * full batch instead of two halves in turn, and waiting longer would only add latency. One batch runs
 * at a time; the queue is bounded in texts.
 */

export interface BatcherOptions {
  /** The longest a batch waits for more callers after its oldest one arrived (or after the previous batch ended), in ms. */
  maxWaitMs: number;
  /** Most texts in one batch (a caller's texts are never split, so a larger caller runs alone). */
  maxBatch: number;
  /** Most texts waiting (not yet in a running batch); a caller that would go beyond is refused. */
  maxQueue: number;
}

export const DEFAULT_BATCHER: BatcherOptions = { maxWaitMs: 20, maxBatch: 64, maxQueue: 1024 };

/** A caller refused because the queue is full: retry later. */
export class QueueFullError extends Error {
  constructor(readonly maxQueue: number) {
    super(`the queue is full (${maxQueue} texts waiting); retry later`);
    this.name = 'QueueFullError';
  }
}

export interface Batched {
  /** The caller's predictions, in the order of its texts. */
  predictions: Prediction[];
  /** How many texts (of all callers) the batch that answered it held. */
  batchSize: number;
}

export interface Batcher {
  /** Queues `texts`; rejects with QueueFullError when they don't fit. */
  predict(texts: string[]): Promise<Batched>;
  /** Texts waiting for a batch. */
  readonly queued: number;
  /**
   * From now on batches start without waiting for more callers; resolves once every caller so far has
   * its answer (for a server that is stopping: what it accepted is answered at once).
   */
  drain(): Promise<void>;
}

interface Job {
  texts: string[];
  since: number;
  resolve: (r: Batched) => void;
  reject: (e: unknown) => void;
}

export function createBatcher(predictor: Pick<Predictor, 'predict'>, options: Partial<BatcherOptions> = {}): Batcher {
  const { maxWaitMs, maxBatch, maxQueue } = { ...DEFAULT_BATCHER, ...options };
  const waiting: Job[] = [];
  let queued = 0;
  let running = false;
  let draining = false;
  let lastEnd = -Infinity;
  /** Callers expected after a batch: those waiting when it ended plus those it answered (0: none expected). */
  let expected = 0;
  let timer: NodeJS.Timeout | undefined;
  let idle: (() => void)[] = [];

  function schedule(): void {
    if (running) return;
    if (waiting.length === 0) {
      for (const done of idle) done();
      idle = [];
      return;
    }
    if (queued >= maxBatch || draining || (expected > 0 && waiting.length >= expected)) {
      start();
      return;
    }
    // Wait from the oldest caller's arrival, or from the end of the last batch when that is later: its
    // callers are then sending their next requests, which would otherwise make a batch of their own.
    if (!timer) timer = setTimeout(start, Math.max(0, Math.max(waiting[0].since, lastEnd) + maxWaitMs - performance.now()));
  }

  function start(): void {
    clearTimeout(timer);
    timer = undefined;
    if (running || waiting.length === 0) return;
    // Whole callers, oldest first, up to maxBatch texts (the first one always, however many it has).
    const jobs = [waiting.shift()!];
    let size = jobs[0].texts.length;
    while (waiting.length > 0 && size + waiting[0].texts.length <= maxBatch) {
      size += waiting[0].texts.length;
      jobs.push(waiting.shift()!);
    }
    queued -= size;
    running = true;
    predictor
      .predict(jobs.flatMap((j) => j.texts))
      .then(
        (predictions) => {
          let at = 0;
          for (const job of jobs) {
            job.resolve({ predictions: predictions.slice(at, at + job.texts.length), batchSize: size });
            at += job.texts.length;
          }
        },
        (e: unknown) => jobs.forEach((job) => job.reject(e)),
      )
      .finally(() => {
        running = false;
        lastEnd = performance.now();
        expected = waiting.length + jobs.length;
        schedule();
      });
  }

  return {
    predict(texts) {
      if (texts.length === 0) return Promise.resolve({ predictions: [], batchSize: 0 });
      if (queued + texts.length > maxQueue) return Promise.reject(new QueueFullError(maxQueue));
      return new Promise<Batched>((resolve, reject) => {
        waiting.push({ texts, since: performance.now(), resolve, reject });
        queued += texts.length;
        schedule();
      });
    },
    get queued() {
      return queued;
    },
    drain() {
      draining = true;
      if (!running && waiting.length === 0) return Promise.resolve();
      const drained = new Promise<void>((resolve) => idle.push(resolve));
      schedule();
      return drained;
    },
  };
}
