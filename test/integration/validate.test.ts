import { expect } from 'chai';
import path from 'node:path';
import { sentiment, tempDir, writeText } from '../helpers.js';

describe('sentiment validate', () => {
  it('accepts the shipped experiments (exit 0)', async () => {
    const r = await sentiment(['validate', 'experiments/imdb-bigru.yaml', 'experiments/quickstart.yaml']);
    expect(r.code, r.stderr).to.equal(0);
    expect(r.stdout).to.contain('experiments/imdb-bigru.yaml: ok');
  });

  it('exits 1 listing every problem as file:line:col: KEY: message, with no stack trace', async () => {
    const file = await writeText(path.join(await tempDir(), 'bad.yaml'), 'N_EPOCHS: 0\nHIDDEN_DIMS: 3\nOUTPUT_DIM: 3\n');
    const r = await sentiment(['validate', file]);
    expect(r.code).to.equal(1);
    expect(r.stderr).to.contain(`${file}:1:11: N_EPOCHS: must be >= 1`);
    expect(r.stderr).to.contain(`${file}:2:1: HIDDEN_DIMS: unknown key; did you mean HIDDEN_DIM?`);
    expect(r.stderr).to.contain(`${file}:3:13: OUTPUT_DIM: must be 1: the head is a binary classifier`);
    expect(r.stderr).to.contain('3 problems found');
    expect(r.stderr).to.not.match(/\n\s+at /);
  });

  it('exits 1 for syntax errors, duplicate keys and empty files', async () => {
    const dir = await tempDir();
    for (const [name, text, pattern] of [
      ['syntax.yaml', 'SEED: [1\n', /syntax\.yaml:\d+:\d+: /],
      ['dup.yaml', 'SEED: 1\nSEED: 2\n', /dup\.yaml:2:1: SEED: duplicate key/],
      ['empty.yaml', '', /empty\.yaml:1:1: the file is empty/],
    ] as const) {
      const r = await sentiment(['validate', await writeText(path.join(dir, name), text)]);
      expect(r.code, name).to.equal(1);
      expect(r.stderr).to.match(pattern);
    }
  });

  it('validates --set overrides the same way', async () => {
    const r = await sentiment(['validate', 'experiments/quickstart.yaml', '--set', 'DROPOUT=1']);
    expect(r.code).to.equal(1);
    expect(r.stderr).to.contain('--set DROPOUT=1: DROPOUT: must be < 1 (got 1)');
  });

  it('exits 2 for wrong usage', async () => {
    expect((await sentiment(['validate'])).code).to.equal(2);
    expect((await sentiment(['validate', 'experiments/quickstart.yaml', '--set', 'NOEQUALS'])).code).to.equal(2);
    expect((await sentiment(['validate', 'experiments/quickstart.yaml', '--nope'])).code).to.equal(2);
  });
});
