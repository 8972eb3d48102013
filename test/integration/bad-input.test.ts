import { expect } from 'chai';
import { copyFile, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { sentiment, tempDir, writeText, locationEnv, NO_TRACE } from '../helpers.js';

/** Commands given hostile input: each error names the file (and line), exits non-zero, prints no stack trace. */
describe('bad input to validate, run and sweep', function () {
  this.timeout(120_000);
  let dir: string;
  let env: Record<string, string>;

  before(async () => {
    dir = await tempDir();
    env = locationEnv(dir);
  });

  const expectClean = (r: { code: number | null; stderr: string }, ...patterns: string[]) => {
    expect(r.code, r.stderr).to.equal(1);
    expect(r.stderr).to.not.match(NO_TRACE);
    for (const p of patterns) expect(r.stderr).to.contain(p);
  };

  it('validate and sweep: an alias bomb, a binary file, a non-UTF-8 file', async () => {
    const lines = ['a: &a [lol, lol, lol, lol, lol, lol, lol, lol, lol]'];
    let prev = 'a';
    for (const n of 'bcdefghi') {
      lines.push(`${n}: &${n} [${Array(9).fill(`*${prev}`).join(', ')}]`);
      prev = n;
    }
    const bomb = await writeText(path.join(dir, 'bomb.yaml'), `${lines.join('\n')}\n`);
    expectClean(await sentiment(['validate', bomb]), `${bomb}:2:8: aliases expand to too many values`, '1 problem found');
    expectClean(await sentiment(['sweep', bomb], env), `${bomb}:2:8: aliases expand to too many values`);
    const binary = path.join(dir, 'ls.yaml');
    await writeFile(binary, Buffer.concat([Buffer.from('\x7fELF\x02\x01\x01', 'latin1'), Buffer.alloc(9), Buffer.from(Array.from({ length: 4000 }, (_, i) => (i * 37) % 256))]));
    const r = await sentiment(['validate', binary]);
    expectClean(r, `${binary}:1:8: this is a binary file`);
    expect(r.stderr.trim().split('\n')).to.have.length(2);
    const huge = path.join(dir, 'node.yaml');
    await copyFile(process.execPath, huge);
    expectClean(await sentiment(['validate', huge]), `${huge}: cannot read experiment file:`, 'too large for an experiment file');
    const latin = path.join(dir, 'latin1.yaml');
    await writeFile(latin, Buffer.from('TEXT: caf\xe9\n', 'latin1'));
    expectClean(await sentiment(['run', latin], env), `${latin}:1:10: byte 0xE9 is not UTF-8`);
  });

  it('validate: thousands of syntax errors print 20 and a count', async () => {
    const junk = await writeText(path.join(dir, 'junk.yaml'), Array.from({ length: 400 }, (_, i) => (i % 2 ? `k${i}: [\n` : 'x: : : y\n')).join(''));
    const r = await sentiment(['validate', junk]);
    expectClean(r, `${junk}:1:`);
    const out = r.stderr.trim().split('\n');
    expect(out).to.have.length(22);
    expect(out[20]).to.match(/^… and \d+ more$/);
    expect(out[21]).to.match(/^\d+ problems found$/);
  });

  it('sweep: a base that is missing or a folder names the sweep file and line', async () => {
    const missing = await writeText(path.join(dir, 'sweep-missing.yaml'), '# a sweep\nbase: ./nope.yaml\ngrid: { HIDDEN_DIM: [8, 16] }\n');
    expectClean(await sentiment(['sweep', missing], env), `${missing}:2:7: base: ./nope.yaml: no such file`);
    const folder = await writeText(path.join(dir, 'sweep-folder.yaml'), 'base: .\n');
    expectClean(await sentiment(['sweep', folder], env), `${folder}:1:7: base: .: is a folder`);
  });

  it('run: a one-class dataset, an unclosed CSV quote and a binary dataset fail at the data stage, naming the file', async () => {
    const exp = await writeText(path.join(dir, 'exp.yaml'), 'MODEL: ./model\nDATASET: ./data.csv\n');
    await writeText(path.join(dir, 'ones.jsonl'), Array.from({ length: 30 }, (_, i) => `{"text":"t${i}","label":"positive"}\n`).join(''));
    expectClean(
      await sentiment(['run', exp, '--until', 'data', '--set', `DATASET=${path.join(dir, 'ones.jsonl')}`], env),
      'ones.jsonl: split "train" has only one class (positive: ',
      'negative: 0); a classifier needs both',
    );
    await writeText(path.join(dir, 'data.csv'), 'text,label\nfirst,"1\nsecond,0\n');
    expectClean(await sentiment(['run', exp, '--until', 'data'], env), 'data.csv:2:7: unclosed quote (the record starts here)');
    await copyFile(process.execPath, path.join(dir, 'bin.csv'));
    expectClean(await sentiment(['run', exp, '--until', 'data', '--set', `DATASET=${path.join(dir, 'bin.csv')}`], env), 'bin.csv: this is a binary file');
  });

  it('infer: a --cache-dir that is a file', async () => {
    const exp = await writeText(path.join(dir, 'exp2.yaml'), 'MODEL: ./model\nDATASET: ./ones.jsonl\n');
    expectClean(await sentiment(['infer', '--config', exp, '--text', 'hi', '--cache-dir', exp]), `--cache-dir ${exp}: is a file, not a folder`);
  });

  it('run, sweep and cache verify: a --cache-dir or --runs-dir that is a file', async () => {
    const aFile = await writeText(path.join(dir, 'not-a-folder'), 'x');
    expectClean(await sentiment(['run', 'experiments/quickstart.yaml', '--cache-dir', aFile]), `--cache-dir ${aFile}: is a file, not a folder`);
    expectClean(await sentiment(['run', 'experiments/quickstart.yaml', '--runs-dir', aFile, '--cache-dir', path.join(dir, 'cache')]), `--runs-dir ${aFile}: is a file, not a folder`);
    expectClean(await sentiment(['sweep', 'experiments/sweeps/quickstart-grid.yaml', '--cache-dir', aFile]), `--cache-dir ${aFile}: is a file, not a folder`);
    expectClean(await sentiment(['cache', 'verify', '--cache-dir', aFile]), `--cache-dir ${aFile}: is a file, not a folder`);
  });
});

