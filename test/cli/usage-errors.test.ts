import { expect } from 'chai';
import path from 'node:path';
import { sentiment, tempDir, writeText, locationEnv, NO_TRACE } from '../helpers.js';

describe('usage errors exit 2', function () {
  this.timeout(120_000);
  let dir: string;
  let env: Record<string, string>;
  before(async () => {
    dir = await tempDir();
    env = locationEnv(dir);
  });

  it('run --force with a mistyped stage names the stages instead of reading it as a file', async () => {
    for (const args of [
      ['run', '--force', 'tokenise', 'experiments/quickstart.yaml'],
      ['run', 'experiments/quickstart.yaml', '--force', 'tokenise'],
    ]) {
      const r = await sentiment(args, env);
      expect(r.code, r.stderr).to.equal(2);
      expect(r.stderr).to.contain('--force expects a stage name (data, tokenize, encode, train, evaluate, infer), got "tokenise"');
      expect(r.stderr).to.not.match(NO_TRACE);
    }
  });

  it('a bare --force before an experiment file still means everything', async () => {
    const r = await sentiment(['run', '--force', 'experiments/quickstart.yaml', '--until', 'data', '--explain', '--json'], env);
    expect(r.code, r.stderr).to.equal(0);
    expect(JSON.parse(r.stdout).stages[0].cached).to.equal(false);
  });

  it('infer --out with an extension it cannot write', async () => {
    const txt = await writeText(path.join(dir, 'in.txt'), 'fine\n');
    const out = path.join(dir, 'x.parquet');
    const r = await sentiment(['infer', '--config', 'experiments/quickstart.yaml', '--file', txt, '--out', out], env);
    expect(r.code, r.stderr).to.equal(2);
    expect(r.stderr).to.contain(`Error: --out ${out}: use a .csv, .jsonl or .arrow file`);
    expect(r.stderr).to.not.match(NO_TRACE);
  });
});

describe('infer --text', function () {
  this.timeout(120_000);
  it('refuses an empty or blank text before loading anything (exit 1)', async () => {
    for (const text of ['', '   \t ']) {
      const r = await sentiment(['infer', '--config', 'experiments/quickstart.yaml', '--text', text, '--json']);
      expect(r.code, r.stderr).to.equal(1);
      expect(r.stderr).to.contain('Error: --text: empty text');
      expect(r.stderr).to.not.match(NO_TRACE);
      expect(JSON.parse(r.stdout)).to.deep.equal({ error: '--text: empty text', exit: 1 });
    }
  });
});
