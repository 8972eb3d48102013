import { expect } from 'chai';
import { spawn } from 'node:child_process';
import { existsSync, readdirSync } from 'node:fs';
import path from 'node:path';
import { REPO, sentiment, tempDir, locationEnv } from '../helpers.js';

/** `sentiment run` killed with SIGKILL as soon as stderr shows `marker`. */
function killAt(args: string[], marker: RegExp, env: Record<string, string>): Promise<{ signal: string | null; stderr: string }> {
  return new Promise((resolve) => {
    const child = spawn(process.execPath, [path.join(REPO, 'bin/run.js'), ...args], { cwd: REPO, env: { ...process.env, CI: '1', ...env }, stdio: ['ignore', 'ignore', 'pipe'] });
    let stderr = '';
    child.stderr.on('data', (d) => {
      stderr += d;
      if (marker.test(stderr)) child.kill('SIGKILL');
    });
    child.on('close', (_code, signal) => resolve({ signal, stderr }));
  });
}

describe('training resumes after an interruption', function () {
  this.timeout(600_000);
  const sets = ['--set', 'N_EPOCHS=6', '--set', 'SEED=11'];

  it('kill -9 at the end of epoch 3: the rerun resumes after the last finished epoch and ends with the uninterrupted run’s metrics, bit for bit', async () => {
    const dir = await tempDir();
    const reference = await sentiment(['run', 'experiments/quickstart.yaml', ...sets, '--json'], { SENTIMENT_CACHE_DIR: path.join(dir, 'reference'), SENTIMENT_RUNS_DIR: path.join(dir, 'runs') });
    expect(reference.code, reference.stderr).to.equal(0);
    const env = locationEnv(dir);
    const killed = await killAt(['run', 'experiments/quickstart.yaml', ...sets], /epoch 3: train loss/, env);
    expect(killed.signal, killed.stderr).to.equal('SIGKILL');
    const resumeDirs = readdirSync(path.join(dir, 'cache', 'train')).filter((n) => n.startsWith('.resume-'));
    expect(resumeDirs, 'the checkpoint folder survives the kill').to.have.length(1);
    const again = await sentiment(['run', 'experiments/quickstart.yaml', ...sets, '--json'], env);
    expect(again.code, again.stderr).to.equal(0);
    // The line "epoch 3: …" comes just before epoch 3's checkpoint is written, so the kill lands before or
    // after it: either way the rerun goes on after a finished epoch, not from the start.
    expect(again.stderr).to.match(/resumed after epoch [2-5] of 6/);
    expect(again.stderr).not.to.match(/epoch 1: train loss/);
    expect(JSON.parse(again.stdout).metrics).to.deep.equal(JSON.parse(reference.stdout).metrics);
    expect(existsSync(path.join(dir, 'cache', 'train', resumeDirs[0])), 'the checkpoint is removed once the entry is complete').to.equal(false);
  });

  it('PATIENCE stops after that many epochs without a better valid loss, keeping the best head', async () => {
    const dir = await tempDir();
    const env = locationEnv(dir);
    const r = await sentiment(['run', 'experiments/quickstart.yaml', '--set', 'N_EPOCHS=30', '--set', 'PATIENCE=1', '--set', 'LEARNING_RATE=0.05', '--json'], env);
    expect(r.code, r.stderr).to.equal(0);
    const doc = JSON.parse(r.stdout);
    const train = doc.stages.find((s: { name: string }) => s.name === 'train');
    expect(train.info.epochs).to.be.below(30);
    expect(train.info.stopped).to.match(/no better valid loss in 1 epoch after epoch \d+; stopped after epoch \d+ of 30 \(PATIENCE 1\)/);
    expect(train.info.epochs).to.equal(train.info.best_epoch + 1);
    expect(doc.metrics.best_epoch).to.equal(train.info.best_epoch);
  });
});
