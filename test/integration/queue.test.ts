import { expect } from 'chai';
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { mkdir, mkdtemp, readdir, readFile, rmdir } from 'node:fs/promises';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { NO_TRACE, REPO, locationEnv, sentiment, tempDir, writeText } from '../helpers.js';
import { startRedis } from '../redis.js';

interface WorkerProcess {
  process: ChildProcess;
  /** Everything it printed on stderr so far. */
  readonly stderr: string;
  /** Resolves with the first line matching `pattern` (rejects when the worker exits first). */
  line(pattern: RegExp): Promise<string>;
  exited: Promise<number | null>;
}

/** `sentiment worker` in the background; killed (if still running) after the test file. */
function startWorker(args: string[], env: Record<string, string> = {}): WorkerProcess {
  const child = spawn(process.execPath, [path.join(REPO, 'bin/run.js'), 'worker', ...args], { cwd: REPO, env: { ...process.env, CI: '1', ...env }, stdio: ['ignore', 'ignore', 'pipe'] });
  let stderr = '';
  const waiting: { pattern: RegExp; resolve: (l: string) => void; reject: (e: Error) => void }[] = [];
  const exited = new Promise<number | null>((resolve) => child.once('exit', (code, signal) => resolve(code ?? (signal ? 128 : null))));
  const scan = () => {
    for (const w of [...waiting]) {
      const hit = stderr.split('\n').find((l) => w.pattern.test(l));
      if (hit !== undefined) {
        waiting.splice(waiting.indexOf(w), 1);
        w.resolve(hit);
      }
    }
  };
  child.stderr!.on('data', (d) => {
    stderr += d;
    scan();
  });
  void exited.then(() => {
    for (const w of waiting.splice(0)) w.reject(new Error(`the worker exited before printing ${w.pattern}:\n${stderr}`));
  });
  after(() => {
    if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL');
  });
  return {
    process: child,
    get stderr() {
      return stderr;
    },
    line(pattern) {
      return new Promise((resolve, reject) => {
        waiting.push({ pattern, resolve, reject });
        scan();
      });
    },
    exited,
  };
}

/** The processes whose parent is `pid`. */
function childrenOf(pid: number): number[] {
  const r = spawnSync('pgrep', ['-P', String(pid)], { encoding: 'utf8' });
  return r.stdout.split('\n').filter(Boolean).map(Number);
}

/** How many times each trial name appears in lines `verb NAME ...` of the workers' output. */
function countLines(verb: string, outputs: string[]): Record<string, number> {
  const counts: Record<string, number> = {};
  for (const out of outputs) for (const m of out.matchAll(new RegExp(`^\\S+ ${verb} (\\S+?):? `, 'gm'))) counts[m[1]] = (counts[m[1]] ?? 0) + 1;
  return counts;
}

/**
 * A second path to `dir` through a bind mount when this process may mount (root), else `dir` itself.
 * The mount point is outside every temporary folder, so removing those never goes through it.
 */
async function secondPath(dir: string): Promise<string> {
  if (process.getuid?.() !== 0) return dir;
  const other = await mkdtemp(path.join(os.tmpdir(), 'sentiment-mount-'));
  if (spawnSync('mount', ['--bind', dir, other], { stdio: 'ignore' }).status !== 0) {
    await rmdir(other);
    return dir;
  }
  after(async () => {
    spawnSync('umount', [other], { stdio: 'ignore' });
    await rmdir(other).catch(() => {});
  });
  return other;
}

type Trial = { id: string; status: string; run_dir: string | null; metrics: { test: { accuracy: number } } | null; error?: string };

