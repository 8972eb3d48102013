import { spawn } from 'node:child_process';
import { readFile } from 'node:fs/promises';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { StoppedEarly } from '../core/errors.js';
import type { EpochRecord } from '../training/trained-head.js';
import { MemoryRungStore, ashaVerdict, earlyStopPolicy, type EarlyStop, type EarlyStopPolicy, type RungStore, type Verdict } from './asha.js';
import type { RunResult } from './run.js';

/** Everything needed to run one trial anywhere: plain data, so a queue can carry it to another machine. */
export interface TrialJob {
  id: string;
  /** Run folder name, e.g. `hidden/t2`. */
  name: string;
  experimentFile: string;
  /** `KEY=VALUE` overrides, as for `sentiment run --set`. */
  sets: string[];
  cacheDir: string;
  runsDir: string;
}

/**
 * done: trained and evaluated; failed: an error; stopped: ended at a rung by the sweep's early stopping
 * (its epochs so far are its result); interrupted: stopped by Ctrl-C; not started: never run (Ctrl-C).
 */
export type TrialStatus = 'done' | 'failed' | 'stopped' | 'interrupted' | 'not started';

export interface TrialOutcome {
  id: string;
  status: TrialStatus;
  seconds: number;
  /** The epochs the trial trained in this run or before (a cached or resumed train stage reports its history). */
  epochs?: EpochRecord[];
  /** Why early stopping ended it (status stopped). */
  stopped?: string;
  result?: RunResult;
  /** The last error lines the trial printed (or how it ended, when it printed none). */
  error?: string;
  /** Everything the trial printed on stderr: its progress, warnings and error. */
  stderr?: string;
}

/**
 * Runs trials and reports each outcome as it finishes. The sweep logic only talks to this interface:
 * a queue-backed executor for several machines implements the same two members, with a cache and
 * runs folder those machines share.
 */
export interface Executor {
  readonly description: string;
  /** Every job's outcome in `jobs`' order (unstarted ones `not started` when the signal aborted). */
  run(jobs: TrialJob[], hooks: ExecutorHooks): Promise<TrialOutcome[]>;
}

export interface ExecutorHooks {
  onOutcome(outcome: TrialOutcome): void;
  /** A trial finished an epoch (live progress; also replayed epochs of a resumed or cached trial). */
  onEpoch?(id: string, record: EpochRecord): void;
  /** Early stopping for the whole sweep: where the executor runs the trials, it asks this after each epoch. */
  earlyStop?: EarlyStop;
  /** Names the sweep, so the trials of one sweep share early-stopping rungs and no other's. */
  sweepId: string;
  signal?: AbortSignal;
}

const CLI = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../../bin/run.js');

/**
 * Runs each trial as its own `sentiment run --json` process, `jobs` at a time. Processes share the
 * cache safely: entries are computed under a per-entry lock and renamed into place, so two trials never
 * compute the same entry at once and readers never see a half-written one; a trial that crashes only
 * fails itself.
 */
export class LocalExecutor implements Executor {
  readonly description: string;

  constructor(private readonly jobs: number) {
    this.description = `local, ${jobs} process${jobs === 1 ? '' : 'es'}`;
  }

  async run(jobs: TrialJob[], hooks: ExecutorHooks): Promise<TrialOutcome[]> {
    const { signal } = hooks;
    const policy = hooks.earlyStop && earlyStopPolicy(hooks.earlyStop);
    const rungs = new MemoryRungStore();
    const outcomes: TrialOutcome[] = new Array(jobs.length);
    let next = 0;
    const worker = async () => {
      while (next < jobs.length && !signal?.aborted) {
        const index = next++;
        const job = jobs[index];
        const outcome = await runTrialEarlyStopped(job, { signal, policy, rungs: async () => rungs, onEpoch: async (record) => hooks.onEpoch?.(job.id, record) });
        outcomes[index] = outcome;
        hooks.onOutcome(outcome);
      }
    };
    await Promise.all(Array.from({ length: Math.min(this.jobs, jobs.length) }, worker));
    return jobs.map((job, i) => outcomes[i] ?? { id: job.id, status: 'not started', seconds: 0 });
  }
}

/**
 * runTrialProcess under a sweep's early stopping (none when `policy` is undefined): each epoch goes to
 * `onEpoch`, then to ASHA's verdict on `rungs`; a trial whose head was cached trained nothing now, but
 * its epochs still count at the rungs they passed. Both executors run their trials through this.
 */
export async function runTrialEarlyStopped(
  job: TrialJob,
  o: { signal?: AbortSignal; policy?: EarlyStopPolicy; rungs: () => Promise<RungStore>; onEpoch?: (record: EpochRecord, epochs: number) => Promise<void> },
): Promise<TrialOutcome> {
  let reported = false;
  const outcome = await runTrialProcess(job, {
    signal: o.signal,
    onEpoch: async (record, epochs) => {
      reported = true;
      await o.onEpoch?.(record, epochs);
      return o.policy ? ashaVerdict(o.policy, await o.rungs(), job.id, record, epochs) : { stop: false };
    },
  });
  if (o.policy && outcome.status === 'done' && outcome.epochs && !reported) {
    const store = await o.rungs();
    for (const record of outcome.epochs) await ashaVerdict(o.policy, store, job.id, record, outcome.epochs.length);
  }
  return outcome;
}

