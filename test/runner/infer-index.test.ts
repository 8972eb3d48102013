import { expect } from 'chai';
import { cp, readdir, readFile, rename, rm } from 'node:fs/promises';
import { existsSync } from 'node:fs';
import path from 'node:path';
import { Writable } from 'node:stream';
import { runExperiments } from '../../src/runner/run.js';
import { makeReviews } from '../fixtures/reviews.js';
import { tinyBert } from '../fixtures/tiny-bert.js';
import { sentiment, tempDir, writeText, NO_TRACE } from '../helpers.js';
import { STAGES } from '../../src/stages/index.js';

const TEXT = 'the movie was terrible. a waste of time.';
describe('infer --config needs only the cache (the index a run records)', function () {
  this.timeout(600_000);
  let dir: string;
  let file: string;
  let env: Record<string, string>;
  let cacheDir: string;

  before(async () => {
    dir = await tempDir();
    await cp(await tinyBert(), path.join(dir, 'model'), { recursive: true });
    await makeReviews(path.join(dir, 'reviews'), { train: 200, test: 40 });
    file = await writeText(path.join(dir, 'exp.yaml'), 'MODEL: ./model\nDATASET: ./reviews\nMAX_LENGTH: 32\nN_EPOCHS: 2\nBATCH_SIZE: 32\nHIDDEN_DIM: 8\nBACKEND: onnxruntime\n');
    cacheDir = path.join(dir, 'cache');
    env = { SENTIMENT_CACHE_DIR: cacheDir, SENTIMENT_RUNS_DIR: path.join(dir, 'runs') };
    await runExperiments({ stages: STAGES, experiments: [file], sets: [], cacheDir, runsDir: env.SENTIMENT_RUNS_DIR, interactive: false, stream: new Writable({ write: (_c, _e, cb) => cb() }) });
  });

  it('records the keys of data, tokenize, encode and train when the run trains', async () => {
    const files = await readdir(path.join(cacheDir, 'index'));
    expect(files).to.have.length(1);
    expect(files[0]).to.match(/^[0-9a-f]{64}\.json$/);
    const record = JSON.parse(await readFile(path.join(cacheDir, 'index', files[0]), 'utf8'));
    expect(Object.keys(record.keys)).to.deep.equal(['data', 'tokenize', 'encode', 'train']);
    for (const [stage, key] of Object.entries(record.keys)) expect(existsSync(path.join(cacheDir, stage, key as string, 'manifest.json')), stage).to.equal(true);
    expect(record.createdAt).to.be.a('string');
  });

  it('predicts and exports with the same head after the dataset folder is moved away', async () => {
    const before = await sentiment(['infer', '--config', file, '--text', TEXT, '--json'], env);
    expect(before.code, before.stderr).to.equal(0);
    await rename(path.join(dir, 'reviews'), path.join(dir, 'reviews-moved'));
    try {
      // Planning the keys now fails: the dataset cannot be fingerprinted.
      const explain = await sentiment(['run', file, '--explain'], env);
      expect(explain.code).to.equal(1);
      expect(explain.stderr).to.contain('DATASET');

      const after = await sentiment(['infer', '--config', file, '--text', TEXT, '--json'], env);
      expect(after.code, after.stderr).to.equal(0);
      expect(JSON.parse(after.stdout)).to.deep.equal(JSON.parse(before.stdout));

      const out = path.join(dir, 'exported');
      const exported = await sentiment(['export', '--config', file, '--out', out], env);
      expect(exported.code, exported.stderr).to.equal(0);
      const viaModel = await sentiment(['infer', '--model', out, '--text', TEXT, '--json'], env);
      expect(viaModel.code, viaModel.stderr).to.equal(0);
      expect(JSON.parse(viaModel.stdout).probability).to.equal(JSON.parse(before.stdout).probability);
    } finally {
      await rename(path.join(dir, 'reviews-moved'), path.join(dir, 'reviews'));
    }
  });

  it('without the dataset, a config never trained (or whose index record is gone) exits 1 saying how to train it and about export', async () => {
    await rename(path.join(dir, 'reviews'), path.join(dir, 'reviews-moved'));
    const index = path.join(cacheDir, 'index');
    const aside = path.join(dir, 'index-aside');
    try {
      const never = await sentiment(['infer', '--config', file, '--set', 'HIDDEN_DIM=3', '--text', 'x'], env);
      expect(never.code).to.equal(1);
      expect(never.stderr).to.contain(`Train it first with: sentiment run ${file} --set HIDDEN_DIM=3`);
      expect(never.stderr).to.contain('DATASET');
      expect(never.stderr).to.contain(`sentiment export --config ${file} --set HIDDEN_DIM=3 --out DIR`);
      expect(never.stderr).to.not.match(NO_TRACE);

      await rename(index, aside);
      const noIndex = await sentiment(['infer', '--config', file, '--text', 'x'], env);
      expect(noIndex.code).to.equal(1);
      expect(noIndex.stderr).to.contain(`Train it first with: sentiment run ${file}`);
      expect(noIndex.stderr).to.not.match(NO_TRACE);
    } finally {
      if (existsSync(aside)) {
        await rm(index, { recursive: true, force: true });
        await rename(aside, index);
      }
      await rename(path.join(dir, 'reviews-moved'), path.join(dir, 'reviews'));
    }
  });

  it('with the dataset present, a never-trained config still exits 1 with the train command and the export hint', async () => {
    const r = await sentiment(['infer', '--config', file, '--set', 'HIDDEN_DIM=3', '--text', 'x'], env);
    expect(r.code).to.equal(1);
    expect(r.stderr).to.contain(`Train it first with: sentiment run ${file} --set HIDDEN_DIM=3`);
    expect(r.stderr).to.contain('sentiment export');
    expect(r.stderr).to.not.contain('DATASET');
    expect(r.stderr).to.not.match(NO_TRACE);
  });
});
