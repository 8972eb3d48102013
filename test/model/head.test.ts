import { expect } from 'chai';
import { createHead, parameterShapes, selectTfjsBackend, type Batch, type BackendName } from '../../src/model/index.js';
import { randomBatch, tinySettings, worstError } from './helpers.js';

/** b with its padding overwritten by garbage. */
function withGarbagePadding(b: Batch, inputSize: number, value: (i: number) => number): Batch {
  const x = b.x.slice();
  for (let r = 0; r < b.batch; r++) for (let i = b.lengths[r] * inputSize; i < b.steps * inputSize; i++) x[r * b.steps * inputSize + i] = value(i);
  return { ...b, x };
}

/** Row r of b alone, without padding. */
function rowAlone(b: Batch, r: number, inputSize: number): Batch {
  const len = b.lengths[r];
  const x = b.x.slice(r * b.steps * inputSize, (r * b.steps + len) * inputSize);
  return { x, lengths: Int32Array.of(len), labels: b.labels && Float32Array.of(b.labels[r]), batch: 1, steps: len };
}

describe('model/head', () => {
  describe('padding is masked by the true lengths', () => {
    for (const backend of ['onnxruntime', 'wasm'] as BackendName[]) {
      it(`garbage (even NaN) in the padding changes neither logits nor gradients (${backend})`, async () => {
        const settings = tinySettings({ inputSize: 4, hiddenSize: 5 });
        const head = await createHead(settings, { backend });
        const b = randomBatch(4, [6, 2, 1, 5]);
        const clean = await head.gradients(b, { inputGrad: true });
        for (const garbage of [(i: number) => 1e3 * Math.sin(i), () => Number.NaN]) {
          const dirty = await head.gradients(withGarbagePadding(b, 4, garbage), { inputGrad: true });
          expect(dirty.logits).to.deep.equal(clean.logits);
          expect(dirty.loss).to.equal(clean.loss);
          for (const name of Object.keys(clean.grads)) expect(dirty.grads[name], name).to.deep.equal(clean.grads[name]);
          expect(dirty.dx).to.deep.equal(clean.dx);
        }
        // Padded steps get no input gradient.
        for (let r = 0; r < b.batch; r++) {
          const padding = clean.dx!.subarray((r * b.steps + b.lengths[r]) * 4, (r + 1) * b.steps * 4);
          expect(padding.every((v) => v === 0)).to.equal(true);
        }
        head.dispose();
      });
    }

    it('a row padded in a batch gives the logit it gives alone', async () => {
      const head = await createHead(tinySettings({ inputSize: 4, hiddenSize: 5, layers: 3 }), { backend: 'onnxruntime' });
      const b = randomBatch(4, [6, 2, 1, 5]);
      const together = await head.predict(b);
      for (let r = 0; r < b.batch; r++) {
        const [alone] = await head.predict(rowAlone(b, r, 4));
        expect(Math.abs(alone - together[r])).to.be.below(1e-6);
      }
      head.dispose();
    });
  });

  describe('initialisation as PyTorch, from SEED', () => {
    it('GRU weights and biases in U(±1/√H), the linear layer in U(±1/√fan_in), PyTorch names and shapes', async () => {
      const settings = tinySettings({ inputSize: 40, hiddenSize: 64, layers: 2, bidirectional: true });
      const head = await createHead(settings, { backend: 'onnxruntime' });
      const w = head.getWeights();
      expect(Object.keys(w)).to.deep.equal(parameterShapes(settings).map((p) => p.name));
      expect(w['rnn.weight_ih_l0'].shape).to.deep.equal([192, 40]);
      expect(w['rnn.weight_ih_l1_reverse'].shape).to.deep.equal([192, 128]);
      expect(w['rnn.weight_hh_l1'].shape).to.deep.equal([192, 64]);
      expect(w['rnn.bias_hh_l0_reverse'].shape).to.deep.equal([192]);
      expect(w['out.weight'].shape).to.deep.equal([1, 128]);
      expect(w['out.bias'].shape).to.deep.equal([1]);
      for (const [name, t] of Object.entries(w)) {
        const bound = name.startsWith('rnn.') ? 1 / Math.sqrt(64) : 1 / Math.sqrt(128);
        const values = Array.from(t.data);
        const max = Math.max(...values.map(Math.abs));
        expect(max, name).to.be.at.most(bound);
        if (values.length >= 128) {
          // Uniform over the whole range: reaches near the bound, mean near 0, variance bound²/3.
          expect(max, name).to.be.above(0.95 * bound);
          const mean = values.reduce((a, v) => a + v, 0) / values.length;
          const variance = values.reduce((a, v) => a + (v - mean) ** 2, 0) / values.length;
          expect(Math.abs(mean), name).to.be.below(0.1 * bound);
          expect(variance / (bound * bound / 3), name).to.be.within(0.85, 1.15);
        }
      }
      head.dispose();
    });

    for (const backend of ['onnxruntime', 'wasm'] as BackendName[]) {
      it(`same SEED ⇒ identical weights after a few training steps with dropout; another SEED differs (${backend})`, async () => {
        const settings = tinySettings({ inputSize: 4, hiddenSize: 6, dropout: 0.25, seed: 42 });
        const b = randomBatch(4, [6, 2, 1, 5]);
        const train = async (seed: number) => {
          const head = await createHead({ ...settings, seed }, { backend });
          const initial = head.getWeights();
          const losses = [];
          for (let i = 0; i < 4; i++) losses.push((await head.trainStep(b)).loss);
          const final = head.getWeights();
          head.dispose();
          return { initial, final, losses };
        };
        const [a, again, other] = [await train(42), await train(42), await train(43)];
        expect(again.initial).to.deep.equal(a.initial);
        expect(again.final).to.deep.equal(a.final);
        expect(again.losses).to.deep.equal(a.losses);
        expect(other.initial['rnn.weight_ih_l0'].data).to.not.deep.equal(a.initial['rnn.weight_ih_l0'].data);
        expect(other.losses).to.not.deep.equal(a.losses);
      });
    }

    it('dropout is on in training only: train-mode gradients vary with the stream, eval mode is fixed', async () => {
      const head = await createHead(tinySettings({ inputSize: 4, hiddenSize: 6, dropout: 0.5 }), { backend: 'onnxruntime' });
      const b = randomBatch(4, [6, 2, 1, 5]);
      const evalA = await head.gradients(b);
      const evalB = await head.gradients(b);
      expect(evalA.logits).to.deep.equal(evalB.logits);
      // predict runs ONNX's fused GRU operator, gradients the Scan graph: equal but for float rounding.
      expect(worstError(await head.predict(b), evalA.logits)).to.be.below(1e-5);
      const trainA = await head.gradients(b, { train: true });
      const trainB = await head.gradients(b, { train: true });
      expect(trainA.logits).to.not.deep.equal(trainB.logits);
      expect(trainA.logits).to.not.deep.equal(evalA.logits);
      head.dispose();
    });
  });

  describe('training', () => {
    it('learns a separable toy problem (loss falls well below ln 2)', async () => {
      const head = await createHead(tinySettings({ inputSize: 2, hiddenSize: 8, layers: 1, learningRate: 0.05, dropout: 0.1 }), { backend: 'onnxruntime' });
      const b = randomBatch(2, [5, 3, 4, 2, 5, 1, 3, 4], 5);
      // Label = sign of the first feature's sum over the row.
      b.labels = Float32Array.from({ length: b.batch }, (_, r) => {
        let s = 0;
        for (let t = 0; t < b.lengths[r]; t++) s += b.x[(r * b.steps + t) * 2];
        return s > 0 ? 1 : 0;
      });
      let loss = Infinity;
      for (let i = 0; i < 150; i++) loss = (await head.trainStep(b)).loss;
      expect(loss).to.be.below(0.1);
      head.dispose();
    });

    it('training state (Adam and the dropout stream) resumes exactly', async () => {
      const settings = tinySettings({ inputSize: 4, hiddenSize: 6, dropout: 0.25 });
      const b = randomBatch(4, [6, 2, 1, 5]);
      const straight = await createHead(settings, { backend: 'onnxruntime' });
      for (let i = 0; i < 2; i++) await straight.trainStep(b);
      const weights = straight.getWeights();
      const state = straight.getTrainingState();
      for (let i = 0; i < 2; i++) await straight.trainStep(b);
      const resumed = await createHead({ ...settings, seed: 999 }, { backend: 'onnxruntime' });
      resumed.setWeights(weights);
      resumed.setTrainingState(state);
      for (let i = 0; i < 2; i++) await resumed.trainStep(b);
      expect(resumed.getWeights()).to.deep.equal(straight.getWeights());
      straight.dispose();
      resumed.dispose();
    });

    it('setWeights refuses missing, unknown or mis-shaped tensors, naming them', async () => {
      const head = await createHead(tinySettings(), { backend: 'onnxruntime' });
      const w = head.getWeights();
      const { ['out.bias']: _dropped, ...missing } = w;
      expect(() => head.setWeights(missing)).to.throw(/out\.bias missing/);
      expect(() => head.setWeights({ ...w, 'rnn.weight_ih_l2': w['rnn.weight_ih_l1'] })).to.throw(/rnn\.weight_ih_l2 is not a parameter/);
      expect(() => head.setWeights({ ...w, 'out.weight': { shape: [3, 2], data: new Float32Array(6) } })).to.throw(/out\.weight has shape \[3, 2\], expected \[1, 6\]/);
      head.dispose();
    });

    it('rejects malformed batches and calls after dispose', async () => {
      const head = await createHead(tinySettings(), { backend: 'onnxruntime' });
      const b = randomBatch(3, [3, 2]);
      await expectReject(head.predict({ ...b, lengths: Int32Array.of(3, 4) }), /length 4 outside \[1, 3\]/);
      await expectReject(head.predict({ ...b, x: b.x.subarray(1) }), /x has 17 values, expected 2×3×3/);
      await expectReject(head.trainStep({ ...b, labels: undefined }), /no labels/);
      head.dispose();
      await expectReject(head.predict(b), /after dispose/);
    });

    it('leaves no tfjs tensors behind', async () => {
      const head = await createHead(tinySettings({ dropout: 0.2 }), { backend: 'wasm' });
      const { tf } = await selectTfjsBackend('wasm');
      const b = randomBatch(3, [4, 2, 3]);
      await head.trainStep(b);
      const before = tf.memory().numTensors;
      await head.trainStep(b);
      await head.predict(b);
      expect(tf.memory().numTensors).to.equal(before);
      head.dispose();
    });
  });
});

async function expectReject(p: Promise<unknown>, pattern: RegExp): Promise<void> {
  try {
    await p;
  } catch (e) {
    expect((e as Error).message).to.match(pattern);
    return;
  }
  expect.fail(`expected a rejection matching ${pattern}`);
}
