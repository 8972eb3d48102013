import { expect } from 'chai';
import path from 'node:path';
import { Writable } from 'node:stream';
import { loadExperiment } from '../../src/config/experiment.js';
import { runStages } from '../../src/runner/pipeline.js';
import { guardReads, type Stage } from '../../src/stages/stage.js';
import { REPO, tempDir } from '../helpers.js';

/** A stage that declares SEED and then reaches for BATCH_SIZE, which its key does not cover. */
const sneaky: Stage<'data', { SEED: number }> = {
  name: 'data',
  version: 1,
  upstream: [],
  reads: (config) => ({ SEED: config.SEED }),
  async produce(ctx) {
    // @ts-expect-error BATCH_SIZE is not among this stage's reads: this line must not type-check (npm test type-checks the tests).
    const batch: number = ctx.reads.BATCH_SIZE;
    return { rows: batch, splits: {}, classes: ['a', 'b'], target: 'a', files: [] };
  },
};

describe('stages/stage contract: produce sees only its reads', () => {
  it('guardReads names the stage and the key it did not declare', () => {
    const reads = guardReads('train', { HIDDEN_DIM: 8 });
    expect(reads.HIDDEN_DIM).to.equal(8);
    expect(() => (reads as Record<string, unknown>).BATCH_SIZE).to.throw(/stage train read BATCH_SIZE, which its reads\(\) does not declare/);
    expect(Object.isFrozen(reads)).to.equal(true);
  });

  it('a stage reading a key it did not declare fails at run time too, and writes no entry', async () => {
    const dir = await tempDir();
    const experiment = loadExperiment(path.join(REPO, 'experiments/quickstart.yaml'));
    const quiet = new Writable({ write: (_c, _e, cb) => cb() });
    const run = runStages(experiment, [sneaky], { cacheDir: path.join(dir, 'cache'), runsDir: path.join(dir, 'runs'), interactive: false, stream: quiet });
    const error = await run.then(() => undefined, (e: unknown) => e);
    expect(String(error)).to.match(/stage data read BATCH_SIZE, which its reads\(\) does not declare/);
  });
});
