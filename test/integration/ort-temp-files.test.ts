import { expect } from 'chai';
import { execFile } from 'node:child_process';
import { existsSync } from 'node:fs';
import { rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { pathToFileURL } from 'node:url';
import { promisify } from 'node:util';
import { REPO } from '../helpers.js';

const run = promisify(execFile);

/** ONNX Runtime's telemetry left an empty mat-debug-<pid>.log in the temp folder of every training process. */
describe('training with onnxruntime leaves nothing in the temp folder', function () {
  this.timeout(120_000);

  const trainInChild = async (env: NodeJS.ProcessEnv) => {
    const head = pathToFileURL(path.join(REPO, 'src/model/head.ts')).href;
    const script = `
      const { createHead } = await import(${JSON.stringify(head)});
      const h = await createHead({ inputSize: 4, hiddenSize: 3, layers: 1, bidirectional: false, dropout: 0, learningRate: 0.01, seed: 1 }, { backend: 'onnxruntime' });
      await h.trainStep({ x: new Float32Array(24).fill(0.5), lengths: new Int32Array([3, 2]), labels: new Float32Array([1, 0]), batch: 2, steps: 3 });
      h.dispose();
      console.log(process.pid);`;
    const { stdout } = await run(process.execPath, ['--import', 'tsx', '--input-type=module', '-e', script], { cwd: REPO, env });
    const pid = Number(stdout.trim().split('\n').at(-1));
    expect(pid).to.be.greaterThan(0);
    return path.join(os.tmpdir(), `mat-debug-${pid}.log`);
  };

  it('no mat-debug-<pid>.log remains after a training step', async () => {
    const env = { ...process.env };
    delete env.ORT_DISABLE_TELEMETRY;
    const log = await trainInChild(env);
    try {
      expect(existsSync(log), log).to.equal(false);
    } finally {
      await rm(log, { force: true });
    }
  });
});
