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

describe('runner/executor lastErrorLines', () => {
  it('takes the last "Error:" line and its detail lines, without colour codes', async () => {
    const { lastErrorLines } = await import('../../src/runner/executor.js');
    const stderr = '❯ data\n\u001b[31m✖ data\u001b[39m\nError: DATASET ./x.jsonl: no such file\n  check the path\n';
    expect(lastErrorLines(stderr)).to.equal('Error: DATASET ./x.jsonl: no such file · check the path');
    expect(lastErrorLines('one\ntwo\nthree\nfour\n')).to.equal('two · three · four');
    expect(lastErrorLines('\n\n')).to.equal(undefined);
  });
});
