import { expect } from 'chai';
import { readFile } from 'node:fs/promises';
import path from 'node:path';
import { readSafetensors, writeSafetensors } from '../../src/training/safetensors.js';
import { tempDir } from '../helpers.js';

describe('training/safetensors', () => {
  it('round-trips named float32 tensors with the documented header layout', async () => {
    const file = path.join(await tempDir(), 'w.safetensors');
    const tensors = { 'rnn.weight_ih_l0': { shape: [3, 2], data: Float32Array.from([1, 2, 3, 4, 5, -6.5]) }, 'out.bias': { shape: [1], data: Float32Array.from([0.25]) } };
    await writeSafetensors(file, tensors, { backend: 'cpu' });
    const buf = await readFile(file);
    const headerLength = Number(buf.readBigUInt64LE(0));
    expect((8 + headerLength) % 8).to.equal(0);
    const header = JSON.parse(buf.subarray(8, 8 + headerLength).toString());
    expect(header['out.bias']).to.deep.equal({ dtype: 'F32', shape: [1], data_offsets: [0, 4] });
    expect(header['rnn.weight_ih_l0'].data_offsets).to.deep.equal([4, 28]);
    const back = await readSafetensors(file);
    expect(back.metadata).to.deep.equal({ backend: 'cpu' });
    expect(Array.from(back.tensors['rnn.weight_ih_l0'].data)).to.deep.equal([1, 2, 3, 4, 5, -6.5]);
    expect(back.tensors['rnn.weight_ih_l0'].shape).to.deep.equal([3, 2]);
  });
});