describe('sentiment sweep --queue and sentiment worker', function () {
  this.timeout(600_000);
  let gridText: string;
  /** Each trial's metrics from a local `--jobs 1` sweep of the same grid, with its own cache. */
  const local = new Map<string, unknown>();

  before(async function () {
    gridText = `base: ${JSON.stringify(path.join(REPO, 'experiments/quickstart.yaml'))}\nset: { N_EPOCHS: 2, BACKEND: onnxruntime }\ngrid: { HIDDEN_DIM: [4, 8], N_LAYERS: [1, 2] }\n`;
    const dir = await tempDir();
    const r = await sentiment(['sweep', await writeText(path.join(dir, 'grid.yaml'), gridText), '--jobs', '1', '--json'], locationEnv(dir));
    expect(r.code, r.stderr).to.equal(0);
    for (const t of JSON.parse(r.stdout).trials as Trial[]) local.set(t.id, t.metrics);
  });

  it('runs a 2×2 grid on two workers sharing the cache: each trial once, with the metrics of a local sweep', async function () {
    const { url } = await startRedis(this);
    const dir = await tempDir();
    const cache = path.join(dir, 'cache');
    await mkdir(cache);
    const a = startWorker(['--queue', url, '--cache-dir', cache, '--runs-dir', path.join(dir, 'runs-a')]);
    const b = startWorker(['--queue', url, '--cache-dir', await secondPath(cache), '--runs-dir', path.join(dir, 'runs-b')]);
    await Promise.all([a.line(/ worker .* on redis:/), b.line(/ worker .* on redis:/)]);
    const file = await writeText(path.join(dir, 'grid.yaml'), gridText);
    const r = await sentiment(['sweep', file, '--queue', url, '--json'], locationEnv(dir));
    expect(r.code, `${r.stderr}\n${a.stderr}\n${b.stderr}`).to.equal(0);
    const trials = JSON.parse(r.stdout).trials as Trial[];
    expect(trials.map((t) => t.id)).to.deep.equal(['t1', 't2', 't3', 't4']);
    for (const t of trials) {
      expect(t.status, t.error).to.equal('done');
      expect(t.metrics, t.id).to.deep.equal(local.get(t.id));
    }
    const names = ['grid/t1', 'grid/t2', 'grid/t3', 'grid/t4'];
    expect(countLines('took', [a.stderr, b.stderr])).to.deep.equal(Object.fromEntries(names.map((n) => [n, 1])));
    expect(countLines('finished', [a.stderr, b.stderr])).to.deep.equal(Object.fromEntries(names.map((n) => [n, 1])));
    // One run folder per trial, over both workers' runs folders.
    for (const id of ['t1', 't2', 't3', 't4']) {
      const folders = await Promise.all(['runs-a', 'runs-b'].map((runs) => readdir(path.join(dir, runs, 'grid', id)).catch(() => [])));
      expect(folders.flat(), id).to.have.length(1);
    }
    expect((await readFile(path.join(JSON.parse(r.stdout).sweep_dir, 'results.csv'), 'utf8')).trim().split('\n')).to.have.length(5);

    // A rerun takes the finished jobs' results: nothing more runs.
    const again = await sentiment(['sweep', file, '--queue', url, '--json'], locationEnv(dir));
    expect(again.code, again.stderr).to.equal(0);
    expect((JSON.parse(again.stdout).trials as Trial[]).map((t) => t.run_dir)).to.deep.equal(trials.map((t) => t.run_dir));
    expect(countLines('took', [a.stderr, b.stderr])).to.deep.equal(Object.fromEntries(names.map((n) => [n, 1])));

    // Ctrl-C: the idle workers stop and exit 130.
    a.process.kill('SIGINT');
    b.process.kill('SIGINT');
    expect(await a.exited).to.equal(130);
    expect(await b.exited).to.equal(130);
  });

  it('gives the trial of a worker killed with -9 to the other worker once its lock expires; every trial runs to the end once', async function () {
    const { url } = await startRedis(this);
    const dir = await tempDir();
    const fast = ['--lock-duration', '2000', '--stalled-interval', '500'];
    const env = locationEnv(dir);
    const a = startWorker(['--queue', url, '--runs-dir', path.join(dir, 'runs-a'), ...fast], env);
    await a.line(/ worker .* on redis:/);
    const sweep = sentiment(['sweep', await writeText(path.join(dir, 'grid.yaml'), gridText), '--queue', url, '--json'], env);
    const took = await a.line(/ took /);
    const name = took.split(' ')[2];
    // As when its machine goes down: the worker and the trial it runs (stopped first, so it starts no other).
    a.process.kill('SIGSTOP');
    const orphans = childrenOf(a.process.pid!);
    a.process.kill('SIGKILL');
    for (const pid of orphans) process.kill(pid, 'SIGKILL');
    await a.exited;
    const b = startWorker(['--queue', url, '--runs-dir', path.join(dir, 'runs-b'), ...fast], env);
    const r = await sweep;
    expect(r.code, `${r.stderr}\n${a.stderr}\n${b.stderr}`).to.equal(0);
    const trials = JSON.parse(r.stdout).trials as Trial[];
    for (const t of trials) {
      expect(t.status, t.error).to.equal('done');
      expect(t.metrics, t.id).to.deep.equal(local.get(t.id));
    }
    expect(countLines('finished', [a.stderr]), 'the killed worker finished nothing').to.deep.equal({});
    expect(countLines('took', [b.stderr])[name], `${name} was taken again by the other worker`).to.equal(1);
    expect(countLines('finished', [b.stderr])).to.deep.equal({ 'grid/t1': 1, 'grid/t2': 1, 'grid/t3': 1, 'grid/t4': 1 });
    expect(trials.find((t) => `grid/${t.id}` === name)!.run_dir).to.contain(path.join(dir, 'runs-b'));
  });

  it('stops the same trials with early stopping as a local sweep (one worker takes them in order; rungs in Redis), and shows their epochs live', async function () {
    const { url } = await startRedis(this);
    const dir = await tempDir();
    const text = `base: ${JSON.stringify(path.join(REPO, 'experiments/quickstart.yaml'))}\nset: { N_EPOCHS: 4, BACKEND: onnxruntime }\ngrid: { HIDDEN_DIM: [4, 8], LEARNING_RATE: [0.0001, 0.005] }\nearly_stop: { method: asha, metric: valid_loss, min_epochs: 1, reduction_factor: 2 }\n`;
    const localDir = await tempDir();
    const l = await sentiment(['sweep', await writeText(path.join(localDir, 'asha.yaml'), text), '--jobs', '1', '--json'], locationEnv(localDir));
    expect(l.code, l.stderr).to.equal(0);
    const expected = JSON.parse(l.stdout).trials as (Trial & { epochs: number; stopped?: string })[];
    expect(expected.some((t) => t.status === 'stopped'), 'the local sweep stops a trial').to.equal(true);

    const env = locationEnv(dir);
    const w = startWorker(['--queue', url], env);
    await w.line(/ worker .* on redis:/);
    const q = await sentiment(['sweep', await writeText(path.join(dir, 'asha.yaml'), text), '--queue', url, '--json'], env);
    expect(q.code, `${q.stderr}\n${w.stderr}`).to.equal(0);
    const got = JSON.parse(q.stdout).trials as (Trial & { epochs: number; stopped?: string })[];
    const pick = (ts: typeof got) => ts.map((t) => ({ id: t.id, status: t.status, epochs: t.epochs, stopped: t.stopped, metrics: t.metrics }));
    expect(pick(got)).to.deep.equal(pick(expected));
    expect(q.stderr).to.match(/^ {2}t1 epoch 1: valid loss /m);
  });

  it("refuses a job from a worker whose cache is not the sweep's (the trial fails, naming both ids); a rerun retries it", async function () {
    const { url } = await startRedis(this);
    const dir = await tempDir();
    const env = locationEnv(dir);
    const file = await writeText(path.join(dir, 'one.yaml'), `base: ${JSON.stringify(path.join(REPO, 'experiments/quickstart.yaml'))}\nset: { N_EPOCHS: 1, BACKEND: onnxruntime, HIDDEN_DIM: 4 }\n`);
    const wrong = startWorker(['--queue', url, '--cache-dir', path.join(dir, 'other-cache')], env);
    await wrong.line(/ worker .* on redis:/);
    const r = await sentiment(['sweep', file, '--queue', url, '--json'], env);
    expect(r.code, r.stderr).to.equal(1);
    const [t] = JSON.parse(r.stdout).trials as Trial[];
    expect(t.status).to.equal('failed');
    expect(t.error).to.match(new RegExp(`^this worker's cache ${path.join(dir, 'other-cache')} is not the sweep's cache \\(id [0-9a-f-]{36}≠[0-9a-f-]{36}\\): mount the same cache folder on every machine$`));
    wrong.process.kill('SIGINT');
    expect(await wrong.exited).to.equal(130);

    const right = startWorker(['--queue', url], env);
    await right.line(/ worker .* on redis:/);
    const again = await sentiment(['sweep', file, '--queue', url, '--json'], env);
    expect(again.code, again.stderr).to.equal(0);
    expect((JSON.parse(again.stdout).trials as Trial[])[0].status).to.equal('done');
  });

  it('fails within seconds, without a stack trace, when Redis cannot be reached or the URL is wrong', async () => {
    const dir = await tempDir();
    const env = locationEnv(dir);
    const file = await writeText(path.join(dir, 'one.yaml'), `base: ${JSON.stringify(path.join(REPO, 'experiments/quickstart.yaml'))}\n`);
    for (const args of [['sweep', file, '--queue', 'redis://127.0.0.1:1'], ['worker', '--queue', 'redis://127.0.0.1:1']]) {
      const r = await sentiment(args, env);
      expect(r.code, args.join(' ')).to.equal(1);
      expect(r.stderr).to.contain('Error: cannot reach Redis at redis://127.0.0.1:1 (ECONNREFUSED)');
      expect(r.stderr).to.not.match(NO_TRACE);
    }
    const bad = await sentiment(['worker', '--queue', 'localhost:6379'], env);
    expect(bad.code).to.equal(1);
    expect(bad.stderr).to.contain('Error: --queue localhost:6379: ');
    expect(bad.stderr).to.not.match(NO_TRACE);
    const both = await sentiment(['sweep', file, '--queue', 'redis://127.0.0.1:1', '--jobs', '2'], env);
    expect(both.code).to.equal(2);
    expect(both.stderr).to.contain('--jobs=2 cannot also be provided when using --queue');
  });
});

