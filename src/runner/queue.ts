import { createHash } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { readFile } from 'node:fs/promises';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import tls from 'node:tls';
import canonicalize from 'canonicalize';
import { Queue, QueueEvents, UnrecoverableError, WaitingError, Worker, type Job, type RedisClient, type RedisOptions } from 'bullmq';
import { cacheId } from '../core/cache.js';
import { UserError } from '../core/errors.js';
import type { EpochRecord } from '../training/trained-head.js';
import { earlyStopPolicy, type EarlyStop, type RungStore } from './asha.js';
import { runTrialEarlyStopped, type Executor, type ExecutorHooks, type TrialJob, type TrialOutcome, type TrialStatus } from './executor.js';
import type { RunResult } from './run.js';
import type { AnyStage } from '../stages/stage.js';

/** The BullMQ queue every sweep and worker uses. */
export const QUEUE_NAME = 'sentiment-trials';

/** Bumped when what a job carries or what a worker returns changes shape. */
export const PROTOCOL = 1;

/** This program's version and the queue protocol, e.g. `0.1.0/p1`: a worker runs only jobs of the same. */
export function queueVersion(): string {
  const pkg = JSON.parse(readFileSync(new URL('../../package.json', import.meta.url), 'utf8')) as { version: string };
  return `${pkg.version}/p${PROTOCOL}`;
}

/** Finished jobs (and their results, which a rerun of the sweep reuses) stay this long in Redis; so do early-stopping rungs. */
const KEEP_MS = 7 * 24 * 3600 * 1000;
/** How long reaching Redis may take before the command gives up. */
const CONNECT_TIMEOUT_MS = 5000;
/** The sweep checks its jobs' states this often, besides listening to the queue's events. */
const POLL_MS = 2000;
/** How long a sweep waits for a Redis that stopped answering before it gives up (trials on workers go on). */
const REDIS_PATIENCE_MS = 30_000;
/** How long the clean-up after Ctrl-C or the end waits for Redis before it lets go. */
const CLEANUP_MS = 5000;

/** `promise`, or a rejection after `ms` (a command to a Redis that is gone waits in ioredis' queue forever). */
function withDeadline<T>(promise: Promise<T>, ms: number, what: string, signal?: AbortSignal): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  let onAbort = () => {};
  const deadline = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(`${what}: no answer in ${ms / 1000} s`)), ms);
    onAbort = () => reject(new Error('interrupted'));
    signal?.addEventListener('abort', onAbort);
  });
  return Promise.race([promise, deadline]).finally(() => {
    clearTimeout(timer);
    signal?.removeEventListener('abort', onAbort);
  });
}
/** At most this much of a trial's stderr travels back with its job. */
const STDERR_TAIL = 20_000;

/** What a queued trial carries: the trial without this machine's folders (each worker uses its own). */
export interface QueuedTrial {
  job: Omit<TrialJob, 'cacheDir' | 'runsDir'>;
  earlyStop?: EarlyStop;
  sweepId: string;
  /** queueVersion() of the sweep. */
  version: string;
  /** cacheId() of the sweep's cache: a worker must use the same cache folder. */
  cacheId: string;
}

/** A worker's return value: a completed job (a failed trial is a failed job). */
export type QueuedResult =
  | { status: 'done'; result: RunResult; epochs?: EpochRecord[]; seconds: number; stderr?: string }
  | { status: 'stopped'; stopped: string; epochs?: EpochRecord[]; seconds: number; stderr?: string };

/** `progress` of a running job: its latest epoch. */
export interface QueuedProgress {
  epoch: EpochRecord;
  epochs: number;
}

export interface RedisTarget {
  /** The URL as given, without its password: for messages. */
  display: string;
  options: RedisOptions;
}