/** Messages between a sweep (or worker) and the `sentiment run` it started for a trial, over Node's IPC channel. */
export type TrialMessage = { type: 'epoch'; record: EpochRecord; epochs: number } | { type: 'verdict'; verdict: Verdict };

/** Set in a trial's environment: the run reports each epoch over IPC and waits for the verdict. */
export const TRIAL_IPC_ENV = 'SENTIMENT_TRIAL_IPC';

export interface TrialProcessHooks {
  signal?: AbortSignal;
  /** After each epoch (and each replayed one): whether the trial goes on. `maxEpochs` is its N_EPOCHS. */
  onEpoch?(record: EpochRecord, maxEpochs: number): Promise<Verdict>;
}

/**
 * Runs one trial as `sentiment run --json` in its own process. The run reports each epoch over IPC and
 * waits for a verdict; a stop ends it as `stopped` (its train stage is not cached: an early-stopped head
 * is not the head its key names; its checkpoint stays, so a full run of the same settings goes on from
 * there). If this process dies, the IPC channel closes and the trial stops itself.
 */
/** A finished trial's epochs: those it reported, else (its train stage was cached) its run folder's history. */
async function trainedEpochs(result: RunResult, reported: EpochRecord[]): Promise<EpochRecord[]> {
  if (reported.length > 0 || !result.run_dir) return reported;
  try {
    return JSON.parse(await readFile(path.join(result.run_dir, 'history.json'), 'utf8')) as EpochRecord[];
  } catch {
    return []; // no history: a TRAIN: false trial
  }
}

export function runTrialProcess(job: TrialJob, hooks: TrialProcessHooks = {}): Promise<TrialOutcome> {
  const args = [CLI, 'run', job.experimentFile, '--json', '--name', job.name, '--cache-dir', job.cacheDir, '--runs-dir', job.runsDir, ...job.sets.flatMap((s) => ['--set', s])];
  const started = performance.now();
  const epochs: EpochRecord[] = [];
  let stopped: string | undefined;
  return new Promise((resolve) => {
    const child = spawn(process.execPath, args, {
      stdio: ['ignore', 'pipe', 'pipe', 'ipc'],
      env: { ...process.env, CI: process.env.CI ?? '1', [TRIAL_IPC_ENV]: '1' },
      signal: hooks.signal,
      killSignal: 'SIGINT',
    });
    let stdout = '';
    let stderr = '';
    child.stdout!.on('data', (d) => (stdout += d));
    child.stderr!.on('data', (d) => (stderr += d));
    child.on('error', () => undefined);
    child.on('message', (m: TrialMessage) => {
      if (m.type !== 'epoch') return;
      const known = epochs.findIndex((e) => e.epoch === m.record.epoch);
      if (known >= 0) epochs[known] = m.record;
      else epochs.push(m.record);
      const decide: Promise<Verdict> = hooks.onEpoch ? hooks.onEpoch(m.record, m.epochs) : Promise.resolve({ stop: false });
      decide
        .catch((e: unknown): Verdict => ({ stop: true, reason: `early stopping could not decide: ${(e as Error).message}` }))
        .then((verdict) => {
          if (verdict.stop) stopped = verdict.reason ?? 'stopped by early stopping';
          if (child.connected) child.send({ type: 'verdict', verdict } satisfies TrialMessage);
        });
    });
    child.on('close', (code, signalName) => {
      const seconds = (performance.now() - started) / 1000;
      const base = { id: job.id, seconds, stderr, ...(epochs.length > 0 && { epochs }) };
      if (code === 0) {
        let result: RunResult | undefined;
        try {
          result = JSON.parse(stdout) as RunResult;
        } catch {
          // not the one JSON document a run prints: failed, below
        }
        if (result) {
          void trainedEpochs(result, epochs).then((all) => resolve({ ...base, status: 'done', result, ...(all.length > 0 && { epochs: all }) }));
          return;
        }
      }
      if (stopped !== undefined && code === StoppedEarly.EXIT) {
        resolve({ ...base, status: 'stopped', stopped });
        return;
      }
      if (hooks.signal?.aborted) {
        resolve({ ...base, status: 'interrupted', error: 'interrupted (Ctrl-C)' });
        return;
      }
      const how = signalName ? `was stopped by ${signalName}` : code === 0 ? 'exited 0 without printing its result' : `exited with code ${code}`;
      resolve({ ...base, status: 'failed', error: lastErrorLines(stderr) ?? how });
    });
  });
}

/**
 * The error a failed run printed: from its last line starting with "Error:" to the end (its details),
 * at most 5 lines; else its last 3 lines; undefined when it printed nothing.
 */
export function lastErrorLines(stderr: string): string | undefined {
  // eslint-disable-next-line no-control-regex
  const lines = stderr.replace(/\u001b\[[0-9;?]*[A-Za-z]/g, '').split(/\r?\n/).map((l) => l.trimEnd()).filter((l) => l.trim() !== '');
  if (lines.length === 0) return undefined;
  let start = -1;
  lines.forEach((l, i) => {
    if (/^(Error|error)\b/.test(l.trim())) start = i;
  });
  const picked = start >= 0 ? lines.slice(start, start + 5) : lines.slice(-3);
  return picked.map((l) => l.trim()).join(' · ');
}
