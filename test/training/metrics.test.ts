import { expect } from 'chai';
import { MetricsAccumulator, bceWithLogits, rocAuc } from '../../src/training/metrics.js';

describe('training/metrics', () => {
  it('BCE with logits matches -[y log σ(x) + (1-y) log(1-σ(x))], also for large logits', () => {
    const naive = (x: number, y: number) => -(y * Math.log(1 / (1 + Math.exp(-x))) + (1 - y) * Math.log(1 - 1 / (1 + Math.exp(-x))));
    for (const [x, y] of [[0, 1], [2.5, 0], [-1.3, 1], [0.7, 0]]) expect(bceWithLogits(x, y)).to.be.closeTo(naive(x, y), 1e-12);
    expect(bceWithLogits(100, 0)).to.be.closeTo(100, 1e-9);
    expect(bceWithLogits(-100, 0)).to.be.closeTo(0, 1e-12);
  });

  it('ROC-AUC: perfect, reversed, ties and a hand-counted case', () => {
    expect(rocAuc([0.1, 0.2, 0.8, 0.9], [0, 0, 1, 1])).to.equal(1);
    expect(rocAuc([0.9, 0.8, 0.2, 0.1], [0, 0, 1, 1])).to.equal(0);
    expect(rocAuc([0.5, 0.5, 0.5, 0.5], [0, 1, 0, 1])).to.equal(0.5);
    // positives 0.8, 0.4; negatives 0.6, 0.2: pairs won 0.8>0.6, 0.8>0.2, 0.4>0.2 → 3 of 4
    expect(rocAuc([0.8, 0.4, 0.6, 0.2], [1, 1, 0, 0])).to.equal(0.75);
    expect(Number.isNaN(rocAuc([0.1, 0.2], [1, 1]))).to.equal(true);
  });

  it('accuracy, precision, recall and F1 for label 1', () => {
    const acc = new MetricsAccumulator();
    // logits ≥ 0 predict 1: predictions 1,1,0,0,1 vs labels 1,0,0,1,1 → tp 2, fp 1, fn 1, tn 1
    acc.add([2, 0.5, -1, -0.2, 3], [1, 0, 0, 1, 1]);
    const m = acc.result();
    expect(m.examples).to.equal(5);
    expect(m.accuracy).to.equal(3 / 5);
    expect(m.precision).to.equal(2 / 3);
    expect(m.recall).to.equal(2 / 3);
    expect(m.f1).to.be.closeTo(2 / 3, 1e-12);
  });
});
