import { expect } from 'chai';
import { MemoryRungStore, ashaVerdict, earlyStopPolicy, quantile, rungEpochs } from '../../src/runner/asha.js';
import type { EpochRecord } from '../../src/training/trained-head.js';

const epoch = (n: number, valid_loss: number, valid_accuracy = 0.5): EpochRecord => ({ epoch: n, train_loss: 0, train_accuracy: 0, valid_loss, valid_accuracy, seconds: 0, best: true });

describe('runner/asha', () => {
  it('places rungs at min_epochs × reduction_factor^k below the last epoch', () => {
    expect(rungEpochs(earlyStopPolicy({ method: 'asha' }), 10)).to.deep.equal([1, 3, 9]);
    expect(rungEpochs(earlyStopPolicy({ method: 'asha', min_epochs: 2, reduction_factor: 2 }), 16)).to.deep.equal([2, 4, 8]);
    expect(rungEpochs(earlyStopPolicy({ method: 'asha', min_epochs: 3 }), 3)).to.deep.equal([]);
  });

  it('interpolates quantiles linearly between ranks, as numpy does', () => {
    // numpy.percentile([4, 1, 3, 2], 25) == 1.75; ([10], q) == 10; ([1, 2], 50) == 1.5
    expect(quantile([4, 1, 3, 2], 0.25)).to.equal(1.75);
    expect(quantile([10], 0.9)).to.equal(10);
    expect(quantile([1, 2], 0.5)).to.equal(1.5);
  });

  it('remembers a trial\'s first value and gives it the same earlier values when replayed', async () => {
    const store = new MemoryRungStore();
    expect(await store.recordAndRead(1, 'a', 0.5)).to.deep.equal([]);
    expect(await store.recordAndRead(1, 'b', 0.4)).to.deep.equal([0.5]);
    expect(await store.recordAndRead(1, 'c', 0.3)).to.deep.equal([0.5, 0.4]);
    expect(await store.recordAndRead(1, 'b', 9)).to.deep.equal([0.5]);
    expect(await store.recordAndRead(3, 'c', 0.2)).to.deep.equal([]);
    expect(await store.recordAndRead(1, 'd', 0.1)).to.deep.equal([0.5, 0.4, 0.3]);
  });

  it('stops a trial behind the best 1/reduction_factor at a rung, by hand', async () => {
    const policy = earlyStopPolicy({ method: 'asha', min_epochs: 1, reduction_factor: 2 });
    const store = new MemoryRungStore();
    // Rung 1 of 4 epochs (rungs 1 and 2). The first trial passes: nothing to compare with.
    expect((await ashaVerdict(policy, store, 'a', epoch(1, 0.60), 4)).stop).to.equal(false);
    // b: earlier [0.60], cutoff = median = 0.60; 0.70 > 0.60 → stop.
    const b = await ashaVerdict(policy, store, 'b', epoch(1, 0.7), 4);
    expect(b.stop).to.equal(true);
    expect(b.reason).to.contain('0.7000').and.contain('0.6000').and.contain('epoch-1 rung');
    // c: earlier [0.60, 0.70], cutoff 0.65; 0.64 is ahead → goes on.
    expect((await ashaVerdict(policy, store, 'c', epoch(1, 0.64), 4)).stop).to.equal(false);
    // Epoch 3 is not a rung; epoch 4 is the last: never compared.
    expect((await ashaVerdict(policy, store, 'c', epoch(3, 9), 4)).stop).to.equal(false);
    expect((await ashaVerdict(policy, store, 'c', epoch(4, 9), 4)).stop).to.equal(false);
    // valid_accuracy: higher is better; earlier [0.8, 0.6, 0.7] with rf 3 → cutoff at q = 2/3: 0.7333…
    const acc = earlyStopPolicy({ method: 'asha', metric: 'valid_accuracy', reduction_factor: 3 });
    const s2 = new MemoryRungStore();
    for (const [id, a] of [['p', 0.8], ['q', 0.6], ['r', 0.7]] as const) await ashaVerdict(acc, s2, id, epoch(1, 0, a), 9);
    expect((await ashaVerdict(acc, s2, 's', epoch(1, 0, 0.73), 9)).stop).to.equal(true);
    expect((await ashaVerdict(acc, s2, 't', epoch(1, 0, 0.74), 9)).stop).to.equal(false);
  });
});
