import { expect } from 'chai';
import { spawn } from 'node:child_process';
import path from 'node:path';
import { REPO, sentiment, tempDir, locationEnv } from '../helpers.js';

/** Starts `sentiment ARGS`, sends SIGINT once stderr shows `marker`, and reports how it ended. */
function interruptAt(args: string[], marker: string, env: Record<string, string>): Promise<{ code: number | null; signal: string | null; stderr: string; sent: boolean }> {
  return new Promise((resolve) => {
    const child = spawn(process.execPath, [path.join(REPO, 'bin/run.js'), ...args], { cwd: REPO, env: { ...process.env, CI: '1', ...env }, stdio: ['ignore', 'pipe', 'pipe'] });
    let stderr = '';
    let sent = false;
    child.stderr.on('data', (d) => {
      stderr += d;
      if (!sent && stderr.includes(marker)) {
        sent = true;
        child.kill('SIGINT');
      }
    });
    child.stdout.resume();
    child.on('close', (code, signal) => resolve({ code, signal, stderr, sent }));
  });
}

describe('Ctrl-C (SIGINT) in every stage', function () {
  this.timeout(300_000);
  let env: Record<string, string>;
  before(async () => {
    const dir = await tempDir();
    env = locationEnv(dir);
  });

  // Whether the stage is still running when the signal lands or has just finished, the run must stop with 130.
  for (const stage of ['tokenize', 'train', 'evaluate']) {
    it(`during ${stage}: exit 130, the stages before it stay cached, and the next run finishes`, async () => {
      // --force STAGE: the earlier tests cached every stage, and a fully cached run would finish (in its
      // earlier run folder) before the signal lands.
      const r = await interruptAt(['run', 'experiments/quickstart.yaml', '--set', 'SEED=7', '--force', stage], `❯ ${stage}`, env);
      expect(r.sent, r.stderr).to.equal(true);
      expect(r.code, r.stderr).to.equal(130);
      expect(r.stderr).to.contain('interrupted');
      expect(r.stderr).not.to.match(/^\s+at /m);
      const again = await sentiment(['run', 'experiments/quickstart.yaml', '--set', 'SEED=7', '--json'], env);
      expect(again.code, again.stderr).to.equal(0);
      const stages = JSON.parse(again.stdout).stages as { name: string; cached: boolean }[];
      const before = stages.slice(0, stages.findIndex((s) => s.name === stage));
      for (const s of before) expect(s.cached, s.name).to.equal(true);
    });
  }

  it('during a sweep: exit 130 after the first trial finished, and a rerun finishes every trial', async () => {
    const r = await interruptAt(['sweep', 'experiments/sweeps/quickstart-grid.yaml'], '[1/4]', env);
    expect(r.sent, r.stderr).to.equal(true);
    expect(r.code, r.stderr).to.equal(130);
    expect(r.stderr).to.contain('interrupted');
    expect(r.stderr).not.to.match(/^\s+at /m);
    const again = await sentiment(['sweep', 'experiments/sweeps/quickstart-grid.yaml', '--json'], env);
    expect(again.code, again.stderr).to.equal(0);
    expect((JSON.parse(again.stdout).trials as { status: string }[]).map((t) => t.status)).to.deep.equal(['done', 'done', 'done', 'done']);
  });
});

