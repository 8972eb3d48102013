import { expect } from 'chai';
import { createHead, parameterShapes, type Batch, type Head, type HeadGradients, type HeadSettings } from '../../src/model/index.js';
import { Random } from '../../src/model/random.js';
import { randomBatch, tinySettings } from './helpers.js';

// Central differences at h and 2h combined (Richardson): truncation error O(h⁴) instead of O(h²), so
// in float32 (loss rounding ~1e-7, divided by 2h) the numeric gradient is good to ~1e-6, and the
// tolerance can sit well below the gradients being checked (most are 1e-4…1e-2).
const STEP = 1e-2;
const ABSOLUTE = 1e-5;
const RELATIVE = 1e-3;

interface Probe {
  what: string;
  analytic: number;
  numeric: number;
}

/** A head whose weights are scaled up from PyTorch's small init, so gradients are large and the network far from linear. */
async function steepHead(settings: HeadSettings): Promise<Head> {
  const head = await createHead(settings, { backend: 'cpu' });
  const w = head.getWeights();
  for (const t of Object.values(w)) for (let i = 0; i < t.data.length; i++) t.data[i] *= 3;
  head.setWeights(w);
  return head;
}

async function numericDerivative(loss: (delta: number) => Promise<number>): Promise<number> {
  const central = async (h: number) => ((await loss(h)) - (await loss(-h))) / (2 * h);
  return (4 * (await central(STEP)) - (await central(2 * STEP))) / 3;
}

/**
 * Compares `analytic` with numeric derivatives on `perTensor` entries of every parameter and of the
 * input's real steps. In train mode every evaluation replays the same dropout masks (same stream state).
 */
async function finiteDifferences(head: Head, b: Batch, analytic: HeadGradients, perTensor: number, train = false): Promise<Probe[]> {
  const state = head.getTrainingState();
  const lossAt = async (batch: Batch) => {
    if (train) head.setTrainingState(state);
    return (await head.gradients(batch, { train })).loss;
  };
  const rng = new Random(99, 99);
  const probes: Probe[] = [];
  const weights = head.getWeights();
  for (const { name } of parameterShapes(head.settings)) {
    const data = weights[name].data;
    for (let k = 0; k < Math.min(perTensor, data.length); k++) {
      const i = Math.floor(rng.nextFloat() * data.length);
      const original = data[i];
      const numeric = await numericDerivative(async (delta) => {
        data[i] = original + delta;
        head.setWeights(weights);
        const loss = await lossAt(b);
        data[i] = original;
        head.setWeights(weights);
        return loss;
      });
      probes.push({ what: `${name}[${i}]`, analytic: analytic.grads[name][i], numeric });
    }
  }
  const inputSize = head.settings.inputSize;
  for (let k = 0; k < perTensor; k++) {
    const row = Math.floor(rng.nextFloat() * b.batch);
    const t = Math.floor(rng.nextFloat() * b.lengths[row]);
    const i = (row * b.steps + t) * inputSize + Math.floor(rng.nextFloat() * inputSize);
    const numeric = await numericDerivative(async (delta) => {
      const x = b.x.slice();
      x[i] += delta;
      return lossAt({ ...b, x });
    });
    probes.push({ what: `x[${i}]`, analytic: analytic.dx![i], numeric });
  }
  return probes;
}

const failures = (probes: Probe[]) => probes.filter((p) => !(Math.abs(p.analytic - p.numeric) <= ABSOLUTE + RELATIVE * Math.abs(p.numeric)));

describe('model/head gradients against finite differences', () => {
  let head: Head;
  let batch: Batch;
  let analytic: HeadGradients;
  let probes: Probe[];

  before(async () => {
    head = await steepHead(tinySettings({ inputSize: 4, hiddenSize: 3, layers: 2, bidirectional: true }));
    batch = randomBatch(4, [5, 3, 1, 4]);
    analytic = await head.gradients(batch, { inputGrad: true });
    probes = await finiteDifferences(head, batch, analytic, 4);
  });
  after(() => head.dispose());

  it('agree on a few entries of every weight tensor and of the input', () => {
    expect(probes.length).to.equal(parameterShapes(head.settings).length * 4 - 3 /* out.bias has 1 entry */ + 4);
    // The probes are informative: most gradients are far from zero.
    expect(probes.filter((p) => Math.abs(p.numeric) > 30 * ABSOLUTE).length).to.be.greaterThan(0.75 * probes.length);
    expect(failures(probes), JSON.stringify(failures(probes))).to.deep.equal([]);
  });

  it('the check catches a wrong gradient', () => {
    const tampered = probes.map((p) => ({ ...p }));
    const target = tampered.find((p) => p.what.startsWith('rnn.weight_hh_l0_reverse'))!;
    target.analytic += 5 * (ABSOLUTE + RELATIVE * Math.abs(target.numeric));
    expect(failures(tampered).map((p) => p.what)).to.deep.equal([target.what]);
    // And a gradient with its sign flipped, for an entry whose gradient is not tiny.
    const flipped = probes.map((p) => ({ ...p }));
    const big = flipped.find((p) => Math.abs(p.numeric) > 1e-3)!;
    big.analytic = -big.analytic;
    expect(failures(flipped).map((p) => p.what)).to.deep.equal([big.what]);
  });

  it('in training mode with dropout (between layers and before the linear layer): agree too', async () => {
    const dropping = await steepHead(tinySettings({ inputSize: 4, hiddenSize: 3, layers: 3, bidirectional: true, dropout: 0.3, seed: 8 }));
    const state = dropping.getTrainingState();
    const train = await dropping.gradients(batch, { train: true, inputGrad: true });
    dropping.setTrainingState(state);
    expect((await dropping.gradients(batch, { train: true })).loss).to.equal(train.loss);
    expect(train.loss).to.not.equal((await dropping.gradients(batch)).loss);
    dropping.setTrainingState(state);
    const probesTrain = await finiteDifferences(dropping, batch, train, 3, true);
    expect(failures(probesTrain), JSON.stringify(failures(probesTrain))).to.deep.equal([]);
    dropping.dispose();
  });

  it('unidirectional, one layer: agree too', async () => {
    const uni = await steepHead(tinySettings({ inputSize: 2, hiddenSize: 4, layers: 1, bidirectional: false, seed: 3 }));
    const b = randomBatch(2, [4, 2], 11);
    const probesUni = await finiteDifferences(uni, b, await uni.gradients(b, { inputGrad: true }), 3);
    expect(failures(probesUni), JSON.stringify(failures(probesUni))).to.deep.equal([]);
    uni.dispose();
  });
});
