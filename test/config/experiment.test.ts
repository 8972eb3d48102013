import { expect } from 'chai';
import path from 'node:path';
import { ConfigError, UsageError, loadExperiment, loadExperiments, parseSet, suggestKey, type Problem } from '../../src/config/experiment.js';
import { REPO, tempDir, writeText, thrownBy } from '../helpers.js';

async function problemsOf(yaml: string, sets: string[] = []): Promise<{ file: string; problems: Problem[]; lines: string[] }> {
  const file = await writeText(path.join(await tempDir(), 'exp.yaml'), yaml);
  try {
    loadExperiment(file, sets);
  } catch (e) {
    if (!(e instanceof ConfigError)) throw e;
    return { file, problems: e.problems, lines: e.message.split('\n') };
  }
  throw new Error('expected a ConfigError');
}

describe('config/experiment', () => {
  it('fills the original defaults for every key', async () => {
    const file = await writeText(path.join(await tempDir(), 'min.yaml'), 'N_EPOCHS: 2\n');
    const { config, name } = loadExperiment(file);
    expect(name).to.equal('min');
    expect(config).to.include({
      TRAIN: true, TEXT: 'I like you!', BATCH_SIZE: 128, N_EPOCHS: 2, SEED: 12345, BIDIRECTIONAL: true,
      HIDDEN_DIM: 256, OUTPUT_DIM: 1, N_LAYERS: 2, DROPOUT: 0.25, MAX_LENGTH: 512, LEARNING_RATE: 0.001,
      VALID_RATIO: 0.3, TARGET: 'negative', ENCODER_DTYPE: 'float16', BACKEND: 'auto', DEVICE: 'auto',
    });
  });

  it('accepts the shipped experiments', () => {
    const loaded = loadExperiments([path.join(REPO, 'experiments/imdb-bigru.yaml'), path.join(REPO, 'experiments/quickstart.yaml')]);
    expect(loaded.map((e) => e.name)).to.deep.equal(['imdb-bigru', 'quickstart']);
    expect(loaded[0].config.MODEL).to.equal('Xenova/bert-base-uncased');
    expect(loaded[0].config.DATASET).to.equal('imdb');
  });

  it('reports every problem at once as file:line:col: KEY: message, in file order', async () => {
    const { file, lines } = await problemsOf('HIDDEN_DIMS: 3\nDROPOUT: 1.5\nOUTPUT_DIM: 2\nN_EPOCHS: 0\nBATCH_SIZE: many\n');
    expect(lines).to.have.length(5);
    expect(lines[0]).to.equal(`${file}:1:1: HIDDEN_DIMS: unknown key; did you mean HIDDEN_DIM?`);
    expect(lines[1]).to.equal(`${file}:2:10: DROPOUT: must be < 1 (got 1.5)`);
    expect(lines[2]).to.match(new RegExp(`^${file}:3:13: OUTPUT_DIM: must be 1: the head is a binary classifier`));
    expect(lines[3]).to.equal(`${file}:4:11: N_EPOCHS: must be >= 1 (got 0)`);
    expect(lines[4]).to.equal(`${file}:5:13: BATCH_SIZE: must be integer (got "many")`);
  });

  it('suggests keys for wrong case and typos, and nothing for unrelated words', () => {
    expect(suggestKey('hidden_dim', ['HIDDEN_DIM', 'DROPOUT'])).to.equal('HIDDEN_DIM');
    expect(suggestKey('DROPUOT', ['HIDDEN_DIM', 'DROPOUT'])).to.equal('DROPOUT');
    expect(suggestKey('COLOUR', ['HIDDEN_DIM', 'DROPOUT'])).to.equal(undefined);
  });

  it('reports YAML syntax errors with their position', async () => {
    const { file, lines } = await problemsOf('N_EPOCHS: [1, 2\nSEED: 3\n');
    expect(lines[0]).to.match(new RegExp(`^${file}:\\d+:\\d+: `));
  });

  it('reports duplicate keys with the key and the second position', async () => {
    const { file, lines } = await problemsOf('N_EPOCHS: 1\nSEED: 2\nN_EPOCHS: 3\n');
    expect(lines).to.deep.equal([`${file}:3:1: N_EPOCHS: duplicate key: each setting may appear only once`]);
  });

  it('rejects empty files, comment-only files, lists and scalars', async () => {
    for (const [yaml, pattern] of [
      ['', /the file is empty/],
      ['# nothing\n', /the file is empty/],
      ['- a\n- b\n', /expected a mapping .* found a list/],
      ['hello\n', /expected a mapping .* found a single value/],
    ] as const) {
      const { lines } = await problemsOf(yaml);
      expect(lines).to.have.length(1);
      expect(lines[0]).to.match(/exp\.yaml:1:1: /).and.match(pattern);
    }
  });

  it('validates DATASET mappings, naming nested keys', async () => {
    const { file, lines } = await problemsOf('DATASET:\n  path: x\n  text_colum: t\n  classes: [a]\n');
    expect(lines).to.deep.equal([
      `${file}:3:3: DATASET.text_colum: unknown key; did you mean text_column?`,
      `${file}:4:12: DATASET.classes: must NOT have fewer than 2 items`,
    ]);
    const wrong = await problemsOf('DATASET: 5\n');
    expect(wrong.lines).to.have.length(1);
    expect(wrong.lines[0]).to.match(/DATASET: must be a dataset name or path/);
  });

  it('applies --set overrides as YAML values and validates them the same way', async () => {
    const file = await writeText(path.join(await tempDir(), 'e.yaml'), 'N_EPOCHS: 2\n');
    const e = loadExperiment(file, ['N_EPOCHS=4', 'BIDIRECTIONAL=false', 'TEXT=hello: world', 'MAX_TRAIN_EXAMPLES=null', 'DATASET=data/x']);
    expect(e.config).to.include({ N_EPOCHS: 4, BIDIRECTIONAL: false, TEXT: 'hello: world', MAX_TRAIN_EXAMPLES: null });
    expect(e.baseDirs.DATASET).to.equal(process.cwd());
    expect(e.baseDirs.MODEL).to.equal(path.dirname(file));
    const { lines } = await problemsOf('N_EPOCHS: 2\n', ['DROPOUT=2', 'HIDEN_DIM=3']);
    expect(lines).to.include('--set DROPOUT=2: DROPOUT: must be < 1 (got 2)');
    expect(lines).to.include('--set HIDEN_DIM=3: HIDEN_DIM: unknown key; did you mean HIDDEN_DIM?');
  });

  it('treats a --set without = as wrong usage', () => {
    expect(() => parseSet('N_EPOCHS')).to.throw(UsageError, /KEY=VALUE/);
  });

  it('collects the problems of several files together', async () => {
    const dir = await tempDir();
    const a = await writeText(path.join(dir, 'a.yaml'), 'SEED: -1\n');
    const b = await writeText(path.join(dir, 'b.yaml'), 'N_LAYERS: 0\n');
    const e = thrownBy(() => loadExperiments([a, b]));
    expect((e as ConfigError).problems.map((p) => p.where)).to.deep.equal([`${a}:1:7`, `${b}:1:11`]);
  });

  it('names a missing file', () => {
    expect(() => loadExperiment('/nonexistent/x.yaml')).to.throw(ConfigError, /\/nonexistent\/x\.yaml: cannot read experiment file/);
  });

  describe('hostile files give positioned problems, never a library trace', () => {
    it('refuses an alias bomb ("billion laughs") at the first alias', async () => {
      const lines = ['a: &a ["lol","lol","lol","lol","lol","lol","lol","lol","lol"]'];
      let prev = 'a';
      for (const n of 'bcdefghi') {
        lines.push(`${n}: &${n} [${Array(9).fill(`*${prev}`).join(',')}]`);
        prev = n;
      }
      const { file, problems } = await problemsOf(`${lines.join('\n')}\n`);
      expect(problems).to.have.length(1);
      expect(problems[0].where).to.equal(`${file}:2:8`);
      expect(problems[0].message).to.match(/aliases expand to too many values/);
    });

    it('refuses a binary file (a PNG header, NUL bytes) at the first NUL byte', async () => {
      const dir = await tempDir();
      const file = path.join(dir, 'image.png');
      await writeText(file, '');
      const { writeFile } = await import('node:fs/promises');
      await writeFile(file, Buffer.concat([Buffer.from('\x89PNG\r\n\x1a\n', 'latin1'), Buffer.from([0, 0, 0, 13]), Buffer.from('IHDR')]));
      expect(() => loadExperiment(file)).to.throw(ConfigError, new RegExp(`^${file.replace(/[.\\/]/g, '\\$&')}:3:1: this is a binary file`));
    });

    it('refuses a file that is not UTF-8, naming the byte and its position', async () => {
      const dir = await tempDir();
      const file = path.join(dir, 'latin1.yaml');
      const { writeFile } = await import('node:fs/promises');
      await writeFile(file, Buffer.from('N_EPOCHS: 1\nTEXT: caf\xe9\n', 'latin1'));
      const e = thrownBy(() => loadExperiment(file));
      expect((e as ConfigError).problems.map((p) => `${p.where}: ${p.message}`)).to.deep.equal([`${file}:2:10: byte 0xE9 is not UTF-8; save the file as UTF-8`]);
    });

    it('shows at most 20 problems, then how many more, keeping every problem', async () => {
      const junk = Array.from({ length: 60 }, (_, i) => (i % 2 ? `k${i}: [\n` : 'x: : : y\n')).join('');
      const { problems, lines } = await problemsOf(junk);
      expect(problems.length).to.be.greaterThan(20);
      expect(lines).to.have.length(21);
      expect(lines[20]).to.equal(`… and ${problems.length - 20} more`);
    });

    it('truncates a long single value in the message', async () => {
      const { problems } = await problemsOf(`${'word '.repeat(200)}\n`);
      expect(problems[0].message).to.match(/found a single value \(".{59}…\)$/);
    });
  });
});
