import { expect } from 'chai';
import path from 'node:path';
import { ConfigError } from '../../src/config/experiment.js';
import { cartesian, loadSweep, trialSets } from '../../src/runner/sweep-file.js';
import { REPO, tempDir, writeText, thrownBy } from '../helpers.js';

describe('runner/sweep', () => {
  it('expands the grid as a cartesian product (last key fastest), then explicit trials, over `set`', async () => {
    expect(cartesian({ A: [1, 2], B: ['x', 'y'] }).map((c) => c.values)).to.deep.equal([{ A: 1, B: 'x' }, { A: 1, B: 'y' }, { A: 2, B: 'x' }, { A: 2, B: 'y' }]);
    const dir = await tempDir();
    const file = await writeText(
      path.join(dir, 's.yaml'),
      `base: ${JSON.stringify(path.join(REPO, 'experiments/quickstart.yaml'))}\nset: { N_EPOCHS: 2 }\ngrid: { HIDDEN_DIM: [8, 16], N_LAYERS: [1, 2] }\ntrials: [ { DROPOUT: 0.1 } ]\n`,
    );
    const sweep = loadSweep(file);
    expect(sweep.trials.map((t) => t.id)).to.deep.equal(['t1', 't2', 't3', 't4', 't5']);
    expect(sweep.trials[1].overrides).to.deep.equal({ N_EPOCHS: 2, HIDDEN_DIM: 8, N_LAYERS: 2 });
    expect(sweep.trials[4].overrides).to.deep.equal({ N_EPOCHS: 2, DROPOUT: 0.1 });
    expect(sweep.trials[4].experiment.config).to.include({ N_EPOCHS: 2, DROPOUT: 0.1, HIDDEN_DIM: 32 });
    expect(sweep.trials[1].label).to.equal('HIDDEN_DIM=8 N_LAYERS=2');
  });

  it('validates every trial before anything runs, naming the sweep file, line and key', async () => {
    const dir = await tempDir();
    const file = await writeText(
      path.join(dir, 's.yaml'),
      `base: ${JSON.stringify(path.join(REPO, 'experiments/quickstart.yaml'))}\nset: { DROPOUT: 1.5 }\ngrid:\n  HIDDEN_DIM: [8, 0]\ntrials:\n  - { N_LAYRS: 2 }\n`,
    );
    const e = thrownBy(() => loadSweep(file));
    const lines = (e as ConfigError).message.split('\n');
    expect(lines).to.include(`${file}:2:17: DROPOUT: must be < 1 (got 1.5)`);
    expect(lines).to.include(`${file}:4:19: HIDDEN_DIM: must be >= 1 (got 0)`);
    expect(lines).to.include(`${file}:6:16: N_LAYRS: unknown key; did you mean N_LAYERS?`);
    // a bad `set` value is reported once, not once per trial
    expect(lines.filter((l) => l.includes('DROPOUT'))).to.have.length(1);
  });

  it('rejects unknown sweep keys and a missing base', async () => {
    const dir = await tempDir();
    const file = await writeText(path.join(dir, 's.yaml'), 'grd: { HIDDEN_DIM: [8] }\n');
    expect(() => loadSweep(file)).to.throw(ConfigError).with.property('message').match(/s\.yaml:1:1: grd: unknown key; did you mean grid\?/).and.match(/missing required key "base"/);
  });

  it('passes relative MODEL and DATASET paths to trial processes as absolute paths', async () => {
    const dir = await tempDir();
    const file = await writeText(path.join(dir, 's.yaml'), `base: ${JSON.stringify(path.join(REPO, 'experiments/quickstart.yaml'))}\nset: { DATASET: ./data, MODEL: Xenova/bert-base-uncased }\n`);
    const [trial] = loadSweep(file).trials;
    expect(trialSets(trial, dir)).to.deep.equal([`DATASET=${JSON.stringify(path.join(dir, 'data'))}`, 'MODEL="Xenova/bert-base-uncased"']);
  });
});

