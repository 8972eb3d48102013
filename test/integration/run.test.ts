import { expect } from 'chai';
import { sentiment, tempDir, locationEnv } from '../helpers.js';

describe('sentiment run', () => {
  let env: Record<string, string>;
  before(async () => {
    const dir = await tempDir();
    env = locationEnv(dir);
  });

  it('lists the commands in --help', async () => {
    const r = await sentiment(['--help']);
    expect(r.code).to.equal(0);
    expect(r.stdout).to.match(/\brun\b/).and.match(/\bvalidate\b/);
  });

  it('--json prints exactly one JSON document on stdout, progress on stderr', async () => {
    const r = await sentiment(['run', 'experiments/quickstart.yaml', '--until', 'tokenize', '--json'], env);
    expect(r.code, r.stderr).to.equal(0);
    const doc = JSON.parse(r.stdout);
    expect(doc.experiment).to.equal('quickstart');
    expect(doc.run_dir.startsWith(env.SENTIMENT_RUNS_DIR)).to.equal(true);
    expect(doc.stages.map((s: { name: string }) => s.name)).to.deep.equal(['data', 'tokenize']);
    for (const s of doc.stages) expect(s).to.include.keys('name', 'cached', 'seconds', 'path');
    expect(doc.stages[0].path.startsWith(env.SENTIMENT_CACHE_DIR)).to.equal(true);
    expect(r.stderr).to.contain('tokenize');
  });

  it('runs several experiments in one command (one JSON array with --json)', async () => {
    const r = await sentiment(['run', 'experiments/quickstart.yaml', 'experiments/quickstart.yaml', '--until', 'data', '--set', 'SEED=3', '--json'], env);
    expect(r.code, r.stderr).to.equal(0);
    const docs = JSON.parse(r.stdout);
    expect(docs).to.be.an('array').with.length(2);
    expect(docs[1].stages[0].cached).to.equal(true);
  });

  it('--explain reports hits and what changed, running nothing', async () => {
    const r = await sentiment(['run', 'experiments/quickstart.yaml', '--until', 'tokenize', '--set', 'MAX_LENGTH=16', '--explain', '--json'], env);
    expect(r.code, r.stderr).to.equal(0);
    const doc = JSON.parse(r.stdout);
    expect(doc.stages.map((s: { cached: boolean }) => s.cached)).to.deep.equal([true, false]);
    expect(doc.stages[1].reason).to.match(/MAX_LENGTH 64 → 16/);
  });

  it('accepts a bare --force before the experiment file', async () => {
    const r = await sentiment(['run', '--force', 'experiments/quickstart.yaml', '--until', 'data', '--json'], env);
    expect(r.code, r.stderr).to.equal(0);
    expect(JSON.parse(r.stdout).stages[0].cached).to.equal(false);
  });

  it('exits 1 naming the key when the dataset is missing, and 2 for an unknown stage', async () => {
    const missing = await sentiment(['run', 'experiments/quickstart.yaml', '--set', 'DATASET=./no/such/folder'], env);
    expect(missing.code).to.equal(1);
    expect(missing.stderr).to.match(/DATASET/).and.match(/no\/such\/folder/);
    expect(missing.stderr).to.not.match(/\n\s+at /);
    expect((await sentiment(['run', 'experiments/quickstart.yaml', '--until', 'bake'], env)).code).to.equal(2);
  });

  it('says how to point MODEL at a folder when the hub cannot be reached', async () => {
    const r = await sentiment(['run', 'experiments/quickstart.yaml', '--until', 'tokenize', '--set', 'MODEL=someone/some-model'], { ...env, HF_ENDPOINT: 'http://127.0.0.1:9' });
    expect(r.code).to.equal(1);
    expect(r.stderr).to.match(/MODEL: could not download someone\/some-model/).and.match(/point MODEL at a local folder/);
  });
});
