import { expect } from 'chai';
import path from 'node:path';
import { sentiment, tempDir, writeText, locationEnv } from '../helpers.js';

/** With --json, a failing command still prints one JSON document on stdout: {"error", "exit"}. */
describe('--json on failure', function () {
  this.timeout(120_000);
  let dir: string;
  let env: Record<string, string>;
  before(async () => {
    dir = await tempDir();
    env = locationEnv(dir);
  });

  const expectError = (r: { code: number | null; stdout: string; stderr: string }, code: number, message: string | RegExp) => {
    expect(r.code, r.stderr).to.equal(code);
    const doc = JSON.parse(r.stdout) as { error: string; exit: number };
    expect(Object.keys(doc)).to.deep.equal(['error', 'exit']);
    expect(doc.exit).to.equal(code);
    if (typeof message === 'string') expect(doc.error).to.contain(message);
    else expect(doc.error).to.match(message);
    // The message still goes to stderr for a person reading the terminal.
    expect(r.stderr.trim()).to.not.equal('');
  };

  it('run, sweep, infer, export and cache verify', async () => {
    const [run, usage, parse, sweep, infer, exported, verify] = await Promise.all([
      sentiment(['run', 'experiments/quickstart.yaml', '--set', 'DATASET=./no/such/folder', '--json'], env),
      sentiment(['run', '--json'], env),
      sentiment(['run', 'experiments/quickstart.yaml', '--until', 'bake', '--json'], env),
      sentiment(['sweep', path.join(dir, 'missing.yaml'), '--json'], env),
      sentiment(['infer', '--config', 'experiments/quickstart.yaml', '--text', 'fine', '--out', 'x.parquet', '--json'], env),
      sentiment(['export', '--config', path.join(dir, 'missing.yaml'), '--out', path.join(dir, 'out'), '--json'], env),
      writeText(path.join(dir, 'a-file'), 'x').then((f) => sentiment(['cache', 'verify', '--cache-dir', f, '--json'])),
    ]);
    expectError(run, 1, 'DATASET: no/such/folder does not exist');
    expectError(usage, 2, 'give at least one experiment file');
    expectError(parse, 2, 'Expected --until=bake to be one of');
    expectError(sweep, 1, 'missing.yaml');
    expectError(infer, 2, /--out|--file/);
    expectError(exported, 1, 'missing.yaml');
    expectError(verify, 1, 'is a file, not a folder');
  });

  it('prints nothing extra without --json', async () => {
    const r = await sentiment(['run', 'experiments/quickstart.yaml', '--set', 'DATASET=./no/such/folder'], env);
    expect(r.code).to.equal(1);
    expect(r.stdout).to.equal('');
  });
});
