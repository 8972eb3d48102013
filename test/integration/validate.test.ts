import { expect } from 'chai';
import path from 'node:path';
import { mkdir, copyFile } from 'node:fs/promises';
import { REPO, sentiment, tempDir, writeText } from '../helpers.js';

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

  describe('checks what run would reject first', () => {
    const tinyBert = path.join(REPO, 'examples/tiny-bert');
    const reviews = path.join(REPO, 'examples/reviews');

    it('accepts the quickstart experiment and its sweep, printing the trials checked', async () => {
      const r = await sentiment(['validate', 'experiments/quickstart.yaml', 'experiments/sweeps/quickstart-grid.yaml']);
      expect(r.code, r.stderr).to.equal(0);
      expect(r.stdout).to.contain('experiments/quickstart.yaml: ok');
      expect(r.stdout).to.match(/experiments\/sweeps\/quickstart-grid\.yaml: ok \(\d+ trials\)/);
    });

    it('a DATASET path that does not exist', async () => {
      const file = await writeText(path.join(await tempDir(), 'nodata.yaml'), `MODEL: ${tinyBert}\nDATASET: ./no-such-data\nMAX_LENGTH: 64\n`);
      const r = await sentiment(['validate', file]);
      expect(r.code).to.equal(1);
      expect(r.stderr).to.contain(`${file}:2:10: DATASET: `);
      expect(r.stderr).to.contain('no-such-data does not exist');
      expect(r.stderr).to.not.match(/\n\s+at /);
    });

    it('a DATASET given by --set names the flag', async () => {
      const r = await sentiment(['validate', 'experiments/quickstart.yaml', '--set', 'DATASET=./no-such-data']);
      expect(r.code).to.equal(1);
      expect(r.stderr).to.contain('--set DATASET=./no-such-data: DATASET: ');
    });

    it('a MODEL folder without onnx/model.onnx', async () => {
      const dir = await tempDir();
      const model = path.join(dir, 'model');
      await mkdir(model);
      for (const f of ['config.json', 'tokenizer.json', 'tokenizer_config.json']) await copyFile(path.join(tinyBert, f), path.join(model, f));
      const file = await writeText(path.join(dir, 'noonnx.yaml'), `DATASET: ${reviews}\nMODEL: ./model\n`);
      const r = await sentiment(['validate', file]);
      expect(r.code).to.equal(1);
      expect(r.stderr).to.contain(`${file}:2:8: MODEL: ${model} has no onnx/model.onnx`);
      expect(r.stderr).to.contain('1 problem found');
      expect(r.stderr).to.not.match(/\n\s+at /);
    });

    it('a hub MODEL id is accepted without a network check', async () => {
      const r = await sentiment(['validate', 'experiments/quickstart.yaml', '--set', 'MODEL=Xenova/bert-base-uncased'], { HF_ENDPOINT: 'http://127.0.0.1:9' });
      expect(r.code, r.stderr).to.equal(0);
    });

    it('MAX_LENGTH beyond the tiny model: the schema limit (9999) and the model limit (512 > 128 positions)', async () => {
      const dir = await tempDir();
      const huge = await writeText(path.join(dir, 'huge.yaml'), `MODEL: ${tinyBert}\nDATASET: ${reviews}\nMAX_LENGTH: 9999\n`);
      let r = await sentiment(['validate', huge]);
      expect(r.code).to.equal(1);
      expect(r.stderr).to.contain(`${huge}:3:13: MAX_LENGTH: must be <= 8192`);
      expect(r.stderr).to.not.match(/\n\s+at /);
      const long = await writeText(path.join(dir, 'long.yaml'), `MODEL: ${tinyBert}\nDATASET: ${reviews}\nMAX_LENGTH: 512\n`);
      r = await sentiment(['validate', long]);
      expect(r.code).to.equal(1);
      expect(r.stderr).to.contain(`${long}:3:13: MAX_LENGTH: 512 is longer than this model accepts (128 tokens`);
      expect(r.stderr).to.not.match(/\n\s+at /);
    });

    it('a sweep with a bad trial and a good one: the bad one is reported at its line in the sweep file', async () => {
      const dir = await tempDir();
      const sweep = await writeText(
        path.join(dir, 'sweep.yaml'),
        `base: ${path.join(REPO, 'experiments/quickstart.yaml')}\ntrials:\n  - HIDDEN_DIM: 16\n  - DATASET: ./missing-data\n  - MAX_LENGTH: 1000\n  - MAX_LENGTH: 1000\n    HIDDEN_DIM: 8\n`,
      );
      const r = await sentiment(['validate', sweep]);
      expect(r.code).to.equal(1);
      expect(r.stderr).to.contain(`${sweep}:4:14: DATASET: `);
      expect(r.stderr).to.contain('missing-data does not exist');
      expect(r.stderr).to.contain(`${sweep}:5:17: MAX_LENGTH: 1000 is longer than this model accepts`);
      expect(r.stderr).to.contain(`${sweep}:6:17: MAX_LENGTH: 1000 is longer than this model accepts`);
      expect(r.stderr).to.contain('3 problems found');
      expect(r.stderr).to.not.match(/\n\s+at /);
    });

    it('a problem in the sweep\'s base experiment is reported once, not once per trial', async () => {
      const dir = await tempDir();
      const base = await writeText(path.join(dir, 'base.yaml'), `MODEL: ${tinyBert}\nDATASET: ./gone\n`);
      const sweep = await writeText(path.join(dir, 'sweep.yaml'), `base: base.yaml\ngrid:\n  HIDDEN_DIM: [8, 16, 32]\n`);
      const r = await sentiment(['validate', sweep]);
      expect(r.code).to.equal(1);
      expect(r.stderr).to.contain(`${base}:2:10: DATASET: `);
      // MAX_LENGTH is left to its default (512), longer than the tiny model's 128 positions: MODEL's line.
      expect(r.stderr).to.contain(`${base}:1:8: MAX_LENGTH: the default (512) is longer than this model accepts (128 tokens`);
      expect(r.stderr).to.contain('2 problems found');
    });
  });

  it('checks a sweep\'s random search and applies --set to its trials', async () => {
    const dir = await tempDir();
    const sweep = await writeText(
      path.join(dir, 'random.yaml'),
      `base: ${path.join(REPO, 'experiments/quickstart.yaml')}\nsearch:\n  method: random\n  trials: 4\n  space:\n    HIDDEN_DIM: { int: [32, 16] }\n    DROPOUT: { uniform: [0.1, 0.2], choice: [0.3] }\n`,
    );
    const r = await sentiment(['validate', sweep]);
    expect(r.code).to.equal(1);
    expect(r.stderr).to.contain(`${sweep}:7:5: search.space.DROPOUT: give exactly one of choice, uniform, loguniform, int (got uniform, choice)`);
    expect(r.stderr).to.not.match(/\n\s+at /);
    const fixed = await writeText(path.join(dir, 'fixed.yaml'), `base: ${path.join(REPO, 'experiments/quickstart.yaml')}\nsearch:\n  method: random\n  trials: 4\n  space:\n    HIDDEN_DIM: { int: [32, 16] }\n`);
    const ranges = await sentiment(['validate', fixed]);
    expect(ranges.code).to.equal(1);
    expect(ranges.stderr).to.contain(`${fixed}:6:24: search.space.HIDDEN_DIM.int: low must be below high (got [32, 16])`);
    await writeText(fixed, `base: ${path.join(REPO, 'experiments/quickstart.yaml')}\nsearch:\n  method: random\n  trials: 4\n  space:\n    HIDDEN_DIM: { int: [16, 32] }\n`);
    const ok = await sentiment(['validate', fixed, 'experiments/sweeps/random.yaml']);
    expect(ok.code, ok.stderr).to.equal(0);
    expect(ok.stdout).to.contain(`${fixed}: ok (4 trials)`);
    expect(ok.stdout).to.contain('experiments/sweeps/random.yaml: ok (8 trials)');
    const set = await sentiment(['validate', fixed, '--set', 'DROPOUT=1', '--set', 'HIDDEN_DIM=8']);
    expect(set.code).to.equal(1);
    expect(set.stderr).to.contain('--set DROPOUT=1: DROPOUT: must be < 1 (got 1)');
    expect(set.stderr).to.contain(`--set HIDDEN_DIM: the sweep varies HIDDEN_DIM (search, ${fixed}:6:5)`);
  });

  it('exits 2 for wrong usage', async () => {
    expect((await sentiment(['validate'])).code).to.equal(2);
    expect((await sentiment(['validate', 'experiments/quickstart.yaml', '--set', 'NOEQUALS'])).code).to.equal(2);
    expect((await sentiment(['validate', 'experiments/quickstart.yaml', '--nope'])).code).to.equal(2);
  });
});
