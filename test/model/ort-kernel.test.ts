import { expect } from 'chai';
import { createHead, createTfjsGruKernel, directionLayers, selectTfjsBackend, type GruKernel, type GruLayerKernel, type GruWeights } from '../../src/model/index.js';
import { ORT_KERNEL_NAME, createOrtGruKernel, gruFusedPredictModel } from '../../src/model/ort-kernel.js';
import { createSession, onnxruntime } from '../../src/core/onnxruntime.js';
import { Random } from '../../src/model/random.js';
import { randomBatch, referenceBatch, referenceCases, tinySettings, toNamedTensors, worstError } from './helpers.js';

const TOLERANCE = 1e-5;

function randomArray(rng: Random, n: number, scale = 1): Float32Array {
  return Float32Array.from({ length: n }, () => scale * rng.normal());
}

function randomWeights(rng: Random, input: number, hidden: number): GruWeights {
  const G = 3 * hidden;
  const s = 1 / Math.sqrt(hidden);
  return { wih: randomArray(rng, G * input, s), whh: randomArray(rng, G * hidden, s), bih: randomArray(rng, G, s), bhh: randomArray(rng, G, s) };
}

describe('model/ort-kernel', () => {
  let tfjsKernel: GruKernel;
  let ortKernel: GruLayerKernel;

  before(async () => {
    const cpu = await selectTfjsBackend('cpu');
    tfjsKernel = createTfjsGruKernel(cpu.tf, cpu.tfBackend);
    ortKernel = createOrtGruKernel({ threads: 2 });
  });


  /** [T, B, F] → [B, T, F]. */
  const batchMajor = (x: Float32Array, T: number, B: number, F: number) => {
    const out = new Float32Array(x.length);
    for (let t = 0; t < T; t++) for (let b = 0; b < B; b++) out.set(x.subarray((t * B + b) * F, (t * B + b + 1) * F), (b * T + t) * F);
    return out;
  };
  const timeMajor = (x: Float32Array, B: number, T: number, F: number) => batchMajor(x, B, T, F);

  for (const directions of [2, 1] as const) {
    for (const withDOutput of [true, false]) {
      it(`matches the tfjs kernel layer by layer: outputs, final states, every gradient and dx (${directions} direction${directions > 1 ? 's' : ''}, dOutput ${withDOutput ? 'given' : 'undefined'})`, async () => {
        const rng = new Random(3, directions * 10 + +withDOutput);
        const [B, T, In, H] = [4, 7, 5, 6];
        const lengths = Int32Array.from([7, 3, 0, 5]);
        const x = randomArray(rng, B * T * In);
        // Padding holds NaN: neither the outputs nor the weight gradients may see it.
        lengths.forEach((len, b) => x.fill(NaN, (b * T + len) * In, (b + 1) * T * In));
        const weights = Array.from({ length: directions }, () => randomWeights(rng, In, H));
        const above = Array.from({ length: directions }, () => randomWeights(rng, directions * H, H));
        const shape = { batch: B, steps: T, input: In, hidden: H, directions };
        const shapeAbove = { ...shape, input: directions * H };
        const F = directions * H;
        const plain = directionLayers(tfjsKernel);
        const results = [];
        for (const kernel of [plain, ortKernel]) {
          // Two layers, the second with dropout multipliers on its input drawn in the kernel's layout.
          const drop = new Float32Array(B * T * F);
          const draw = new Random(5, 5);
          for (let b = 0; b < B; b++) for (let t = 0; t < T; t++) {
            const at = kernel.layout === 'batch-major' ? (b * T + t) * F : (t * B + b) * F;
            draw.fillDropout(drop, 0.3, 1 / 0.7, at, at + F);
          }
          const f0 = await kernel.forward(x, shape, lengths, weights, undefined, true);
          const f1 = await kernel.forward(f0.output, shapeAbove, lengths, above, drop, true);
          const dLast = new Random(6, 6);
          const dOut = withDOutput ? randomArray(dLast, T * B * F) : undefined;
          // dOutput must be 0 on padding (what the layer above gives).
          if (dOut) lengths.forEach((len, b) => { for (let t = len; t < T; t++) dOut.fill(0, (b * T + t) * F, (b * T + t + 1) * F); });
          const dOutput = dOut && { layout: kernel.layout, data: kernel.layout === 'batch-major' ? dOut : timeMajor(dOut, B, T, F) };
          const g1 = await kernel.backward(f1.saved, dOutput, randomArray(dLast, B * F), true);
          const g0 = await kernel.backward(f0.saved, g1.dInput, new Float32Array(B * F), true);
          const asBatch = (a: { layout: string; data: Float32Array }) => (a.layout === 'batch-major' ? a.data : batchMajor(a.data, T, B, F));
          results.push({ y0: asBatch(f0.output), y1: asBatch(f1.output), last: f1.last, g0, g1 });
        }
        const [a, b] = results;
        expect(worstError(b.y0, a.y0), 'layer 0 output').to.be.below(TOLERANCE);
        expect(worstError(b.y1, a.y1), 'layer 1 output').to.be.below(TOLERANCE);
        expect(worstError(b.last, a.last), 'final states').to.be.below(TOLERANCE);
        for (const layer of ['g0', 'g1'] as const) {
          for (let d = 0; d < directions; d++) {
            for (const key of ['dWih', 'dWhh', 'dBih', 'dBhh'] as const) expect(worstError(b[layer].grads[d][key], a[layer].grads[d][key]), `${layer} ${d} ${key}`).to.be.below(TOLERANCE);
          }
        }
        // dx of the features at padded rows is 0·NaN in the plain kernel; compare the real rows.
        const real = (d: Float32Array) => Array.from(lengths).flatMap((len, bi) => Array.from(d.subarray(bi * T * In, (bi * T + len) * In)));
        expect(b.g0.dInput!.layout).to.equal('batch-major');
        expect(worstError(real(b.g0.dInput!.data), real(a.g0.dInput!.data)), 'dx').to.be.below(TOLERANCE);
      });
    }
  }

  describe('in the head, against PyTorch', () => {
    for (const c of referenceCases()) {
      it(`${c.name}: logits, loss, every gradient, the input gradient, and two Adam steps`, async () => {
        const settings = { ...c.settings, dropout: 0, learningRate: c.learning_rate, seed: 1 };
        const head = await createHead(settings, { backend: 'cpu', kernel: createOrtGruKernel({ threads: 2 }) });
        expect(head.kernel).to.equal(ORT_KERNEL_NAME);
        head.setWeights(toNamedTensors(c.weights));
        const g = await head.gradients(referenceBatch(c), { inputGrad: true });
        expect(worstError(g.logits, c.logits), 'logits').to.be.below(TOLERANCE);
        expect(Math.abs(g.loss - c.loss), 'loss').to.be.below(TOLERANCE);
        for (const [name, expected] of Object.entries(c.grads)) expect(worstError(g.grads[name], expected.data), name).to.be.below(TOLERANCE);
        expect(worstError(g.dx!, c.input_grad), 'input gradient').to.be.below(TOLERANCE);
        await head.trainStep(referenceBatch(c));
        await head.trainStep(referenceBatch(c));
        const w = head.getWeights();
        for (const [name, e] of Object.entries(c.weights_after_two_adam_steps)) expect(worstError(w[name].data, e.data), name).to.be.below(TOLERANCE);
        head.dispose();
      });
    }
  });

  describe("evaluation on ONNX's fused GRU operator", () => {
    for (const c of referenceCases()) {
      it(`${c.name}: the logits PyTorch gives`, async () => {
        const head = await createHead({ ...c.settings, dropout: 0, learningRate: c.learning_rate, seed: 1 }, { backend: 'cpu', kernel: createOrtGruKernel({ threads: 2 }) });
        head.setWeights(toNamedTensors(c.weights));
        expect(worstError(await head.predict(referenceBatch(c)), c.logits), 'logits').to.be.below(TOLERANCE);
        head.dispose();
      });
    }

    for (const [layers, bidirectional] of [[3, true], [1, true], [2, false]] as const) {
      it(`the Scan graph's logits, from the graph itself and through the kernel (${layers} layer${layers > 1 ? 's' : ''}, ${bidirectional ? 'bi' : 'uni'}directional, NaN padding, rows of length 1)`, async () => {
        const settings = tinySettings({ inputSize: 7, hiddenSize: 5, layers, bidirectional });
        const batch = randomBatch(7, [9, 1, 4, 9, 2, 1, 6]);
        batch.lengths.forEach((len, b) => batch.x.fill(NaN, (b * batch.steps + len) * 7, (b + 1) * batch.steps * 7));
        const [fused, scan] = await Promise.all(
          (['fused', 'scan'] as const).map((predictGraph) => createHead(settings, { backend: 'cpu', kernel: createOrtGruKernel({ threads: 2, predictGraph }) })),
        );
        const want = await scan.predict(batch);
        expect(want.every(Number.isFinite)).to.equal(true);
        expect(worstError(await fused.predict(batch), want), 'through the kernel').to.be.below(TOLERANCE);

        // The graph on its own, fed as the kernel feeds it (padding zeroed, weights in PyTorch's order).
        const ort = onnxruntime();
        const session = await createSession(gruFusedPredictModel({ input: 7, hidden: 5, layers, directions: bidirectional ? 2 : 1 }), 'gru-kernel', { threads: 1 });
        const w = fused.getWeights();
        const t = (name: string) => new ort.Tensor('float32', w[name].data, w[name].shape);
        const feeds: Record<string, InstanceType<typeof ort.Tensor>> = {
          X: new ort.Tensor('float32', batch.x.map((v) => (Number.isNaN(v) ? 0 : v)), [batch.batch, batch.steps, 7]),
          Lengths: new ort.Tensor('int32', batch.lengths, [batch.batch]),
          OutW: t('out.weight'),
          OutB: t('out.bias'),
        };
        for (let l = 0; l < layers; l++) {
          for (let d = 0; d < (bidirectional ? 2 : 1); d++) {
            const suffix = `l${l}${d === 1 ? '_reverse' : ''}`;
            feeds[`l${l}.Wih${d}`] = t(`rnn.weight_ih_${suffix}`);
            feeds[`l${l}.Whh${d}`] = t(`rnn.weight_hh_${suffix}`);
            feeds[`l${l}.Bih${d}`] = t(`rnn.bias_ih_${suffix}`);
            feeds[`l${l}.Bhh${d}`] = t(`rnn.bias_hh_${suffix}`);
          }
        }
        const out = await session.run(feeds);
        expect(worstError(out.Logits.data as Float32Array, want), 'the graph').to.be.below(TOLERANCE);
        await session.release();
        fused.dispose();
        scan.dispose();
      });
    }
  });

  it('trains a head (2 layers, bidirectional, dropout, varied lengths) to the same weights as the tfjs kernel', async () => {
    const settings = tinySettings({ inputSize: 8, hiddenSize: 6, dropout: 0.25, learningRate: 1e-2 });
    const batch = randomBatch(8, [9, 4, 1, 7, 9, 2]);
    const cpu = await selectTfjsBackend('cpu');
    const heads = [
      await createHead(settings, { backend: 'cpu', kernel: createTfjsGruKernel(cpu.tf, cpu.tfBackend) }),
      await createHead(settings, { backend: 'cpu', kernel: createOrtGruKernel({ threads: 2 }) }),
    ];
    expect(heads.map((h) => h.kernel)).to.deep.equal(['tfjs-bptt', ORT_KERNEL_NAME]);
    const losses: number[][] = [[], []];
    for (let step = 0; step < 5; step++) for (let i = 0; i < 2; i++) losses[i].push((await heads[i].trainStep(batch)).loss);
    expect(worstError(losses[1], losses[0]), 'losses').to.be.below(TOLERANCE);
    const [wa, wb] = heads.map((h) => h.getWeights());
    expect(Object.keys(wb).sort()).to.deep.equal(Object.keys(wa).sort());
    for (const name of Object.keys(wa)) expect(worstError(wb[name].data, wa[name].data), name).to.be.below(TOLERANCE);
    heads.forEach((h) => h.dispose());
  });
});

describe('model/head default kernel', () => {
  it('runs the GRU as ONNX graphs on onnxruntime, and on tfjs kernels for the tfjs backends', async () => {
    const settings = tinySettings({ inputSize: 4, hiddenSize: 3 });
    const head = await createHead(settings, { backend: 'onnxruntime' });
    expect([head.backend, head.kernel]).to.deep.equal(['onnxruntime', ORT_KERNEL_NAME]);
    head.dispose();
    for (const backend of ['cpu', 'wasm'] as const) {
      const tfjsHead = await createHead(settings, { backend });
      expect([tfjsHead.backend, tfjsHead.kernel]).to.deep.equal([backend, 'tfjs-bptt']);
      tfjsHead.dispose();
    }
  });
});
