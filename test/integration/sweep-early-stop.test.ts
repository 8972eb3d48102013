import { expect } from 'chai';
import { spawn, execFileSync } from 'node:child_process';
import { readFile } from 'node:fs/promises';
import path from 'node:path';
import { REPO, sentiment, tempDir, writeText, locationEnv } from '../helpers.js';

interface TrialDoc {
  id: string;
  status: string;
  epochs: number;
  stopped?: string;
  metrics: { valid: { loss: number } } | null;
}
interface ResultsTrial {
  id: string;
  status: string;
  history: { epoch: number; valid_loss: number }[];
}

/** Children of a process, by pid (procps' pgrep). */
function childrenOf(pid: number): number[] {
  try {
    return execFileSync('pgrep', ['-P', String(pid)], { encoding: 'utf8' }).trim().split('\n').filter(Boolean).map(Number);
  } catch {
    return [];
  }
}

function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
}

describe('sentiment sweep: early stopping and interruptions', function () {
  this.timeout(600_000);

  it('stops the trials ASHA says it should (checked by hand from their histories), the same again on a rerun', async () => {
    const dir = await tempDir();
    const env = locationEnv(dir);
    const file = await writeText(
      path.join(dir, 'asha.yaml'),
      `base: ${JSON.stringify(path.join(REPO, 'experiments/quickstart.yaml'))}
set: { N_EPOCHS: 5, BACKEND: onnxruntime }
grid: { HIDDEN_DIM: [4, 8, 16], LEARNING_RATE: [0.0001, 0.005] }
early_stop: { method: asha, metric: valid_loss, min_epochs: 1, reduction_factor: 2 }
`,
    );
    const r = await sentiment(['sweep', file, '--json'], env);
    expect(r.code, r.stderr).to.equal(0);
    const doc = JSON.parse(r.stdout) as { sweep_dir: string; trials: TrialDoc[] };
    const results = JSON.parse(await readFile(path.join(doc.sweep_dir, 'results.json'), 'utf8')).trials as ResultsTrial[];
    const byId = new Map(results.map((t) => [t.id, t]));

    // The rule by hand, over the trials in the order one process ran them: rungs at epochs 1, 2, 4 (below
    // N_EPOCHS 5); at a rung a trial stops when its valid loss is above the median-like cutoff (the 1/2
    // quantile, numpy's linear interpolation) of the values recorded there before it.
    const rungs = new Map<number, number[]>([[1, []], [2, []], [4, []]]);
    const expected = new Map<string, number | null>();
    for (const id of ['t1', 't2', 't3', 't4', 't5', 't6']) {
      const history = byId.get(id)!.history;
      let stoppedAt: number | null = null;
      for (const [rung, earlier] of rungs) {
        const at = history.find((e) => e.epoch === rung);
        if (!at) break;
        const sorted = [...earlier].sort((a, b) => a - b);
        const q = 0.5 * (sorted.length - 1);
        const cutoff = sorted.length ? sorted[Math.floor(q)] + (sorted[Math.ceil(q)] - sorted[Math.floor(q)]) * (q - Math.floor(q)) : Infinity;
        earlier.push(at.valid_loss);
        if (at.valid_loss > cutoff) {
          stoppedAt = rung;
          break;
        }
      }
      expected.set(id, stoppedAt);
    }
    for (const t of doc.trials) {
      const stoppedAt = expected.get(t.id);
      if (stoppedAt === null) {
        expect(t.status, t.id).to.equal('done');
        expect(t.epochs, t.id).to.equal(5);
      } else {
        expect(t.status, t.id).to.equal('stopped');
        expect(t.epochs, t.id).to.equal(stoppedAt);
        expect(t.stopped).to.contain(`epoch-${stoppedAt} rung`);
        expect(t.metrics).to.equal(null);
      }
    }
    expect([...expected.values()].filter((s) => s !== null).length, 'the grid has trials that fall behind').to.be.greaterThan(0);
    const csv = await readFile(path.join(doc.sweep_dir, 'results.csv'), 'utf8');
    expect(csv.split('\n')[0]).to.contain('status,epochs');
    expect(csv).to.contain(',stopped,');
    // `sentiment runs` tells a stopped trial's run from a failed or unfinished one.
    const runs = JSON.parse((await sentiment(['runs', '--json'], env)).stdout).runs as { experiment: string; status: string }[];
    const stoppedIds = doc.trials.filter((t) => t.status === 'stopped').map((t) => `asha/${t.id}`);
    expect(runs.filter((r) => r.status === 'stopped').map((r) => r.experiment).sort()).to.deep.equal(stoppedIds.sort());

    // A rerun: finished trials come from the cache, stopped ones resume from their checkpoint and stop again.
    const again = await sentiment(['sweep', file, '--json'], env);
    expect(again.code, again.stderr).to.equal(0);
    const second = JSON.parse(again.stdout) as { trials: TrialDoc[] };
    expect(second.trials.map((t) => [t.id, t.status, t.epochs])).to.deep.equal(doc.trials.map((t) => [t.id, t.status, t.epochs]));

    // Without early stopping, a stopped trial goes on from its checkpoint to the same head as a run from scratch.
    const stopped = doc.trials.find((t) => t.status === 'stopped')!;
    const overrides = JSON.parse(await readFile(path.join(doc.sweep_dir, 'results.json'), 'utf8')).trials.find((t: { id: string }) => t.id === stopped.id).overrides as Record<string, unknown>;
    const sets = Object.entries(overrides).flatMap(([k, v]) => ['--set', `${k}=${JSON.stringify(v)}`]);
    const resumed = await sentiment(['run', path.join(REPO, 'experiments/quickstart.yaml'), '--json', ...sets], env);
    expect(resumed.code, resumed.stderr).to.equal(0);
    expect(resumed.stderr).to.contain(`resumed after epoch ${stopped.epochs} of 5`);
    const fresh = await sentiment(['run', path.join(REPO, 'experiments/quickstart.yaml'), '--json', ...sets], locationEnv(await tempDir()));
    expect(JSON.parse(resumed.stdout).metrics).to.deep.equal(JSON.parse(fresh.stdout).metrics);
  });

  it('Ctrl-C records the running trial as interrupted and the unstarted ones as not started (exit 130)', async () => {
    const dir = await tempDir();
    const file = await writeText(
      path.join(dir, 'long.yaml'),
      `base: ${JSON.stringify(path.join(REPO, 'experiments/quickstart.yaml'))}\nset: { N_EPOCHS: 400, BACKEND: onnxruntime, HIDDEN_DIM: 4 }\ntrials: [ { SEED: 1 }, { SEED: 2 }, { SEED: 3 } ]\n`,
    );
    const child = spawn(process.execPath, [path.join(REPO, 'bin/run.js'), 'sweep', file, '--json'], { env: { ...process.env, CI: '1', ...locationEnv(dir) } });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (d) => (stdout += d));
    const trialStarted = new Promise<void>((resolve) =>
      child.stderr.on('data', (d) => {
        stderr += d;
        if (/t1 epoch 2:/.test(stderr)) resolve();
      }),
    );
    const code = new Promise<number | null>((resolve) => child.on('close', (c) => resolve(c)));
    await trialStarted;
    child.kill('SIGINT');
    expect(await code, stderr).to.equal(130);
    const doc = JSON.parse(stdout) as { sweep_dir: string; trials: TrialDoc[] };
    expect(doc.trials.map((t) => [t.id, t.status])).to.deep.equal([
      ['t1', 'interrupted'],
      ['t2', 'not started'],
      ['t3', 'not started'],
    ]);
    const csv = await readFile(path.join(doc.sweep_dir, 'results.csv'), 'utf8');
    expect(csv).to.contain(',not started,');
  });

  it('a trial stops itself when the sweep that started it is killed', async () => {
    const dir = await tempDir();
    const file = await writeText(
      path.join(dir, 'long.yaml'),
      `base: ${JSON.stringify(path.join(REPO, 'experiments/quickstart.yaml'))}\nset: { N_EPOCHS: 400, BACKEND: onnxruntime, HIDDEN_DIM: 4 }\n`,
    );
    const sweep = spawn(process.execPath, [path.join(REPO, 'bin/run.js'), 'sweep', file], { env: { ...process.env, CI: '1', ...locationEnv(dir) } });
    let stderr = '';
    await new Promise<void>((resolve) =>
      sweep.stderr.on('data', (d) => {
        stderr += d;
        if (/t1 epoch 1:/.test(stderr)) resolve();
      }),
    );
    const trials = childrenOf(sweep.pid!);
    expect(trials, 'the sweep runs its trial as a child process').to.have.length(1);
    sweep.kill('SIGKILL');
    // The orphaned trial sees its IPC channel close and stops (it would train 400 epochs otherwise).
    for (let i = 0; i < 300 && alive(trials[0]); i++) await new Promise((r) => setTimeout(r, 100));
    expect(alive(trials[0]), 'the orphaned trial stopped').to.equal(false);
  });
});
