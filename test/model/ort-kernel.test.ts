import { expect } from 'chai';
import { createHead, createTfjsGruKernel, selectBackend, type GruKernel, type GruWeights } from '../../src/model/index.js';
import { createOrtGruKernel, gemmModel } from '../../src/model/ort-kernel.js';
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
  let ortKernel: GruKernel;

  before(async () => {
    const cpu = await selectBackend('cpu');
    tfjsKernel = createTfjsGruKernel(cpu.tf, cpu.tfBackend);
    ortKernel = createOrtGruKernel({ threads: 2 });
  });

  it('builds a loadable one-node Gemm model for each transpose variant', () => {
    for (const v of ['nn', 'nt', 'tn'] as const) expect(gemmModel(v).length).to.be.above(50);
  });

  for (const reverse of [false, true]) {
    for (const withDOutput of [true, false]) {
      it(`matches the tfjs kernel: forward, final state and every gradient (${reverse ? 'reverse' : 'forward'}, dOutput ${withDOutput ? 'given' : 'undefined'})`, async () => {
        const rng = new Random(3, reverse ? 1 : 2);
        const shape = { batch: 4, steps: 7, input: 5, hidden: 6 };
        const lengths = Int32Array.from([7, 3, 0, 5]);
        const x = randomArray(rng, shape.batch * shape.steps * shape.input);
        // Padding rows hold NaN: neither the outputs nor dW_ih may see them.
        lengths.forEach((len, b) => x.fill(NaN, (b * shape.steps + len) * shape.input, (b + 1) * shape.steps * shape.input));
        const w = randomWeights(rng, shape.input, shape.hidden);
        const dOutput = withDOutput ? randomArray(rng, shape.batch * shape.steps * shape.hidden) : undefined;
        const dLast = randomArray(rng, shape.batch * shape.hidden);

        const a = await tfjsKernel.forward(x, shape, lengths, w, reverse, true);
        const b = await ortKernel.forward(x, shape, lengths, w, reverse, true);
        expect(worstError(b.output, a.output), 'output').to.be.below(TOLERANCE);
        expect(worstError(b.last, a.last), 'last').to.be.below(TOLERANCE);
        const ga = await tfjsKernel.backward(a.saved, dOutput, dLast, true);
        const gb = await ortKernel.backward(b.saved, dOutput, dLast, true);
        for (const key of ['dWih', 'dWhh', 'dBih', 'dBhh'] as const) expect(worstError(gb[key], ga[key]), key).to.be.below(TOLERANCE);
        // dx at padded rows is 0·NaN in both (the padding is never masked for dx); compare the real rows.
        const real = (d: Float32Array) => Array.from(lengths).flatMap((len, bi) => Array.from(d.subarray(bi * shape.steps * shape.input, (bi * shape.steps + len) * shape.input)));
        expect(worstError(real(gb.dx!), real(ga.dx!)), 'dx').to.be.below(TOLERANCE);
        expect((await ortKernel.backward(b.saved, dOutput, dLast, false)).dx).to.equal(undefined);
      });
    }
  }

  describe('in the head, against PyTorch', () => {
    for (const c of referenceCases()) {
      it(`${c.name}: logits, loss, every gradient, the input gradient, and two Adam steps`, async () => {
        const settings = { ...c.settings, dropout: 0, learningRate: c.learning_rate, seed: 1 };
        const head = await createHead(settings, { backend: 'cpu', kernel: createOrtGruKernel({ threads: 2 }) });
        expect(head.kernel).to.equal('ort-bptt');
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

  it('trains a head (2 layers, bidirectional, dropout, varied lengths) to the same weights as the tfjs kernel', async () => {
    const settings = tinySettings({ inputSize: 8, hiddenSize: 6, dropout: 0.25, learningRate: 1e-2 });
    const batch = randomBatch(8, [9, 4, 1, 7, 9, 2]);
    const cpu = await selectBackend('cpu');
    const heads = [
      await createHead(settings, { backend: 'cpu', kernel: createTfjsGruKernel(cpu.tf, cpu.tfBackend) }),
      await createHead(settings, { backend: 'cpu', kernel: createOrtGruKernel({ threads: 2 }) }),
    ];
    expect(heads.map((h) => h.kernel)).to.deep.equal(['tfjs-bptt', 'ort-bptt']);
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
  it('runs the GRU on ONNX Runtime for cpu and wasm, and SENTIMENT_GRU_KERNEL overrides it', async () => {
    const settings = tinySettings({ inputSize: 4, hiddenSize: 3 });
    const head = await createHead(settings, { backend: 'wasm' });
    expect(head.kernel).to.equal('ort-bptt');
    head.dispose();
    process.env.SENTIMENT_GRU_KERNEL = 'tfjs';
    try {
      const tfjsHead = await createHead(settings, { backend: 'cpu' });
      expect(tfjsHead.kernel).to.equal('tfjs-bptt');
      tfjsHead.dispose();
      process.env.SENTIMENT_GRU_KERNEL = 'fast';
      await createHead(settings, { backend: 'cpu' }).then(
        () => expect.fail('should throw'),
        (e) => expect(e.message).to.match(/SENTIMENT_GRU_KERNEL must be tfjs or ort/),
      );
    } finally {
      delete process.env.SENTIMENT_GRU_KERNEL;
    }
  });
});