describe('runner/sweep-file search', () => {
  const base = `base: ${JSON.stringify(path.join(REPO, 'experiments/quickstart.yaml'))}\n`;
  const searchFile = async (body: string) => writeText(path.join(await tempDir(), 's.yaml'), base + body);
  const space = (trials: number, seed?: number) =>
    `search:\n  method: random\n  trials: ${trials}\n${seed === undefined ? '' : `  seed: ${seed}\n`}  space:\n    HIDDEN_DIM: { int: [16, 20] }\n    DROPOUT: { uniform: [0.1, 0.5] }\n    LEARNING_RATE: { loguniform: [1.0e-4, 1.0e-2] }\n    N_LAYERS: { choice: [1, 3] }\n`;

  it('samples the same trials from the same file and seed, and others from another seed', async () => {
    const a = loadSweep(await searchFile(space(8, 7)));
    const b = loadSweep(await searchFile(space(8, 7)));
    const c = loadSweep(await searchFile(space(8, 8)));
    expect(a.trials.map((t) => t.id)).to.deep.equal(['t1', 't2', 't3', 't4', 't5', 't6', 't7', 't8']);
    expect(a.trials.map((t) => t.overrides)).to.deep.equal(b.trials.map((t) => t.overrides));
    expect(a.trials.map((t) => t.overrides)).to.not.deep.equal(c.trials.map((t) => t.overrides));
    expect(a.search).to.deep.equal({ method: 'random', trials: 8, seed: 7 });
    // keys in the order written, each trial validated as an experiment
    expect(Object.keys(a.trials[0].overrides)).to.deep.equal(['HIDDEN_DIM', 'DROPOUT', 'LEARNING_RATE', 'N_LAYERS']);
    expect(a.trials[0].experiment.config.DROPOUT).to.equal(a.trials[0].overrides.DROPOUT);
  });

  it('takes its seed from search.seed, else set.SEED, else the base experiment\'s SEED', async () => {
    const fromSet = loadSweep(await searchFile(`set: { SEED: 7 }\n${space(8)}`));
    const fromSeed = loadSweep(await searchFile(`set: { SEED: 99 }\n${space(8, 7)}`));
    expect(fromSet.search?.seed).to.equal(7);
    expect(fromSet.trials.map((t) => t.label)).to.deep.equal(fromSeed.trials.map((t) => t.label));
    // quickstart.yaml has no SEED: the schema's default
    expect(loadSweep(await searchFile(space(2))).search?.seed).to.equal(12345);
  });

  it('labels trials with the sampled values, floats to 3 significant digits, keeping the exact value in overrides', async () => {
    const [t] = loadSweep(await searchFile(space(1, 3))).trials;
    const o = t.overrides as { HIDDEN_DIM: number; DROPOUT: number; LEARNING_RATE: number; N_LAYERS: number };
    expect(t.label).to.equal(`HIDDEN_DIM=${o.HIDDEN_DIM} DROPOUT=${Number(o.DROPOUT.toPrecision(3))} LEARNING_RATE=${Number(o.LEARNING_RATE.toPrecision(3))} N_LAYERS=${o.N_LAYERS}`);
    expect(String(o.DROPOUT).length).to.be.greaterThan(6);
  });

  it('keeps each distribution in its range: int gives integers with both ends, uniform and loguniform floats', async () => {
    const sweep = loadSweep(await searchFile(space(2000, 11)));
    const all = sweep.trials.map((t) => t.overrides as { HIDDEN_DIM: number; DROPOUT: number; LEARNING_RATE: number; N_LAYERS: number });
    const hidden = all.map((o) => o.HIDDEN_DIM);
    expect(hidden.every(Number.isInteger)).to.equal(true);
    expect([...new Set(hidden)].sort((a, b) => a - b)).to.deep.equal([16, 17, 18, 19, 20]);
    expect([...new Set(all.map((o) => o.N_LAYERS))].sort()).to.deep.equal([1, 3]);
    const dropout = all.map((o) => o.DROPOUT);
    expect(dropout.every((d) => d >= 0.1 && d < 0.5)).to.equal(true);
    expect(dropout.some((d) => !Number.isInteger(d * 1000))).to.equal(true);
    const lr = all.map((o) => o.LEARNING_RATE);
    expect(lr.every((x) => x >= 1e-4 && x < 1e-2)).to.equal(true);
    // log-uniform: the median of log10 values near the middle of [-4, -2] (uniform would put it near -2.3)
    const logs = lr.map(Math.log10).sort((a, b) => a - b);
    const median = (logs[999] + logs[1000]) / 2;
    expect(median).to.be.within(-3.2, -2.8);
    // and the lower half of the log range holds about half the draws
    expect(logs.filter((x) => x < -3).length).to.be.within(900, 1100);
  });

  it('reports a space entry with two distributions, low >= high, loguniform low <= 0, and search with grid', async () => {
    const twoKinds = await searchFile('search:\n  method: random\n  trials: 2\n  space:\n    DROPOUT: { uniform: [0.1, 0.2], int: [1, 2] }\n    N_LAYERS: { chioce: [1, 2] }\n');
    const e1 = (thrownBy(() => loadSweep(twoKinds)) as ConfigError).message.split('\n');
    expect(e1).to.include(`${twoKinds}:6:5: search.space.DROPOUT: give exactly one of choice, uniform, loguniform, int (got uniform, int)`);
    expect(e1).to.include(`${twoKinds}:7:17: search.space.N_LAYERS.chioce: unknown key; did you mean choice?`);

    const ranges = await searchFile(
      'grid: { BATCH_SIZE: [8, 16] }\nsearch:\n  method: random\n  trials: 2\n  space:\n    HIDDEN_DIM: { int: [64, 16] }\n    DROPOUT: { uniform: [0.2, 0.2] }\n    LEARNING_RATE: { loguniform: [0, 0.01] }\n',
    );
    const e2 = (thrownBy(() => loadSweep(ranges)) as ConfigError).message.split('\n');
    expect(e2).to.include(`${ranges}:2:1: grid: cannot be combined with search (${ranges}:3:1): a sweep either samples its trials or lists them`);
    expect(e2).to.include(`${ranges}:7:24: search.space.HIDDEN_DIM.int: low must be below high (got [64, 16])`);
    expect(e2).to.include(`${ranges}:8:25: search.space.DROPOUT.uniform: low must be below high (got [0.2, 0.2])`);
    expect(e2).to.include(`${ranges}:9:34: search.space.LEARNING_RATE.loguniform: low must be > 0, a logarithm needs it (got [0, 0.01])`);
  });

  it('reports a space that goes outside a key\'s range once, where it is written, and an unknown key once', async () => {
    const file = await searchFile('search:\n  method: random\n  trials: 50\n  space:\n    HIDDEN_DIM: { int: [0, 9000] }\n    N_LAYRS: { choice: [1, 2] }\n    N_LAYERS: { uniform: [1, 3] }\n');
    const lines = (thrownBy(() => loadSweep(file)) as ConfigError).message.split('\n');
    expect(lines).to.include(`${file}:6:25: HIDDEN_DIM: must be >= 1 (got 0)`);
    expect(lines).to.include(`${file}:6:28: HIDDEN_DIM: must be <= 8192 (got 9000)`);
    expect(lines).to.include(`${file}:7:5: N_LAYRS: unknown key; did you mean N_LAYERS?`);
    expect(lines.filter((l) => l.includes('HIDDEN_DIM'))).to.have.length(2);
    expect(lines.filter((l) => l.includes('N_LAYRS'))).to.have.length(1);
    // floats for an integer key: found through the trials, reported once
    expect(lines.filter((l) => l.startsWith(`${file}:8:5: N_LAYERS: must be integer (got `))).to.have.length(1);
    expect(lines).to.have.length(4);
  });
});

