import { expect } from 'chai';
import { createRequire } from 'node:module';
import path from 'node:path';
import { createSession, intraOpThreads, loadTransformers, onnxruntime, onnxruntimeProviders, sessionOptions } from '../../src/core/onnxruntime.js';

describe('core/onnxruntime: the one owner of ONNX Runtime', () => {
  it('loads one onnxruntime-node binding, the one transformers.js uses', async () => {
    const transformers = await loadTransformers();
    const ort = onnxruntime();
    const cache = createRequire(import.meta.url).cache;
    const loaded = Object.keys(cache).filter((f) => f.split(path.sep).join('/').endsWith('/onnxruntime-node/dist/index.js'));
    expect(loaded).to.have.length(1);
    expect(cache[loaded[0]]!.exports).to.equal(ort);
    expect(transformers.env.allowRemoteModels).to.equal(false);
  });

  it('configures transformers.js for local folders once', async () => {
    const a = await loadTransformers();
    a.env.localModelPath = '/somewhere';
    const b = await loadTransformers();
    expect(b).to.equal(a);
    expect(b.env.localModelPath).to.equal('/somewhere');
    a.env.localModelPath = '/';
    expect(a.env.allowRemoteModels).to.equal(false);
  });

  it('takes intra-op threads from SENTIMENT_THREADS, else each engine default', () => {
    expect(intraOpThreads('gru-kernel', { SENTIMENT_THREADS: '3' })).to.equal(3);
    expect(intraOpThreads('encoder', { SENTIMENT_THREADS: '3' })).to.equal(3);
    expect(intraOpThreads('encoder', {})).to.equal(undefined);
    expect(intraOpThreads('gru-kernel', { SENTIMENT_THREADS: 'x' })).to.be.a('number').above(0);
  });

  it('gives the GRU kernel the CPU provider with memory patterns off, and the encoder no provider (transformers.js picks it from DEVICE)', () => {
    const kernel = sessionOptions('gru-kernel', { threads: 2 });
    expect(kernel).to.include({ graphOptimizationLevel: 'all', intraOpNumThreads: 2, interOpNumThreads: 1, executionMode: 'sequential', enableMemPattern: false });
    expect(kernel.executionProviders).to.deep.equal(['cpu']);
    expect(kernel).to.not.have.property('enableProfiling');
    expect(sessionOptions('gru-kernel', { threads: 1, profileFilePrefix: '/tmp/x' })).to.include({ enableProfiling: true, profileFilePrefix: '/tmp/x' });
    const encoder = sessionOptions('encoder', { threads: 2 });
    expect(encoder).to.deep.equal({ graphOptimizationLevel: 'all', intraOpNumThreads: 2 });
  });

  it("turns ONNX Runtime's spinning threads off when asked (a server), for both users, and a real session takes it", async () => {
    const off = { session: { intra_op: { allow_spinning: '0' } } };
    for (const user of ['gru-kernel', 'encoder'] as const) {
      expect(sessionOptions(user, { threads: 2, allowSpinning: false }, {}).extra).to.deep.equal(off);
      expect(sessionOptions(user, { threads: 2, allowSpinning: true }, {})).to.not.have.property('extra');
      expect(sessionOptions(user, { threads: 2 }, {})).to.not.have.property('extra');
      // SENTIMENT_SPINNING, when set, decides over the command's default.
      expect(sessionOptions(user, { threads: 2 }, { SENTIMENT_SPINNING: '0' }).extra).to.deep.equal(off);
      expect(sessionOptions(user, { threads: 2 }, { SENTIMENT_SPINNING: 'false' }).extra).to.deep.equal(off);
      expect(sessionOptions(user, { threads: 2, allowSpinning: false }, { SENTIMENT_SPINNING: '1' })).to.not.have.property('extra');
      expect(sessionOptions(user, { threads: 2, allowSpinning: false }, { SENTIMENT_SPINNING: 'maybe' }).extra).to.deep.equal(off);
    }
    const { Graph, encodeModel } = await import('../../src/model/onnx-graph.js');
    const g = new Graph('identity');
    g.op1('Identity', [g.input('X', 'float', [1])], {}, 'Y');
    g.output('Y', 'float', [1]);
    const session = await createSession(encodeModel(g), 'gru-kernel', { threads: 2, allowSpinning: false });
    const out = await session.run({ X: new (onnxruntime().Tensor)('float32', Float32Array.of(3), [1]) });
    expect(Array.from(out.Y.data as Float32Array)).to.deep.equal([3]);
    await session.release();
  });

  it('lists the CPU provider and creates real sessions with those options', async () => {
    expect(onnxruntimeProviders().backends.map((b) => b.name)).to.include('cpu');
    // A one-node graph (Y = Identity(X)) built by hand: ModelProto with ir_version 8, opset 13.
    const { Graph, encodeModel } = await import('../../src/model/onnx-graph.js');
    const g = new Graph('identity');
    const x = g.input('X', 'float', [2]);
    g.op1('Identity', [x], {}, 'Y');
    g.output('Y', 'float', [2]);
    const session = await createSession(encodeModel(g), 'gru-kernel', { threads: 1 });
    const out = await session.run({ X: new (onnxruntime().Tensor)('float32', Float32Array.of(1.5, -2), [2]) });
    expect(Array.from(out.Y.data as Float32Array)).to.deep.equal([1.5, -2]);
    await session.release();
  });
});
