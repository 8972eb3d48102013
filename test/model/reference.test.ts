import { expect } from 'chai';
import { createHead, createTfjsGruKernel, selectTfjsBackend, type BackendName, type HeadSettings, type TfjsBackendName } from '../../src/model/index.js';
import { referenceBatch, referenceCases, toNamedTensors, worstError } from './helpers.js';

// PyTorch's answers (float64 on float32 weights and inputs) for nn.GRU over a packed batch + Linear +
// BCEWithLogits + Adam; see test/fixtures/gru/make_reference.py.
const TOLERANCE = 1e-5;

/** A head on `backend` whose GRU runs on the tfjs kernel, or on the backend's default (the ONNX graphs for onnxruntime). */
async function headWith(settings: HeadSettings, backend: BackendName, kernel: 'tfjs' | 'default') {
  if (kernel === 'default') return createHead(settings, { backend });
  const selected = await selectTfjsBackend(backend as TfjsBackendName);
  return createHead(settings, { backend, kernel: createTfjsGruKernel(selected.tf, selected.tfBackend) });
}

for (const [backend, kernel] of [['cpu', 'tfjs'], ['wasm', 'tfjs'], ['onnxruntime', 'default']] as [BackendName, 'tfjs' | 'default'][]) {
  describe(`model/head against PyTorch (${backend}, ${kernel} kernel)`, () => {
    for (const c of referenceCases()) {
      const settings = { ...c.settings, dropout: 0, learningRate: c.learning_rate, seed: 1 };

      it(`${c.name}: logits, loss, every parameter's gradient and the input gradient`, async () => {
        const head = await headWith({ ...settings, dropout: 0.5 }, backend, kernel);
        head.setWeights(toNamedTensors(c.weights));
        // Eval mode: dropout (0.5 here) must be off.
        expect(worstError(await head.predict(referenceBatch(c)), c.logits)).to.be.below(TOLERANCE);
        const g = await head.gradients(referenceBatch(c), { inputGrad: true });
        expect(worstError(g.logits, c.logits), 'logits').to.be.below(TOLERANCE);
        expect(Math.abs(g.loss - c.loss), 'loss').to.be.below(TOLERANCE);
        expect(Object.keys(g.grads).sort()).to.deep.equal(Object.keys(c.grads).sort());
        for (const [name, expected] of Object.entries(c.grads)) expect(worstError(g.grads[name], expected.data), name).to.be.below(TOLERANCE);
        expect(worstError(g.dx!, c.input_grad), 'input gradient').to.be.below(TOLERANCE);
        head.dispose();
      });

      it(`${c.name}: weights after one and two Adam steps (lr ${c.learning_rate})`, async () => {
        const head = await headWith(settings, backend, kernel);
        head.setWeights(toNamedTensors(c.weights));
        const { loss } = await head.trainStep(referenceBatch(c));
        expect(Math.abs(loss - c.loss)).to.be.below(TOLERANCE);
        const check = (expected: typeof c.weights) => {
          const w = head.getWeights();
          for (const [name, e] of Object.entries(expected)) {
            expect(w[name].shape, name).to.deep.equal(e.shape);
            expect(worstError(w[name].data, e.data), name).to.be.below(TOLERANCE);
          }
        };
        check(c.weights_after_adam);
        await head.trainStep(referenceBatch(c));
        check(c.weights_after_two_adam_steps);
        head.dispose();
      });
    }
  });
}
