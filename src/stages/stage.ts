import type { CacheEntry, StageKey } from '../core/cache.js';
import type { Settings } from '../core/settings.js';
import type { Experiment } from '../config/experiment.js';
import type { Progress } from '../core/progress.js';
import type { EpochRecord } from '../training/trained-head.js';
import type { StageOutputs } from './outputs.js';

export const STAGE_NAMES = ['data', 'tokenize', 'encode', 'train', 'evaluate', 'infer'] as const;
export type StageName = (typeof STAGE_NAMES)[number];

/**
 * Where the files the config names are. They enter keys only through `inputs()` (fingerprints of
 * their content), never as paths, so a moved dataset or model folder keeps its entries.
 */
export interface Sources {
  /** MODEL as written, and the folder a relative one is relative to. */
  model: { value: string; baseDir: string };
  /** DATASET as written, and the folder a relative one is relative to. */
  dataset: { value: Experiment['DATASET']; baseDir: string };
  /** The cache's folder: downloads and hub models are kept under it. */
  cacheRoot: string;
}

/** How the work is done, not what it computes: never part of a key. */
export interface RunSettings extends Settings {
  /** Where the encoder runs (DEVICE): features do not depend on it. */
  device: Experiment['DEVICE'];
}

/** What a stage's `inputs()` sees: its reads, where its files are, and a way to fingerprint them. */
export interface KeyContext<R> {
  reads: Readonly<R>;
  sources: Sources;
  /** SHA-256 of files' content relative to `root`, remembered across runs by size and mtime. */
  fingerprint(files: string[], root?: string): Promise<Record<string, string>>;
}

/** A cache entry of an upstream stage, its `info` typed by what that stage produces. */
export type UpstreamEntry<N extends StageName> = CacheEntry<StageOutputs[N]>;

/** What `produce` sees: exactly its reads (nothing else of the config), its upstream entries, settings. */
export interface StageContext<R, U extends StageName> extends KeyContext<R> {
  /** Empty temporary folder the stage writes its output into (renamed into the cache when it returns). */
  dir: string;
  /**
   * A folder for checkpoints, the same for this key across runs until the entry is complete: what an
   * interrupted run left there lets the next one go on (train resumes after its last finished epoch).
   */
  resumeDir: string;
  /** The entries of the stages listed in `upstream`. */
  upstream: { [N in U]: UpstreamEntry<N> };
  settings: RunSettings;
  progress: Progress;
  signal: AbortSignal;
  observer?: RunObserver;
}

/** Who started the run watching it from outside (a sweep), and able to stop it after an epoch. */
export interface RunObserver {
  /** After each training epoch (also each one a resumed checkpoint holds); throws StoppedEarly to stop. */
  afterEpoch?(record: EpochRecord, epochs: number): Promise<void>;
}

/**
 * One step of the pipeline. Its cache key is the SHA-256 of its name and version, `reads(config)`,
 * `inputs(ctx)` and its upstream stages' keys; `produce` writes its output into `ctx.dir` and returns
 * what goes into the manifest's `info`. `produce` gets the object `reads` returned and no config, so a
 * value it uses is a value in its key; reading a key `reads` did not return fails to type-check, and
 * at run time (see `guardReads`).
 */
export interface Stage<N extends StageName = StageName, R extends object = object, U extends StageName = never> {
  name: N;
  version: number;
  upstream: readonly U[];
  /** Exactly the config values this stage reads. */
  reads(config: Experiment): R;
  /** Fingerprints of external inputs (files' content), without absolute paths. */
  inputs?(ctx: KeyContext<R>): Promise<Record<string, unknown>>;
  produce(ctx: StageContext<R, U>): Promise<StageOutputs[N]>;
}

/** Any stage, for the code that runs them in order without knowing each one's types. */
// eslint-disable-next-line @typescript-eslint/no-explicit-any
export type AnyStage = Omit<Stage<StageName, any, any>, 'produce'> & { produce(ctx: StageContext<any, any>): Promise<object> };

/**
 * The reads as `produce` sees them: frozen, and a property that is not there throws, naming the
 * stage, so a stage cannot use a setting its key does not cover even through an untyped path.
 */
export function guardReads<R extends object>(stage: string, reads: R): Readonly<R> {
  const frozen = Object.freeze({ ...reads });
  return new Proxy(frozen, {
    get(target, property, receiver) {
      if (typeof property === 'string' && !(property in target) && property !== 'then' && property !== 'toJSON') {
        throw new Error(`stage ${stage} read ${property}, which its reads() does not declare (so it is not in its key)`);
      }
      return Reflect.get(target, property, receiver);
    },
  });
}

export type { Progress, StageKey };
