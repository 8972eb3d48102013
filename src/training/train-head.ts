import { mkdir, readdir, readFile, rm, writeFile } from 'node:fs/promises';
import writeFileAtomic from 'write-file-atomic';
import path from 'node:path';
import { UserError } from '../core/errors.js';
import { formatSeconds } from '../core/format.js';
import type { Progress } from '../core/progress.js';
import { createHead, resolveBackend, type BackendName, type BackendSetting, type Head, type HeadSettings } from '../model/index.js';
import { learningRateAt, type LearningRateSchedule } from './schedule.js';
import { trainingBatches } from './batches.js';
import { MetricsAccumulator } from './metrics.js';
import { readSafetensors, writeSafetensors, type NamedTensor } from './safetensors.js';
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
  /** The learning rate over the steps (settings.learningRate is its base) and the warm-up fraction. */
  schedule: LearningRateSchedule;
  warmup: number;
  /** Stop after this many epochs without a better valid loss; null: train every epoch. */
  patience: number | null;
  /**
   * Where a checkpoint is written after every epoch (weights, Adam's state, the dropout stream, the best
   * head, the history): training found there goes on after its last finished epoch, to the same result
   * as an uninterrupted run. Only one process may use it at a time (the cache's lock sees to that).
   */
  resumeDir?: string;
  /** Rows of the train and valid splits, for progress. */
  rows: { train?: number; valid?: number; test?: number };
  /** Where head.safetensors (the best head so far, rewritten as it improves), head.json and history.json go. */
  outDir: string;
  progress: Progress;
  signal: AbortSignal;
  /**
   * Called after each epoch once its checkpoint is written (and, on a resume, for each epoch the
   * checkpoint holds, first): it may throw to stop training there, e.g. a sweep's early stopping.
   */
  afterEpoch?: (record: EpochRecord, epochs: number) => Promise<void>;
}

/**
 * Estimates how long the rest of training takes (epochs × batches, from the rates measured so far:
 * training rows, and evaluation rows, which run faster) and the rest of the run (plus evaluating
 * every split once), for the progress line: ` · train ETA 3m10s · run ETA 3m40s`.
 */
class Pace {
  private readonly seconds = { train: 0, valid: 0 };
  private readonly rows = { train: 0, valid: 0 };
  private running?: { kind: 'train' | 'valid'; started: number; before: number };

  constructor(
    private readonly epochs: number,
    private readonly splits: { train?: number; valid?: number; test?: number },
  ) {}

  start(kind: 'train' | 'valid'): { stop(): void } {
    const started = performance.now();
    const before = this.seconds[kind];
    let stopped = false;
    // Time is counted as rows arrive (add) and settled on stop, so a first estimate comes within a few batches.
    this.running = { kind, started, before };
    return {
      stop: () => {
        if (stopped) return;
        stopped = true;
        this.seconds[kind] = before + (performance.now() - started) / 1000;
        this.running = undefined;
      },
    };
  }

  add(kind: 'train' | 'valid', rows: number): void {
    this.rows[kind] += rows;
    if (this.running?.kind === kind) this.seconds[kind] = this.running.before + (performance.now() - this.running.started) / 1000;
  }

  /** At `trainDone` train rows and `validDone` valid rows into `epoch`: "" until a rate is known. */
  eta(epoch: number, trainDone: number, validDone: number): string {
    const trainRate = this.seconds.train > 0 ? this.rows.train / this.seconds.train : 0;
    if (!(trainRate > 0) || this.splits.train === undefined) return '';
    // Evaluation has no backward pass: until it is measured, take it as three times the training rate.
    const validRate = this.seconds.valid > 0 && this.rows.valid > 0 ? this.rows.valid / this.seconds.valid : 3 * trainRate;
    const train = this.splits.train;
    const valid = this.splits.valid ?? 0;
    const trainLeft = train - trainDone + (this.epochs - epoch) * train;
    const validLeft = valid - validDone + (this.epochs - epoch) * valid;
    const stage = trainLeft / trainRate + validLeft / validRate;
    const evaluate = (train + valid + (this.splits.test ?? 0)) / validRate;
    return ` · train ETA ${formatSeconds(stage)} · run ETA ${formatSeconds(stage + evaluate)}`;
  }
}

/** checkpoint.json: which epoch's folder holds the latest checkpoint; written last, atomically. */
interface Checkpoint {
  format: 1;
  epoch: number;
  history: EpochRecord[];
  best: { epoch: number; loss: number } | null;
  /** Why training ended at this epoch (PATIENCE), when it did: a rerun then only writes the entry. */
  stopped?: string;
}

