import { spawn } from 'node:child_process';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
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

export interface TrialOutcome {
  id: string;
  status: 'done' | 'failed';
  seconds: number;
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
  run(jobs: TrialJob[], onOutcome: (outcome: TrialOutcome) => void, signal?: AbortSignal): Promise<TrialOutcome[]>;
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

  async run(jobs: TrialJob[], onOutcome: (outcome: TrialOutcome) => void, signal?: AbortSignal): Promise<TrialOutcome[]> {
    const outcomes: TrialOutcome[] = new Array(jobs.length);
    let next = 0;
    const worker = async () => {
      while (next < jobs.length && !signal?.aborted) {
        const index = next++;
        outcomes[index] = await runTrialProcess(jobs[index], signal);
        onOutcome(outcomes[index]);
      }
    };
    await Promise.all(Array.from({ length: Math.min(this.jobs, jobs.length) }, worker));
    return outcomes.filter(Boolean);
  }
}

function runTrialProcess(job: TrialJob, signal?: AbortSignal): Promise<TrialOutcome> {
  const args = [CLI, 'run', job.experimentFile, '--json', '--name', job.name, '--cache-dir', job.cacheDir, '--runs-dir', job.runsDir, ...job.sets.flatMap((s) => ['--set', s])];
  const started = performance.now();
  return new Promise((resolve) => {
    const child = spawn(process.execPath, args, { stdio: ['ignore', 'pipe', 'pipe'], env: { ...process.env, CI: process.env.CI ?? '1' }, signal });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (d) => (stdout += d));
    child.stderr.on('data', (d) => (stderr += d));
    child.on('error', () => undefined);
    child.on('close', (code, signalName) => {
      const seconds = (performance.now() - started) / 1000;
      if (code === 0) {
        try {
          resolve({ id: job.id, status: 'done', seconds, result: JSON.parse(stdout) as RunResult, stderr });
          return;
        } catch {
          // fall through: not the one JSON document a run prints
        }
      }
      const how = signalName ? `was stopped by ${signalName}` : code === 0 ? 'exited 0 without printing its result' : `exited with code ${code}`;
      resolve({ id: job.id, status: 'failed', seconds, error: lastErrorLines(stderr) ?? how, stderr });
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
