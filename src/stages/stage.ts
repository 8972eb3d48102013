import type { Cache, CacheEntry } from '../core/cache.js';
import type { LoadedExperiment, Experiment } from '../config/experiment.js';

export const STAGE_NAMES = ['data', 'tokenize', 'encode', 'train', 'evaluate', 'infer'] as const;
export type StageName = (typeof STAGE_NAMES)[number];

/** Reports per-batch progress of a long stage. */
export interface Progress {
  /**
   * `done` of `total` units (rows, bytes, ...) so far; the renderer adds rate and ETA. A new `phase`
   * restarts the rate; `note` (such as the running loss) is only shown.
   */
  update(done: number, total: number | undefined, unit: string, phase?: string, note?: string): void;
  /** A line for the run log (and the terminal when not on a TTY). */
  log(message: string): void;
}

/** What a stage needs to compute its key: the experiment, and a way to fingerprint files. */
export interface KeyContext {
  experiment: LoadedExperiment;
  config: Experiment;
  cache: Cache;
  /** SHA-256 of files' content relative to `root`, remembered across runs by size and mtime. */
  fingerprint(files: string[], root?: string): Promise<Record<string, string>>;
}

export interface StageContext extends KeyContext {
  /** Empty temporary folder the stage writes its output into (renamed into the cache when it returns). */
  dir: string;
  /** The entries of the stages listed in `upstream`. */
  upstream: Partial<Record<StageName, CacheEntry>>;
  progress: Progress;
  signal: AbortSignal;
}

/**
 * One step of the pipeline. Its cache key is the SHA-256 of its name and version, `reads(config)`,
 * `inputs(ctx)` and its upstream stages' keys; `produce` writes its Arrow output into `ctx.dir` and
 * returns what goes into the manifest's `info`.
 */
export interface Stage {
  name: StageName;
  version: number;
  upstream: StageName[];
  /** Exactly the config values this stage reads. */
  reads(config: Experiment): Record<string, unknown>;
  /** Fingerprints of external inputs (files' content), without absolute paths. */
  inputs?(ctx: KeyContext): Promise<Record<string, unknown>>;
  produce(ctx: StageContext): Promise<Record<string, unknown>>;
}
