import { expect } from 'chai';
import { readdir, readFile } from 'node:fs/promises';
import path from 'node:path';
import { NO_TRACE, REPO, sentiment, tempDir, writeText, locationEnv } from '../helpers.js';

describe('sentiment sweep', function () {
  this.timeout(600_000);

  it('runs a 2×2 grid with one shared encode entry, compares the trials, and reruns from the cache', async () => {
    const dir = await tempDir();
    const env = locationEnv(dir);
    const file = await writeText(
      path.join(dir, 'grid.yaml'),
      `base: ${JSON.stringify(path.join(REPO, 'experiments/quickstart.yaml'))}\nset: { N_EPOCHS: 1, BACKEND: onnxruntime }\ngrid: { HIDDEN_DIM: [4, 8], N_LAYERS: [1, 2] }\n`,
    );
    const first = await sentiment(['sweep', file, '--jobs', '2', '--json'], env);
    expect(first.code, first.stderr).to.equal(0);
    const doc = JSON.parse(first.stdout);
    expect(doc.trials).to.have.length(4);
    for (const t of doc.trials) {
      expect(t).to.include.keys('overrides', 'status', 'run_dir', 'metrics');
      expect(t.status).to.equal('done');
      expect(t.metrics.test.accuracy).to.be.a('number');
    }
    expect(doc.trials.map((t: { overrides: object }) => t.overrides)).to.deep.include({ N_EPOCHS: 1, BACKEND: 'onnxruntime', HIDDEN_DIM: 8, N_LAYERS: 2 });
    expect((await readdir(path.join(dir, 'cache', 'encode'))).filter((n) => /^[0-9a-f]{64}$/.test(n))).to.have.length(1);
    expect((await readdir(path.join(dir, 'cache', 'train'))).filter((n) => /^[0-9a-f]{64}$/.test(n))).to.have.length(4);
    const csv = (await readFile(path.join(doc.sweep_dir, 'results.csv'), 'utf8')).trim().split('\n');
    expect(csv).to.have.length(5);
    const validLoss = csv.slice(1).map((l) => Number(l.split(',')[6]));
    expect(validLoss).to.deep.equal([...validLoss].sort((a, b) => a - b));
    expect(await readFile(path.join(doc.sweep_dir, 'comparison.html'), 'utf8')).to.contain('<svg');

    // Rerun from the cache: every trial computes nothing, so it gives back its first run folder.
    const again = await sentiment(['sweep', file, '--json'], env);
    expect(again.code, again.stderr).to.equal(0);
    const trials = JSON.parse(again.stdout).trials;
    expect(trials.map((t: { run_dir: string }) => t.run_dir).sort()).to.deep.equal(doc.trials.map((t: { run_dir: string }) => t.run_dir).sort());
    for (const t of trials) expect(t.metrics.test.accuracy).to.be.a('number');
  });

  it('records a failing trial with its error and finishes the others (exit 1)', async () => {
    const dir = await tempDir();
    const env = locationEnv(dir);
    const file = await writeText(
      path.join(dir, 'bad.yaml'),
      `base: ${JSON.stringify(path.join(REPO, 'experiments/quickstart.yaml'))}\nset: { N_EPOCHS: 1, BACKEND: onnxruntime, HIDDEN_DIM: 4 }\ntrials: [ { TARGET: positive }, { TARGET: nonsense } ]\n`,
    );
    const r = await sentiment(['sweep', file, '--json'], env);
    expect(r.code).to.equal(1);
    const [ok, bad] = JSON.parse(r.stdout).trials;
    expect(ok.status).to.equal('done');
    expect(bad.status).to.equal('failed');
    expect(bad.error).to.contain('TARGET: "nonsense" is not a class of this dataset');
  });

  it('runs a random search with --set applied to every trial; a --set of a sampled key exits 1 before anything runs', async () => {
    const dir = await tempDir();
    const env = locationEnv(dir);
    const file = await writeText(
      path.join(dir, 'random.yaml'),
      `base: ${JSON.stringify(path.join(REPO, 'experiments/quickstart.yaml'))}\nset: { N_EPOCHS: 3, BACKEND: onnxruntime }\nsearch:\n  method: random\n  trials: 2\n  seed: 5\n  space:\n    HIDDEN_DIM: { int: [4, 8] }\n    DROPOUT: { uniform: [0.0, 0.5] }\n`,
    );
    const conflict = await sentiment(['sweep', file, '--set', 'HIDDEN_DIM=4'], env);
    expect(conflict.code).to.equal(1);
    expect(conflict.stderr).to.contain(`--set HIDDEN_DIM: the sweep varies HIDDEN_DIM (search, ${file}:8:5); a --set would make its trials identical`);
    expect(conflict.stderr).to.not.match(NO_TRACE);
    const bad = await sentiment(['sweep', file, '--set', 'N_EPOCHS=0'], env);
    expect(bad.code).to.equal(1);
    expect(bad.stderr).to.contain('--set N_EPOCHS=0: N_EPOCHS: must be >= 1 (got 0)');
    await readdir(path.join(dir, 'cache')).then(
      () => expect.fail('nothing should have run'),
      (e) => expect(e.code).to.equal('ENOENT'),
    );

    const r = await sentiment(['sweep', file, '--set', 'N_EPOCHS=1', '--json'], env);
    expect(r.code, r.stderr).to.equal(0);
    const trials = JSON.parse(r.stdout).trials as { id: string; overrides: Record<string, number>; status: string }[];
    expect(trials.map((t) => t.id).sort()).to.deep.equal(['t1', 't2']);
    for (const t of trials) {
      expect(t.status).to.equal('done');
      expect(t.overrides.N_EPOCHS).to.equal(1);
      expect(t.overrides.HIDDEN_DIM).to.be.within(4, 8);
    }
  });

  it('exits 1 before running anything when a trial is invalid', async () => {
    const dir = await tempDir();
    const file = await writeText(path.join(dir, 's.yaml'), `base: ${JSON.stringify(path.join(REPO, 'experiments/quickstart.yaml'))}\ngrid: { N_EPOCHS: [1, 0] }\n`);
    const r = await sentiment(['sweep', file], locationEnv(dir));
    expect(r.code).to.equal(1);
    expect(r.stderr).to.contain(`${file}:2:23: N_EPOCHS: must be >= 1 (got 0)`);
    await readdir(path.join(dir, 'cache')).then(
      () => expect.fail('nothing should have run'),
      (e) => expect(e.code).to.equal('ENOENT'),
    );
  });
});