const CHECKPOINT_FILE = 'checkpoint.json';

/**
 * After an epoch: the head's weights and Adam's moments (state.safetensors, with Adam's step and the
 * dropout stream in its metadata) and the best head (best.safetensors) go into a new `epoch-N` folder;
 * then checkpoint.json names it (an atomic rename); then older folders go. A kill at any moment leaves
 * the previous checkpoint or this one whole.
 */
async function writeCheckpoint(dir: string, head: Head, epoch: number, history: EpochRecord[], best: { loss: number; epoch: number; weights: Record<string, NamedTensor> } | undefined, stopped: string | undefined): Promise<void> {
  const folder = path.join(dir, `epoch-${epoch}`);
  await rm(folder, { recursive: true, force: true });
  await mkdir(folder, { recursive: true });
  const state = head.getTrainingState();
  const weights = head.getWeights();
  const tensors: Record<string, NamedTensor> = {};
  for (const [name, t] of Object.entries(weights)) {
    tensors[`w/${name}`] = t;
    tensors[`m/${name}`] = { shape: t.shape, data: state.expAvg[name] };
    tensors[`v/${name}`] = { shape: t.shape, data: state.expAvgSq[name] };
  }
  await writeSafetensors(path.join(folder, 'state.safetensors'), tensors, { step: String(state.step), dropout_rng: JSON.stringify(state.dropoutRng) });
  if (best) await writeSafetensors(path.join(folder, 'best.safetensors'), best.weights);
  const checkpoint: Checkpoint = { format: 1, epoch, history, best: best ? { epoch: best.epoch, loss: best.loss } : null, ...(stopped !== undefined && { stopped }) };
  await writeFileAtomic(path.join(dir, CHECKPOINT_FILE), JSON.stringify(checkpoint));
  for (const name of await readdir(dir)) if (name.startsWith('epoch-') && name !== `epoch-${epoch}`) await rm(path.join(dir, name), { recursive: true, force: true });
}

