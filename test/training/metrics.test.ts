import { expect } from 'chai';
import { MetricsAccumulator, bceWithLogits, confusionCounts, rocAuc, rocCurve } from '../../src/training/metrics.js';

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

  it('rocCurve: one point per distinct score, from the top, as computed by hand', () => {
    // Scores descending: 0.9 (1), 0.8 (1), 0.7 (0), 0.6 (1), 0.55 (0), 0.4 (0); 3 positives, 3 negatives.
    const curve = rocCurve([0.6, 0.9, 0.4, 0.7, 0.55, 0.8], [1, 1, 0, 0, 0, 1]);
    expect(curve).to.deep.equal([
      { fpr: 0, tpr: 0, threshold: null },
      { fpr: 0, tpr: 1 / 3, threshold: 0.9 },
      { fpr: 0, tpr: 2 / 3, threshold: 0.8 },
      { fpr: 1 / 3, tpr: 2 / 3, threshold: 0.7 },
      { fpr: 1 / 3, tpr: 1, threshold: 0.6 },
      { fpr: 2 / 3, tpr: 1, threshold: 0.55 },
      { fpr: 1, tpr: 1, threshold: 0.4 },
    ]);
    // Its area by trapezoids is rocAuc's: 1/3·2/3 + 1/3·1 + 1/3·1 = 8/9.
    let area = 0;
    for (let k = 1; k < curve.length; k++) area += ((curve[k].fpr - curve[k - 1].fpr) * (curve[k].tpr + curve[k - 1].tpr)) / 2;
    expect(area).to.be.closeTo(8 / 9, 1e-12);
    expect(rocAuc([0.6, 0.9, 0.4, 0.7, 0.55, 0.8], [1, 1, 0, 0, 0, 1])).to.be.closeTo(8 / 9, 1e-12);
  });

  it('rocCurve: ties move both rates at once; one class alone gives no curve', () => {
    expect(rocCurve([0.5, 0.2, 0.5], [1, 0, 0])).to.deep.equal([
      { fpr: 0, tpr: 0, threshold: null },
      { fpr: 0.5, tpr: 1, threshold: 0.5 },
      { fpr: 1, tpr: 1, threshold: 0.2 },
    ]);
    expect(rocCurve([0.1, 0.9], [1, 1])).to.deep.equal([]);
  });

  it('confusionCounts: predicted 1 where the logit is ≥ 0', () => {
    expect(confusionCounts([2, -1, 0.5, -3, 0], [1, 1, 0, 0, 1])).to.deep.equal({ tp: 2, fp: 1, fn: 1, tn: 1 });
  });
});
