import { expect } from 'chai';
import { execFile } from 'node:child_process';
import path from 'node:path';
import { promisify } from 'node:util';
import { installed } from '../../src/model/backend.js';
import { resolveBackend, selectBackend, selectTfjsBackend, type BackendSetting } from '../../src/model/index.js';
import { isUserError } from '../../src/core/errors.js';
import { REPO } from '../helpers.js';


async function rejection(setting: string): Promise<unknown> {
  try {
    await selectBackend(setting as BackendSetting);
  } catch (e) {
    return e;
  }
  return undefined;
}

describe('model/backend', () => {
  it('auto takes tensorflow-gpu, else tensorflow when installed, else onnxruntime, and resolves the same without loading', async () => {
    const b = await selectBackend('auto');
    const expected = installed('@tensorflow/tfjs-node-gpu') ? 'tensorflow-gpu' : installed('@tensorflow/tfjs-node') ? 'tensorflow' : 'onnxruntime';
    expect(resolveBackend('auto')).to.equal(expected);
    // A package can be present yet fail to load (no libtensorflow); auto then goes on down the list.
    if (expected === 'onnxruntime') {
      expect(b.name).to.equal('onnxruntime');
      expect('tf' in b).to.equal(false);
    }
  });

  it('the default engine starts no tfjs at all: a head trains and predicts on ONNX Runtime with no tfjs engine in the process', async () => {
    // In a fresh process, so no other test's tfjs is loaded: tfjs-core registers its engine as globalThis._tfengine.
    const script = `
      import { createHead } from ${JSON.stringify(path.join(REPO, 'src/model/index.ts'))};
      const head = await createHead({ inputSize: 3, hiddenSize: 4, layers: 1, bidirectional: true, dropout: 0.1, learningRate: 1e-3, seed: 1 }, { backend: 'onnxruntime' });
      const b = { x: new Float32Array(6), lengths: Int32Array.of(2), labels: Float32Array.of(1), batch: 1, steps: 2 };
      const { loss } = await head.trainStep(b);
      const logits = await head.predict(b);
      head.dispose();
      console.log(JSON.stringify({ backend: head.backend, kernel: head.kernel, loss: Number.isFinite(loss), logits: logits.length, tfjs: '_tfengine' in globalThis }));`;
    const { stdout } = await promisify(execFile)(process.execPath, ['--import', 'tsx', '--input-type=module', '-e', script], { cwd: REPO, timeout: 60_000 });
    expect(JSON.parse(stdout)).to.deep.equal({ backend: 'onnxruntime', kernel: 'ort-scan', loss: true, logits: 1, tfjs: false });
  });

  it('wasm: the single-threaded SIMD build', async () => {
    const b = await selectTfjsBackend('wasm');
    expect(b.name).to.equal('wasm');
    expect(b.tf.getBackend()).to.equal('wasm');
    expect(b.description).to.equal('wasm (SIMD, 1 thread)');
    // Its products are right, and agree with the plain JS backend.
    const a = b.tf.tensor2d([1, 2, 3, 4, 5, 6], [2, 3]);
    const c = b.tf.tensor2d([1, 0, 0, 1, 1, 1], [3, 2]);
    expect(Array.from(b.tf.matMul(a, c).dataSync())).to.deep.equal([4, 5, 10, 11]);
  });

  it('cpu is tfjs plain JavaScript backend, and switching back and forth works', async () => {
    const cpu = await selectTfjsBackend('cpu');
    expect(cpu.name).to.equal('cpu');
    expect(cpu.tf.getBackend()).to.equal('cpu');
    expect((await selectTfjsBackend('wasm')).tf.getBackend()).to.equal('wasm');
  });

  for (const [setting, pkg] of [
    ['tensorflow', '@tensorflow/tfjs-node'],
    ['tensorflow-gpu', '@tensorflow/tfjs-node-gpu'],
  ] as const) {
    it(`explicit ${setting} that cannot load is a UserError naming ${pkg} and how to install it`, async function () {
      if (installed(pkg)) this.skip();
      const e = await rejection(setting);
      expect(isUserError(e), String(e)).to.equal(true);
      const text = String(e);
      expect(text).to.contain(`BACKEND: ${setting}: ${pkg} is not installed`);
      expect(text).to.contain('libtensorflow');
      expect(text).to.contain(`npm install ${pkg}`);
    });
  }

  it('an unknown setting is a UserError listing the choices', async () => {
    const e = await rejection('gpu');
    expect(isUserError(e)).to.equal(true);
    expect(String(e)).to.contain('auto, onnxruntime, tensorflow-gpu, tensorflow, wasm, cpu');
  });

  it('wasm does not keep the process alive nor leave process handlers behind', async () => {
    const script = `
      import { createHead } from ${JSON.stringify(path.join(REPO, 'src/model/index.ts'))};
      const head = await createHead({ inputSize: 3, hiddenSize: 4, layers: 1, bidirectional: true, dropout: 0, learningRate: 1e-3, seed: 1 }, { backend: 'wasm' });
      const logits = await head.predict({ x: new Float32Array(6), lengths: Int32Array.of(2), batch: 1, steps: 2 });
      const handlers = process.listenerCount('uncaughtException') + process.listenerCount('unhandledRejection');
      console.log(head.backendDescription, logits.length, handlers);`;
    const { stdout } = await promisify(execFile)(process.execPath, ['--import', 'tsx', '--input-type=module', '-e', script], { cwd: REPO, timeout: 60_000 });
    // Also: Emscripten's rethrowing process handlers are gone (they print minified source on any crash).
    expect(stdout.trim()).to.equal('wasm (SIMD, 1 thread) 1 0');
  });
});