/** Parses `redis://[[USER]:PASSWORD@]HOST[:PORT][/DB]` (or `rediss://` for TLS); anything else is a UserError naming it. */
export function parseRedisUrl(url: string): RedisTarget {
  const bad = (why: string) => new UserError(`--queue ${url}: ${why}; expected redis://HOST:PORT[/DB], e.g. redis://127.0.0.1:6379`);
  let u: URL;
  try {
    u = new URL(url);
  } catch {
    throw bad('not a URL');
  }
  if (u.protocol !== 'redis:' && u.protocol !== 'rediss:') throw bad(`the scheme is ${u.protocol.replace(/:$/, '')}, not redis`);
  if (!u.hostname) throw bad('no host');
  const port = u.port === '' ? 6379 : Number(u.port);
  if (!Number.isInteger(port) || port < 1 || port > 65535) throw bad(`bad port ${u.port}`);
  const dbText = u.pathname.replace(/^\//, '');
  if (dbText !== '' && !/^\d+$/.test(dbText)) throw bad(`the database /${dbText} is not a number`);
  if (u.search || u.hash) throw bad('unexpected ?query or #fragment');
  const host = u.hostname.replace(/^\[(.*)\]$/, '$1');
  const display = `${u.protocol}//${u.username ? `${decodeURIComponent(u.username)}@` : ''}${u.host}${u.pathname === '/' ? '' : u.pathname}`;
  return {
    display,
    options: {
      host,
      port,
      db: dbText === '' ? 0 : Number(dbText),
      ...(u.username && { username: decodeURIComponent(u.username) }),
      ...(u.password && { password: decodeURIComponent(u.password) }),
      ...(u.protocol === 'rediss:' && { tls: { servername: host } }),
      // A Worker needs null (it blocks on Redis); the probe below is what fails fast.
      maxRetriesPerRequest: null,
      connectTimeout: CONNECT_TIMEOUT_MS,
    },
  };
}

/**
 * Connects once and sends PING (after AUTH when the URL has a password), within CONNECT_TIMEOUT_MS:
 * BullMQ's clients retry forever, so an unreachable Redis must be caught before they start.
 */
export async function probeRedis(target: RedisTarget): Promise<void> {
  const { host, port, username, password } = target.options as { host: string; port: number; username?: string; password?: string };
  const fail = (why: string) => new UserError(`cannot reach Redis at ${target.display} (${why})`);
  await new Promise<void>((resolve, reject) => {
    const socket = target.options.tls ? tls.connect({ host, port, servername: host }) : net.connect({ host, port });
    let answer = '';
    let replies = 0;
    const expected = password ? 2 : 1;
    const done = (e?: Error) => {
      clearTimeout(timer);
      socket.destroy();
      if (e) reject(e);
      else resolve();
    };
    const timer = setTimeout(() => done(fail(`no answer within ${CONNECT_TIMEOUT_MS / 1000} s`)), CONNECT_TIMEOUT_MS);
    socket.once(target.options.tls ? 'secureConnect' : 'connect', () => {
      const command = (...args: string[]) => `*${args.length}\r\n${args.map((a) => `$${Buffer.byteLength(a)}\r\n${a}\r\n`).join('')}`;
      socket.write((password ? command('AUTH', ...(username ? [username] : []), password) : '') + command('PING'));
    });
    socket.on('data', (d) => {
      answer += d.toString('utf8');
      const lines = answer.split('\r\n');
      for (const line of lines.slice(0, -1)) {
        if (line.startsWith('-')) return done(new UserError(`Redis at ${target.display} refused the connection: ${line.slice(1)}`));
        if (++replies === expected) return done();
      }
    });
    socket.on('error', (e: NodeJS.ErrnoException) => done(fail(e.code ?? e.message)));
    socket.on('close', () => done(fail('it closed the connection')));
  });
}

/**
 * A trial's identity in the queue, its job id: the hash of every stage's key for that trial (computed
 * as `run --explain` does, without running anything), so the same trial is never queued twice and a
 * rerun of the sweep (or another sweep holding the same trial) gets the finished result. When planning
 * fails here (e.g. a hub model cannot be looked up on this machine), the hash of the experiment file's
 * content and the trial's overrides stands in. With early stopping the sweep's id is appended: a stopped
 * trial's result belongs to that sweep only.
 */
export async function trialJobId(job: TrialJob, stages: AnyStage[], sweepId: string, earlyStop?: EarlyStop): Promise<string> {
  let identity: unknown;
  try {
    const { explainExperiments } = await import('./run.js');
    const [explained] = await explainExperiments({ stages, experiments: [job.experimentFile], sets: job.sets, cacheDir: job.cacheDir, runsDir: job.runsDir, interactive: false });
    identity = { stages: explained.stages.map((s) => [s.name, s.key]) };
  } catch {
    identity = { file: createHash('sha256').update(await readFile(job.experimentFile)).digest('hex'), sets: job.sets };
  }
  const hash = createHash('sha256').update(canonicalize(identity) ?? '').digest('hex');
  return earlyStop ? `trial-${hash}-${sweepId}` : `trial-${hash}`;
}

/** Why a worker (of `version`, with a cache of id `cache.id` at `cache.dir`) must not run this job; undefined when it may. */
export function refusal(data: Pick<QueuedTrial, 'version' | 'cacheId'>, worker: { version: string; cache: { dir: string; id: string } }): string | undefined {
  if (data.version !== worker.version) return `worker ${worker.version} cannot run a job of sweep version ${data.version}: run the same sentiment version on every machine`;
  if (data.cacheId !== worker.cache.id) {
    return `this worker's cache ${worker.cache.dir} is not the sweep's cache (id ${worker.cache.id}≠${data.cacheId}): mount the same cache folder on every machine`;
  }
  return undefined;
}

const RUNG_SCRIPT = `
local at = redis.call('HGET', KEYS[1], ARGV[1])
if at then
  at = tonumber(at)
else
  at = redis.call('RPUSH', KEYS[2], ARGV[2]) - 1
  redis.call('HSET', KEYS[1], ARGV[1], at)
end
redis.call('PEXPIRE', KEYS[1], ARGV[3])
redis.call('PEXPIRE', KEYS[2], ARGV[3])
if at == 0 then return {} end
return redis.call('LRANGE', KEYS[2], 0, at - 1)
`;
const RUNG_COMMAND = 'sentimentRecordRung';
const withRungCommand = new WeakSet<object>();

/**
 * MemoryRungStore's semantics in Redis, for a sweep whose trials run on several machines: per sweep and
 * rung, a list of values in the order trials first reached it and a hash of each trial's position in it,
 * updated by one Lua script (atomic). Keys expire KEEP_MS after their last use.
 */
export class RedisRungStore implements RungStore {
  constructor(
    private readonly client: RedisClient,
    private readonly sweepId: string,
  ) {}

  async recordAndRead(rung: number, trialId: string, value: number): Promise<number[]> {
    if (!withRungCommand.has(this.client)) {
      this.client.defineCommand(RUNG_COMMAND, { numberOfKeys: 2, lua: RUNG_SCRIPT });
      withRungCommand.add(this.client);
    }
    // One hash tag: both keys in the same slot on a Redis Cluster.
    const base = `sentiment:rungs:{${this.sweepId}}:${rung}`;
    const earlier = (await this.client.runCommand(RUNG_COMMAND, [`${base}:at`, `${base}:values`, trialId, String(value), String(KEEP_MS)])) as string[];
    return earlier.map(Number);
  }
}

function outcomeOf(id: string, job: Job<QueuedTrial, QueuedResult>, state: string): TrialOutcome | undefined {
  if (state === 'completed') {
    const r = job.returnvalue;
    if (r?.status === 'done') return { id, status: 'done', seconds: r.seconds, result: r.result, ...(r.epochs && { epochs: r.epochs }), ...(r.stderr && { stderr: r.stderr }) };
    if (r?.status === 'stopped') return { id, status: 'stopped', seconds: r.seconds, stopped: r.stopped, ...(r.epochs && { epochs: r.epochs }), ...(r.stderr && { stderr: r.stderr }) };
    return { id, status: 'failed', seconds: 0, error: `its job ${job.id} completed without a result this version understands` };
  }
  if (state === 'failed') {
    const seconds = job.finishedOn && job.processedOn ? (job.finishedOn - job.processedOn) / 1000 : 0;
    return { id, status: 'failed', seconds, error: job.failedReason || 'failed' };
  }
  return undefined;
}

/**
 * Runs trials on `sentiment worker`s through a BullMQ queue on Redis: one job per trial (see
 * trialJobId), followed through the queue's events and a periodic check of each job's state. A job
 * already there is reused: completed, its result; failed, retried; waiting or running, followed.
 */
export class QueueExecutor implements Executor {
  readonly description: string;
  private readonly target: RedisTarget;

  /** `stages`: the pipeline's (src/stages' STAGES), to compute each trial's job id. */
  constructor(
    redisUrl: string,
    private readonly stages: AnyStage[],
  ) {
    this.target = parseRedisUrl(redisUrl);
    this.description = `queue ${QUEUE_NAME} on ${this.target.display}`;
  }

  async run(jobs: TrialJob[], hooks: ExecutorHooks): Promise<TrialOutcome[]> {
    const { signal } = hooks;
    await probeRedis(this.target);
    const outcomes: (TrialOutcome | undefined)[] = new Array(jobs.length);
    if (jobs.length === 0) return [];
    const data = { version: queueVersion(), cacheId: await cacheId(jobs[0].cacheDir) };
    const connection = this.target.options;
    const queue = new Queue<QueuedTrial, QueuedResult>(QUEUE_NAME, { connection });
    const events = new QueueEvents(QUEUE_NAME, { connection });
    const errors: string[] = [];
    const onError = (e: Error) => {
      if (!errors.includes(e.message)) process.stderr.write(`warning: Redis at ${this.target.display}: ${e.message}\n`);
      errors.push(e.message);
    };
    queue.on('error', onError);
    events.on('error', onError);
    let wake = () => {};
    try {
      await events.waitUntilReady();
      const ids: string[] = [];
      for (const job of jobs) ids.push(await trialJobId(job, this.stages, hooks.sweepId, hooks.earlyStop));
      const index = new Map(ids.map((id, i) => [id, i]));
      const finish = (i: number, outcome: TrialOutcome) => {
        if (outcomes[i]) return;
        outcomes[i] = outcome;
        hooks.onOutcome(outcome);
        wake();
      };
      // The state first, then the job: a job found finished is read after it finished, with its result or error.
      const lookup = async (jobId: string) => {
        const state = await queue.getJobState(jobId);
        return { state, job: state === 'unknown' ? undefined : await queue.getJob(jobId) };
      };
      const check = async (i: number) => {
        if (outcomes[i]) return;
        const { job, state } = await lookup(ids[i]);
        if (!job) return finish(i, { id: jobs[i].id, status: 'failed', seconds: 0, error: `its job ${ids[i]} was removed from the queue` });
        const outcome = outcomeOf(jobs[i].id, job, state);
        if (outcome) finish(i, outcome);
      };
      events.on('progress', ({ jobId, data: progress }) => {
        const i = index.get(jobId);
        const p = progress as Partial<QueuedProgress>;
        if (i !== undefined && !outcomes[i] && p && typeof p === 'object' && p.epoch) hooks.onEpoch?.(jobs[i].id, p.epoch);
      });
      const onEnd = ({ jobId }: { jobId: string }) => {
        const i = index.get(jobId);
        if (i !== undefined) check(i).catch(onError);
      };
      events.on('completed', onEnd);
      events.on('failed', onEnd);

      for (const [i, job] of jobs.entries()) {
        if (signal?.aborted) break;
        const { cacheDir: _c, runsDir: _r, ...portable } = job;
        const payload: QueuedTrial = { job: portable, ...(hooks.earlyStop && { earlyStop: hooks.earlyStop }), sweepId: hooks.sweepId, ...data };
        const { job: existing, state } = await lookup(ids[i]);
        if (existing && state === 'failed') {
          // Retried with this sweep's data (its version and cache may have been what failed it).
          await existing.updateData(payload);
          await existing.retry('failed', { resetAttemptsMade: true, resetAttemptsStarted: true });
        } else if (!existing || state === 'unknown') {
          await queue.add(job.name, payload, { jobId: ids[i], attempts: 1, removeOnComplete: { age: KEEP_MS / 1000 }, removeOnFail: { age: KEEP_MS / 1000 } });
        }
        // completed: check() gives its result; waiting or active: followed like the others.
        await check(i);
      }

      const left = jobs.filter((_, i) => !outcomes[i]).length;
      if (left > 0 && !signal?.aborted) {
        const before = jobs.length - left;
        process.stderr.write(`${left} trial${left === 1 ? '' : 's'} on queue ${QUEUE_NAME} at ${this.target.display}${before ? ` (${before} finished before)` : ''}: waiting for \`sentiment worker --queue ${this.target.display}\`s to run them\n`);
      }
      let silentSince: number | undefined;
      while (!signal?.aborted && jobs.some((_, i) => !outcomes[i])) {
        await new Promise<void>((resolve) => {
          const timer = setTimeout(resolve, POLL_MS);
          const stop = () => {
            clearTimeout(timer);
            signal?.removeEventListener('abort', stop);
            resolve();
          };
          wake = stop;
          signal?.addEventListener('abort', stop);
        });
        wake = () => {};
        if (signal?.aborted) break;
        try {
          const checkAll = async () => {
            for (let i = 0; i < jobs.length; i++) await check(i);
          };
          await withDeadline(checkAll(), REDIS_PATIENCE_MS / 3, 'checking the jobs', signal);
          silentSince = undefined;
        } catch (e) {
          if (signal?.aborted) break;
          onError(e as Error);
          silentSince ??= Date.now();
          if (Date.now() - silentSince >= REDIS_PATIENCE_MS) {
            const cause = errors.find((m) => /\bE[A-Z]{4,}\b/.test(m)) ?? errors.at(-1);
            throw new UserError(`lost Redis at ${this.target.display}: no answer for ${REDIS_PATIENCE_MS / 1000} s (${cause})`, [
              'trials already taken by workers go on; rerun the sweep once Redis is back to pick up their results',
            ]);
          }
        }
      }

      if (signal?.aborted) {
        await withDeadline((async () => {
          for (let i = 0; i < jobs.length; i++) {
            if (outcomes[i]) continue;
            const id = jobs[i].id;
            const { job, state } = ids[i] ? await lookup(ids[i]) : { job: undefined, state: 'unknown' };
            const ended = job && outcomeOf(id, job, state);
            if (ended) {
              finish(i, ended);
            } else if (job && state !== 'active' && (await job.remove().then(() => true, () => false))) {
              outcomes[i] = { id, status: 'not started', seconds: 0 };
            } else if (job) {
              finish(i, { id, status: 'interrupted', seconds: 0, error: 'interrupted (Ctrl-C) while running on a worker, where it goes on: a rerun of the sweep picks up its result' });
            } else {
              outcomes[i] = { id, status: 'not started', seconds: 0 };
            }
          }
        })(), CLEANUP_MS, `Redis at ${this.target.display}: removing the unstarted jobs`).catch((e: Error) => {
          // Redis is gone: what it holds is unknown; the trials not seen ending may still run or wait there.
          for (let i = 0; i < jobs.length; i++) outcomes[i] ??= { id: jobs[i].id, status: 'interrupted', seconds: 0, error: `interrupted (Ctrl-C); ${e.message}, so its job may still be queued or running` };
        });
      }
      return jobs.map((job, i) => outcomes[i] ?? { id: job.id, status: 'not started' as TrialStatus, seconds: 0 });
    } finally {
      // A graceful close waits for Redis; one that is gone gets a hard disconnect, not awaited (it may never settle).
      await withDeadline(events.close(), CLEANUP_MS, 'closing').catch(() => void events.disconnect().catch(() => {}));
      await withDeadline(queue.close(), CLEANUP_MS, 'closing').catch(() => void queue.disconnect().catch(() => {}));
    }
  }
}

export interface WorkerOptions {
  redisUrl: string;
  concurrency: number;
  cacheDir: string;
  runsDir: string;
  /** Aborted: take no more jobs, stop the running trials and hand their jobs back to the queue, then resolve. */
  signal: AbortSignal;
  /** One line per job taken or finished. */
  log: (line: string) => void;
  lockDuration?: number;
  stalledInterval?: number;
}

/**
 * Takes trials from the queue and runs each as `sentiment run` in its own process (runTrialProcess),
 * with this machine's cache and runs folders. A done or early-stopped trial completes its job with its
 * result; a trial's own error fails it (not retried: it would fail again). The worker holds a lock on
 * each job it runs and renews it while the trial runs; when the worker dies, the lock expires and
 * another worker's stalled-job check puts the job back in the queue (at least once: a trial may run
 * again, and finds its finished stages in the shared cache). Resolves once `signal` aborted and the
 * running trials were handed back.
 */
export async function runWorker(options: WorkerOptions): Promise<void> {
  const target = parseRedisUrl(options.redisUrl);
  await probeRedis(target);
  const cacheDir = path.resolve(options.cacheDir);
  const runsDir = path.resolve(options.runsDir);
  const identity = { version: queueVersion(), cache: { dir: cacheDir, id: await cacheId(cacheDir) } };
  const running = new Set<AbortController>();
  let rungClient: RedisClient | undefined;
  const seen = new Set<string>();
  const warn = (e: Error) => {
    if (seen.has(e.message)) return;
    seen.add(e.message);
    options.log(`warning: Redis at ${target.display}: ${e.message}`);
  };

  const processor = async (job: Job<QueuedTrial, QueuedResult>, token?: string): Promise<QueuedResult> => {
    const { job: trial, earlyStop, sweepId } = job.data;
    const refused = refusal(job.data, identity);
    if (refused) {
      options.log(`refused ${trial.name}: ${refused}`);
      throw new UnrecoverableError(refused);
    }
    const controller = new AbortController();
    running.add(controller);
    options.log(`took ${trial.name} (${trial.sets.join(' ')})`);
    const policy = earlyStop && earlyStopPolicy(earlyStop);
    const rungs = async () => new RedisRungStore((rungClient ??= await worker.client), sweepId);
    try {
      const outcome = await runTrialEarlyStopped(
        { ...trial, cacheDir, runsDir },
        {
          signal: controller.signal,
          policy,
          rungs,
          onEpoch: async (record, epochs) => {
            await job.updateProgress({ epoch: record, epochs } satisfies QueuedProgress).catch(warn);
          },
        },
      );
      const stderr = outcome.stderr?.slice(-STDERR_TAIL);
      const took = `${outcome.seconds.toFixed(1)}s`;
      if (outcome.status === 'done' && outcome.result) {
        options.log(`finished ${trial.name}: done (${took})`);
        return { status: 'done', result: outcome.result, ...(outcome.epochs && { epochs: outcome.epochs }), seconds: outcome.seconds, ...(stderr && { stderr }) };
      }
      if (outcome.status === 'stopped') {
        options.log(`finished ${trial.name}: stopped by early stopping (${took})`);
        return { status: 'stopped', stopped: outcome.stopped ?? 'stopped by early stopping', ...(outcome.epochs && { epochs: outcome.epochs }), seconds: outcome.seconds, ...(stderr && { stderr }) };
      }
      if (outcome.status === 'interrupted' || controller.signal.aborted) {
        // Handed back at once (not failed, not counted as an attempt): another worker takes it up.
        await job.moveToWait(token);
        options.log(`returned ${trial.name} to the queue (interrupted)`);
        throw new WaitingError();
      }
      options.log(`finished ${trial.name}: FAILED: ${outcome.error} (${took})`);
      if (stderr) await job.log(stderr).catch(warn);
      throw new Error(outcome.error ?? 'the trial failed');
    } finally {
      running.delete(controller);
    }
  };

  const worker = new Worker<QueuedTrial, QueuedResult>(QUEUE_NAME, processor, {
    connection: target.options,
    concurrency: options.concurrency,
    name: `${os.hostname()}:${process.pid}`,
    maxStalledCount: 2,
    ...(options.lockDuration !== undefined && { lockDuration: options.lockDuration }),
    ...(options.stalledInterval !== undefined && { stalledInterval: options.stalledInterval }),
  });
  worker.on('error', warn);
  await worker.waitUntilReady();
  options.log(`worker ${identity.version} on ${target.display}, queue ${QUEUE_NAME}, ${options.concurrency} at a time; cache ${cacheDir} (id ${identity.cache.id}), runs ${runsDir}`);
  await new Promise<void>((resolve) => {
    if (options.signal.aborted) resolve();
    else options.signal.addEventListener('abort', () => resolve(), { once: true });
  });
  const closing = worker.close();
  for (const controller of running) controller.abort();
  await closing;
}
