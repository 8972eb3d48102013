import { expect } from 'chai';
import { execFile } from 'node:child_process';
import { existsSync } from 'node:fs';
import { mkdir, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { REPO, tempDir } from '../helpers.js';

/** The CLI run from `cwd` with neither SENTIMENT_CACHE_DIR nor SENTIMENT_RUNS_DIR set. */
function bare(args: string[], cwd: string): Promise<{ code: number; stdout: string; stderr: string }> {
  const env: NodeJS.ProcessEnv = { ...process.env, CI: '1' };
  delete env.SENTIMENT_CACHE_DIR;
  delete env.SENTIMENT_RUNS_DIR;
  return new Promise((resolve) => {
    execFile(process.execPath, [path.join(REPO, 'bin/run.js'), ...args], { cwd, env }, (error, stdout, stderr) => {
      resolve({ code: error ? (typeof error.code === 'number' ? error.code : 1) : 0, stdout, stderr });
    });
  });
}

describe('the project root', () => {
  it('holds the default cache and runs folders, from a nested folder of the project', async () => {
    const root = path.join(await tempDir(), 'project');
    const nested = path.join(root, 'experiments', 'mine');
    await mkdir(nested, { recursive: true });
    await writeFile(path.join(root, 'package.json'), '{}');
    const yaml = `MODEL: ${path.join(REPO, 'examples/tiny-bert')}\nDATASET: ${path.join(REPO, 'examples/reviews')}\nMAX_LENGTH: 64\nTEXT: hi\n`;
    await writeFile(path.join(nested, 'exp.yaml'), yaml);

    const explained = await bare(['run', 'exp.yaml', '--until', 'data', '--explain', '--json'], nested);
    expect(explained.code, explained.stderr).to.equal(0);

    const r = await bare(['run', 'exp.yaml', '--until', 'data', '--json'], nested);
    expect(r.code, r.stderr).to.equal(0);
    const doc = JSON.parse(r.stdout);
    expect(doc.stages[0].path.startsWith(path.join(root, '.sentiment', 'cache', 'data') + path.sep)).to.equal(true, doc.stages[0].path);
    expect(doc.run_dir.startsWith(path.join(root, 'runs', 'exp') + path.sep)).to.equal(true, doc.run_dir);
    expect(existsSync(path.join(nested, '.sentiment'))).to.equal(false);
    expect(existsSync(path.join(nested, 'runs'))).to.equal(false);

    // Once it exists, the explanation finds the entry in the root's cache.
    const again = await bare(['run', 'exp.yaml', '--until', 'data', '--explain', '--json'], nested);
    expect(JSON.parse(again.stdout).stages[0].cached).to.equal(true);
  });
});