describe('sentiment sweep --queue when Redis goes away', function () {
  this.timeout(300_000);

  it('Ctrl-C still exits 130 within seconds (trials recorded interrupted); without it the sweep exits 1 naming the URL, never hangs', async function () {
    const { url, port } = await startRedis(this);
    const dir = await tempDir();
    const file = await writeText(path.join(dir, 'two.yaml'), `base: ${JSON.stringify(path.join(REPO, 'experiments/quickstart.yaml'))}\nset: { N_EPOCHS: 1, BACKEND: onnxruntime }\ngrid: { HIDDEN_DIM: [4, 8] }\n`);
    // Two sweeps and no worker: their trials wait on the queue.
    const start = (name: string) => {
      const child = spawn(process.execPath, [path.join(REPO, 'bin/run.js'), 'sweep', file, '--queue', url, '--json', '--runs-dir', path.join(dir, name)], {
        env: { ...process.env, CI: '1', ...locationEnv(dir) },
        stdio: ['ignore', 'pipe', 'pipe'],
      });
      const out = { stdout: '', stderr: '' };
      child.stdout.on('data', (d) => (out.stdout += d));
      child.stderr.on('data', (d) => (out.stderr += d));
      const code = new Promise<number | null>((resolve) => child.on('close', (c) => resolve(c)));
      return { child, out, code };
    };
    const interrupted = start('a');
    const abandoned = start('b');
    for (let i = 0; i < 300 && !(/waiting for/.test(interrupted.out.stderr) && /waiting for/.test(abandoned.out.stderr)); i++) await new Promise((r) => setTimeout(r, 100));
    expect(interrupted.out.stderr + abandoned.out.stderr).to.match(/waiting for[^]*waiting for/);
    // Redis goes away with the jobs.
    await new Promise<void>((resolve) => {
      const socket = net.connect({ host: '127.0.0.1', port }, () => socket.write('SHUTDOWN NOSAVE\r\n'));
      socket.on('close', () => resolve());
      socket.on('error', () => undefined);
    });
    await new Promise((r) => setTimeout(r, 3000));
    interrupted.child.kill('SIGINT');
    expect(await interrupted.code, interrupted.out.stderr).to.equal(130);
    const doc = JSON.parse(interrupted.out.stdout) as { trials: Trial[] };
    expect(doc.trials).to.have.length(2);
    for (const t of doc.trials) {
      expect(t.status).to.equal('interrupted');
      expect(t.error).to.contain(`Redis at ${url}`);
    }
    expect(await abandoned.code, abandoned.out.stderr).to.equal(1);
    expect(abandoned.out.stderr).to.contain(`Error: lost Redis at ${url}: no answer for 30 s (connect ECONNREFUSED`);
    expect(abandoned.out.stderr).to.not.match(NO_TRACE);
  });
});
