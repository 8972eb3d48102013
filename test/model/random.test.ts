import { expect } from 'chai';
import { Random } from '../../src/model/random.js';

describe('model/random', () => {
  it('fillDropout makes the same draws as nextFloat() in order, and leaves the stream where they would', () => {
    const [p, keep] = [0.3, 1 / 0.7];
    const fast = new Random(42, 2);
    const plain = new Random(42, 2);
    const out = new Float32Array(1000).fill(-1);
    fast.fillDropout(out, p, keep, 100, 900);
    const expected = Float32Array.from(out, (v, i) => (i < 100 || i >= 900 ? -1 : plain.nextFloat() >= p ? keep : 0));
    expect(out).to.deep.equal(expected);
    expect(out.filter((v) => v === 0).length).to.be.within(180, 300);
    expect(fast.getState()).to.deep.equal(plain.getState());
    expect(fast.nextUint32()).to.equal(plain.nextUint32());
  });
});
