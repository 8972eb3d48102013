import { expect } from 'chai';
import { cp } from 'node:fs/promises';
import path from 'node:path';
import { Writable } from 'node:stream';
import { loadExperiment } from '../../src/config/experiment.js';
import { runStages } from '../../src/runner/pipeline.js';
import { FEATURES_FILE } from '../../src/features/features.js';
import { STAGES } from '../../src/stages/index.js';
import { splitBatches, trainingBatches } from '../../src/training/batches.js';
import { makeReviews } from '../fixtures/reviews.js';
import { tinyBert } from '../fixtures/tiny-bert.js';
import { tempDir, writeText } from '../helpers.js';
import type { DataInfo } from '../../src/stages/data.js';

describe('training/batches', () => {
  let features: string;
  let counts: Record<string, number>;

  before(async () => {
    const dir = await tempDir();
    await cp(await tinyBert(), path.join(dir, 'model'), { recursive: true });
    await makeReviews(path.join(dir, 'reviews'), { train: 300, test: 60 });
    const file = await writeText(path.join(dir, 'exp.yaml'), 'MODEL: ./model\nDATASET: ./reviews\nMAX_LENGTH: 40\n');
    const quiet = new Writable({ write: (_c, _e, cb) => cb() });
    const result = await runStages(loadExperiment(file), STAGES, { cacheDir: path.join(dir, 'cache'), runsDir: path.join(dir, 'runs'), until: 'encode', interactive: false, stream: quiet });
    features = path.join(result.stages[2].path, FEATURES_FILE);
    counts = Object.fromEntries(Object.entries((result.stages[0].info as DataInfo).splits).map(([k, v]) => [k, v.rows]));
  });

  async function epoch(seed: number, n: number, batchSize = 16) {
    const out = [];
    for await (const b of trainingBatches(features, 'train', batchSize, seed, n)) out.push(b);
    return out;
  }

  it('visits every train row exactly once per epoch, in padded batches of BATCH_SIZE', async () => {
    const batches = await epoch(1, 1);
    const ids = batches.flatMap((b) => b.ids);
    expect(ids).to.have.length(counts.train);
    expect(new Set(ids).size).to.equal(counts.train);
    expect(ids.every((id) => id.startsWith('train:'))).to.equal(true);
    expect(batches.filter((b) => b.batch !== 16).length).to.be.at.most(1);
    for (const b of batches) {
      expect(b.x.length).to.equal(b.batch * b.steps * 32);
      expect(Math.max(...b.lengths)).to.equal(b.steps);
      // zero padding past each row's length
      for (let r = 0; r < b.batch; r++) expect(b.x.subarray((r * b.steps + b.lengths[r]) * 32, (r + 1) * b.steps * 32).every((v) => v === 0)).to.equal(true);
    }
  });

  it('is the same for a seed and epoch, different across epochs and seeds', async () => {
    const order = async (seed: number, n: number) => (await epoch(seed, n)).flatMap((b) => b.ids);
    expect(await order(1, 1)).to.deep.equal(await order(1, 1));
    expect(await order(1, 1)).to.not.deep.equal(await order(1, 2));
    expect(await order(1, 1)).to.not.deep.equal(await order(2, 1));
  });

  it('buckets by length: far less padding than random batches would need', async () => {
    const batches = await epoch(1, 1);
    const real = batches.reduce((n, b) => n + b.lengths.reduce((a, l) => a + l, 0), 0);
    const padded = batches.reduce((n, b) => n + b.batch * b.steps, 0);
    expect(real / padded).to.be.above(0.9);
  });

  it('batches rows of equal length in random order, not in the file\'s runs', async () => {
    // The file keeps rows of equal length (here: cut at MAX_LENGTH) in input order, e.g. one label after
    // the other: batches must not be made of those runs. Count file-order neighbours of equal length that
    // are still neighbours, in the same order, in an epoch: about 1 in n when shuffled, nearly all when not.
    const file: { id: string; length: number }[] = [];
    for await (const b of splitBatches(features, 'train', 64)) b.ids.forEach((id, i) => file.push({ id, length: b.lengths[i] }));
    const trained = (await epoch(1, 1)).flatMap((b) => b.ids);
    const at = new Map(trained.map((id, i) => [id, i]));
    let pairs = 0;
    let kept = 0;
    for (let i = 1; i < file.length; i++) {
      if (file[i].length !== file[i - 1].length) continue;
      pairs++;
      if (at.get(file[i].id)! === at.get(file[i - 1].id)! + 1) kept++;
    }
    expect(pairs).to.be.above(20);
    expect(kept / pairs).to.be.below(0.3);
  });

  it('reads one split in order for evaluation', async () => {
    const ids = [];
    for await (const b of splitBatches(features, 'valid', 7)) {
      expect(b.batch).to.be.at.most(7);
      ids.push(...b.ids);
    }
    expect(ids).to.have.length(counts.valid);
  });
});