/** The checkpoint in `dir`, restored into `head`; undefined when there is none (or it cannot be read: training starts over). */
async function readCheckpoint(dir: string, head: Head): Promise<{ epoch: number; history: EpochRecord[]; best?: { loss: number; epoch: number; weights: Record<string, NamedTensor> }; stopped?: string } | undefined> {
  let checkpoint: Checkpoint;
  try {
    checkpoint = JSON.parse(await readFile(path.join(dir, CHECKPOINT_FILE), 'utf8')) as Checkpoint;
  } catch {
    return undefined;
  }
  try {
    if (checkpoint.format !== 1 || !Number.isInteger(checkpoint.epoch)) throw new Error('unknown checkpoint format');
    const folder = path.join(dir, `epoch-${checkpoint.epoch}`);
    const { tensors, metadata } = await readSafetensors(path.join(folder, 'state.safetensors'));
    const pick = (prefix: string) => Object.fromEntries(Object.entries(tensors).filter(([k]) => k.startsWith(prefix)).map(([k, t]) => [k.slice(prefix.length), t]));
    const weights = pick('w/');
    const m = pick('m/');
    const v = pick('v/');
    head.setWeights(weights);
    head.setTrainingState({
      step: Number(metadata.step),
      expAvg: Object.fromEntries(Object.entries(m).map(([k, t]) => [k, t.data])),
      expAvgSq: Object.fromEntries(Object.entries(v).map(([k, t]) => [k, t.data])),
      dropoutRng: JSON.parse(metadata.dropout_rng) as number[],
    });
    const best = checkpoint.best ? { ...checkpoint.best, weights: (await readSafetensors(path.join(folder, 'best.safetensors'))).tensors } : undefined;
    return { epoch: checkpoint.epoch, history: checkpoint.history, best, stopped: checkpoint.stopped };
  } catch {
    // A checkpoint that does not load is not used: training starts from epoch 1 (the same result, later).
    await rm(path.join(dir, CHECKPOINT_FILE), { force: true });
    return undefined;
  }
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
  let history: EpochRecord[] = [];
  let best: { loss: number; epoch: number; weights: Record<string, NamedTensor> } | undefined;
  // head.safetensors is rewritten whenever valid loss improves, so it always holds the best head so far.
  // Set when the loss stops being a number: training ends there, keeping the best head so far.
  let diverged: string | undefined;
  // Set when PATIENCE epochs went by without a better valid loss.
  let stoppedEarly: string | undefined;
  // Batches are full but the last of each epoch, so the steps are known up front (for the schedule).
  const stepsPerEpoch = Math.ceil((trainRows ?? 0) / o.batchSize);
  const totalSteps = stepsPerEpoch * o.epochs;
  const scheduled = o.schedule !== 'constant' || o.warmup > 0;
  if (scheduled) {
    if (!(stepsPerEpoch > 0)) throw new Error('trainHead: a learning-rate schedule needs the train split\'s row count');
  }
  let firstEpoch = 1;
  const pace = new Pace(o.epochs, o.rows);
  const resumed = o.resumeDir ? await readCheckpoint(o.resumeDir, head) : undefined;
  if (resumed) {
    ({ history, best } = resumed);
    // A run that had stopped early (PATIENCE) was done training; only its entry was not written yet.
    stoppedEarly = resumed.stopped;
    firstEpoch = stoppedEarly !== undefined ? o.epochs + 1 : resumed.epoch + 1;
    if (best) await writeSafetensors(path.join(o.outDir, HEAD_FILE), best.weights, { backend: head.backend, best_epoch: String(best.epoch) });
    o.progress.log(`resumed after epoch ${resumed.epoch} of ${o.epochs}`);
  }
  try {
    // Whoever watches the epochs sees the resumed ones too, so its decision is the same as the first time.
    for (const record of history) await o.afterEpoch?.(record, o.epochs);
    epochs: for (let epoch = firstEpoch; epoch <= o.epochs; epoch++) {
      const started = performance.now();
      const trainClock = pace.start('train');
      const train = new MetricsAccumulator();
      let lossSum = 0;
      let batchNumber = 0;
      for await (const b of trainingBatches(o.featuresFile, 'train', o.batchSize, o.seed, epoch)) {
        o.signal.throwIfAborted();
        batchNumber++;
        if (scheduled) {
          head.setLearningRate(learningRateAt(o.schedule, o.settings.learningRate, o.warmup, (epoch - 1) * stepsPerEpoch + batchNumber - 1, totalSteps));
        }
        const { loss, logits } = await head.trainStep(b);
        if (!Number.isFinite(loss)) {
          diverged = `the training loss became ${loss} at epoch ${epoch}, batch ${batchNumber}`;
          break epochs;
        }
        lossSum += loss * b.batch;
        train.add(logits, b.labels);
        pace.add('train', b.batch);
        const eta = pace.eta(epoch, train.count, 0);
        o.progress.update(train.count, trainRows, 'rows', `epoch ${epoch}/${o.epochs}`, `loss ${(lossSum / train.count).toFixed(4)}${eta}`);
      }
      trainClock.stop();
      const validClock = pace.start('valid');
      let validDone = 0;
      const valid = await evaluateSplit(
        head,
        o.featuresFile,
        'valid',
        o.batchSize,
        (n) => {
          pace.add('valid', n - validDone);
          validDone = n;
          o.progress.update(n, validRows, 'rows', `epoch ${epoch}/${o.epochs} · valid`, pace.eta(epoch, trainRows ?? 0, n).replace(/^ · /, ''));
        },
        o.signal,
      );
      validClock.stop();
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
      if (o.patience !== null && best && epoch - best.epoch >= o.patience && epoch < o.epochs) {
        stoppedEarly = `no better valid loss in ${o.patience} epoch${o.patience === 1 ? '' : 's'} after epoch ${best.epoch}; stopped after epoch ${epoch} of ${o.epochs} (PATIENCE ${o.patience})`;
        o.progress.log(stoppedEarly);
      }
      if (o.resumeDir) await writeCheckpoint(o.resumeDir, head, epoch, history, best, stoppedEarly);
      await o.afterEpoch?.(record, o.epochs);
      if (stoppedEarly) break;
    }
    if (diverged) {
      if (!best) {
        throw new UserError(`train: ${diverged}, before any epoch finished, so there is no head to keep`, [
          `LEARNING_RATE is ${o.settings.learningRate}: a smaller one may help; or the features hold values that are not numbers (check the encode stage's input, or force it: --force encode)`,
        ]);
      }
      o.progress.log(`warning: ${diverged}; training stopped there, keeping the head of epoch ${best.epoch} (valid loss ${best.loss.toFixed(4)})`);
    }
    const info: HeadInfo = { settings: head.settings, backend: head.backend, kernel: head.kernel, best_epoch: best!.epoch, best_valid_loss: best!.loss, ...((diverged ?? stoppedEarly) && { stopped: diverged ?? stoppedEarly }) };
    await writeFile(path.join(o.outDir, HEAD_INFO_FILE), JSON.stringify(info, null, 2));
    await writeFile(path.join(o.outDir, HISTORY_FILE), JSON.stringify(history, null, 2));
    return { info, history };
  } finally {
    head.dispose();
  }
}