describe('runner/sweep-file --set', () => {
  const quickstart = JSON.stringify(path.join(REPO, 'experiments/quickstart.yaml'));

  it('applies --set to every trial, last, and names a bad value by its flag', async () => {
    const dir = await tempDir();
    const file = await writeText(path.join(dir, 's.yaml'), `base: ${quickstart}\nset: { N_EPOCHS: 2, BATCH_SIZE: 8 }\ngrid: { HIDDEN_DIM: [8, 16] }\n`);
    const sweep = loadSweep(file, dir, ['N_EPOCHS=5', 'DATASET=./data']);
    expect(sweep.trials).to.have.length(2);
    for (const t of sweep.trials) {
      expect(t.overrides).to.include({ N_EPOCHS: 5, BATCH_SIZE: 8, DATASET: path.join(dir, 'data') });
      expect(t.experiment.config.N_EPOCHS).to.equal(5);
      expect(t.label).to.match(/^HIDDEN_DIM=\d+$/);
    }
    expect(trialSets(sweep.trials[0], dir)).to.include('N_EPOCHS=5');
    const lines = (thrownBy(() => loadSweep(file, dir, ['DROPOUT=1'])) as ConfigError).message.split('\n');
    expect(lines).to.deep.equal(['--set DROPOUT=1: DROPOUT: must be < 1 (got 1)']);
  });

  it('rejects a --set of a key the sweep varies, naming where it varies it', async () => {
    const dir = await tempDir();
    const grid = await writeText(path.join(dir, 'g.yaml'), `base: ${quickstart}\ngrid:\n  HIDDEN_DIM: [8, 16]\ntrials:\n  - { N_LAYERS: 1 }\n`);
    const e = (thrownBy(() => loadSweep(grid, dir, ['HIDDEN_DIM=64', 'N_LAYERS=2', 'N_EPOCHS=1'])) as ConfigError).message.split('\n');
    expect(e).to.deep.equal([
      `--set HIDDEN_DIM: the sweep varies HIDDEN_DIM (grid, ${grid}:3:3); a --set would make its trials identical`,
      `--set N_LAYERS: the sweep varies N_LAYERS (trials, ${grid}:5:7); a --set would make its trials identical`,
    ]);
    const search = await writeText(path.join(dir, 's.yaml'), `base: ${quickstart}\nsearch:\n  method: random\n  trials: 2\n  space:\n    DROPOUT: { uniform: [0.1, 0.2] }\n`);
    expect(() => loadSweep(search, dir, ['DROPOUT=0.3'])).to.throw(ConfigError, `--set DROPOUT: the sweep varies DROPOUT (search, ${search}:6:5)`);
    // a key the sweep only sets in common is overridden like run --set over the file
    expect(loadSweep(search, dir, ['SEED=3']).trials.every((t) => t.experiment.config.SEED === 3)).to.equal(true);
  });
});

describe('runner/executor lastErrorLines', () => {
  it('takes the last "Error:" line and its detail lines, without colour codes', async () => {
    const { lastErrorLines } = await import('../../src/runner/executor.js');
    const stderr = '❯ data\n\u001b[31m✖ data\u001b[39m\nError: DATASET ./x.jsonl: no such file\n  check the path\n';
    expect(lastErrorLines(stderr)).to.equal('Error: DATASET ./x.jsonl: no such file · check the path');
    expect(lastErrorLines('one\ntwo\nthree\nfour\n')).to.equal('two · three · four');
    expect(lastErrorLines('\n\n')).to.equal(undefined);
  });
});
