import { expect } from 'chai';
import { execFileSync } from 'node:child_process';
import { mkdtempSync, readdirSync, existsSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { sentiment } from '../helpers.js';

/** A real full disk: a 300 KiB tmpfs (needs root and mount rights; skipped with a message otherwise). */
describe('a full disk', function () {
  this.timeout(300_000);
  let mountPoint: string | undefined;

  before(function () {
    const dir = mkdtempSync(path.join(os.tmpdir(), 'sentiment-full-'));
    try {
      execFileSync('mount', ['-t', 'tmpfs', '-o', 'size=300k', 'tmpfs', dir], { stdio: 'ignore' });
      mountPoint = dir;
    } catch {
      rmSync(dir, { recursive: true, force: true });
      console.log('      (skipped: cannot mount a small tmpfs here; needs root and mount rights)');
      this.skip();
    }
  });

  after(() => {
    if (!mountPoint) return;
    execFileSync('umount', [mountPoint]);
    rmSync(mountPoint, { recursive: true, force: true });
  });

  it('fails the stage with exit 1, naming the stage, the path and the problem, with no trace and no half-written entry', async () => {
    const cache = path.join(mountPoint!, 'cache');
    const r = await sentiment(['run', 'experiments/quickstart.yaml', '--cache-dir', cache, '--runs-dir', path.join(os.tmpdir(), 'sentiment-full-runs')]);
    expect(r.code, r.stderr).to.equal(1);
    expect(r.stderr).to.match(/Error: stage (data|tokenize|encode|train): .*no space left on the device \(ENOSPC/);
    expect(r.stderr).to.contain(cache);
    expect(r.stderr).not.to.match(/^\s+at /m);
    // Every entry in the cache is complete (has its manifest); no temporary folder is left.
    for (const stage of readdirSync(cache, { withFileTypes: true }).filter((e) => e.isDirectory()).map((e) => e.name)) {
      const stageDir = path.join(cache, stage);
      for (const name of readdirSync(stageDir)) {
        expect(name.startsWith('.tmp-'), `${stage}/${name}`).to.equal(false);
        if (/^[0-9a-f]{64}$/.test(name)) expect(existsSync(path.join(stageDir, name, 'manifest.json')), `${stage}/${name}`).to.equal(true);
      }
    }
  });
});
