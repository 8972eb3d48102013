import { expect } from 'chai';
import { learningRateAt } from '../../src/training/schedule.js';

describe('training/schedule', () => {
  it('constant is the base rate at every step', () => {
    for (const step of [0, 5, 99]) expect(learningRateAt('constant', 1e-3, 0, step, 100)).to.equal(1e-3);
  });

  it('linear and cosine decay from the base at step 0 to 0 at the end; cosine is half the base midway', () => {
    expect(learningRateAt('linear', 1, 0, 0, 100)).to.equal(1);
    expect(learningRateAt('linear', 1, 0, 50, 100)).to.equal(0.5);
    expect(learningRateAt('linear', 1, 0, 100, 100)).to.equal(0);
    expect(learningRateAt('cosine', 1, 0, 0, 100)).to.equal(1);
    expect(learningRateAt('cosine', 1, 0, 50, 100)).to.be.closeTo(0.5, 1e-12);
    expect(learningRateAt('cosine', 1, 0, 100, 100)).to.be.closeTo(0, 1e-12);
  });

  it('warm-up rises linearly from 0 over its fraction of the steps, then the schedule starts', () => {
    // 10% of 100 steps: 0, 0.1, …, 0.9 of the base, then linear decay over the remaining 90 steps.
    expect(learningRateAt('linear', 2, 0.1, 0, 100)).to.equal(0);
    expect(learningRateAt('linear', 2, 0.1, 5, 100)).to.equal(1);
    expect(learningRateAt('linear', 2, 0.1, 10, 100)).to.equal(2);
    expect(learningRateAt('linear', 2, 0.1, 55, 100)).to.equal(1);
    expect(learningRateAt('constant', 2, 0.1, 50, 100)).to.equal(2);
  });
});
