import { expect } from 'chai';
import { QueueFullError, createBatcher } from '../../src/inference/batcher.js';
import type { Prediction } from '../../src/inference/predictor.js';
import { openPredictor } from '../../src/runner/trained-model.js';
import { STAGES } from '../../src/stages/index.js';
import { trainedExperiment } from '../fixtures/trained.js';
import { makeReviewRows } from '../fixtures/reviews.js';
import { tempDir } from '../helpers.js';

/** Each prediction equal to the expected one: same text and label, probability within 1e-6. */
function expectSame(got: Prediction[], want: Prediction[]): void {
  expect(got.map((p) => [p.text, p.label])).to.deep.equal(want.map((p) => [p.text, p.label]));
  got.forEach((p, i) => expect(p.probability).to.be.closeTo(want[i].probability, 1e-6));
}

describe('micro-batcher over a real predictor', function () {
  this.timeout(600_000);
  let opened: Awaited<ReturnType<typeof openPredictor>>;
  // Texts of different lengths, so a batch's order by length differs from its callers' order.
  const texts = makeReviewRows(40, 3).map((r) => r.text);
  let alone: Prediction[];

  before(async () => {
    const dir = await tempDir();
    const { file, cacheDir } = await trainedExperiment(dir);
    opened = await openPredictor({ stages: STAGES, config: file, sets: [], cacheDir });
    // Each text predicted on its own, as `infer --text` does.
    alone = [];
    for (const t of texts) alone.push(...(await opened.predictor.predict([t])));
  });
  after(() => opened?.close());

  it('predicts callers that arrive together in one batch, each getting its own texts in its order', async () => {
    const batcher = createBatcher(opened.predictor, { maxWaitMs: 50, maxBatch: 64 });
    const callers = [texts.slice(0, 3), texts.slice(3, 4), texts.slice(4, 10).reverse(), texts.slice(10, 12)];
    const answers = await Promise.all(callers.map((c) => batcher.predict(c)));
    answers.forEach((a, i) => expectSame(a.predictions, callers[i].map((t) => alone[texts.indexOf(t)])));
    expect(answers.map((a) => a.batchSize)).to.deep.equal([12, 12, 12, 12]);
  });

  it('never puts more than maxBatch texts in a batch, but keeps a larger caller whole', async () => {
    const batcher = createBatcher(opened.predictor, { maxWaitMs: 20, maxBatch: 4 });
    const singles = texts.slice(0, 10).map((t) => batcher.predict([t]));
    const large = batcher.predict(texts.slice(10, 17));
    const answers = await Promise.all(singles);
    answers.forEach((a, i) => expectSame(a.predictions, [alone[i]]));
    expect(Math.max(...answers.map((a) => a.batchSize))).to.equal(4);
    const big = await large;
    expect(big.batchSize).to.equal(7);
    expectSame(big.predictions, alone.slice(10, 17));
  });

  it('refuses callers beyond maxQueue waiting texts with QueueFullError, and takes them again once there is room', async () => {
    const batcher = createBatcher(opened.predictor, { maxWaitMs: 10_000, maxBatch: 64, maxQueue: 5 });
    const first = batcher.predict(texts.slice(0, 4));
    expect(batcher.queued).to.equal(4);
    const refused = await batcher.predict(texts.slice(4, 6)).catch((e: unknown) => e);
    expect(refused).to.be.instanceOf(QueueFullError);
    const fits = batcher.predict(texts.slice(4, 5));
    expect(batcher.queued).to.equal(5);
    // drain: the waiting batch starts without waiting out maxWaitMs.
    await batcher.drain();
    expectSame((await first).predictions, alone.slice(0, 4));
    expectSame((await fits).predictions, [alone[4]]);
    expect(batcher.queued).to.equal(0);
    expectSame((await batcher.predict([texts[5]])).predictions, [alone[5]]);
  });

  it('drain resolves only after every caller accepted before it has its answer', async () => {
    const batcher = createBatcher(opened.predictor, { maxWaitMs: 10_000, maxBatch: 2 });
    const answered: number[] = [];
    const callers = texts.slice(0, 7).map((t, i) => batcher.predict([t]).then((a) => (answered.push(i), a)));
    await batcher.drain();
    expect(answered.sort((a, b) => a - b)).to.deep.equal([0, 1, 2, 3, 4, 5, 6]);
    (await Promise.all(callers)).forEach((a, i) => expectSame(a.predictions, [alone[i]]));
  });

  it('starts a batch once the callers the previous batch answered are back beside those already waiting, not after maxWaitMs', async () => {
    const batcher = createBatcher(opened.predictor, { maxWaitMs: 10_000, maxBatch: 4 });
    // A (2 texts) and B (2 texts) fill a batch, which starts at once; C arrives while it runs.
    const first = [batcher.predict(texts.slice(0, 2)), batcher.predict(texts.slice(2, 4))];
    expect(batcher.queued).to.equal(0);
    const c = batcher.predict([texts[4]]);
    expect(batcher.queued).to.equal(1);
    const [a, b] = await Promise.all(first);
    expect([a.batchSize, b.batchSize]).to.deep.equal([4, 4]);
    await new Promise((resolve) => setImmediate(resolve)); // the batch's end is recorded after its answers
    // Three callers are expected now: C, and A and B coming back. A alone does not start a batch…
    const again = [batcher.predict([texts[5]])];
    expect(batcher.queued).to.equal(2);
    // …B's return does, at once (a batch that starts takes its texts off the queue synchronously).
    again.push(batcher.predict([texts[6]]));
    expect(batcher.queued).to.equal(0);
    const answers = await Promise.all([c, ...again]);
    expect(answers.map((x) => x.batchSize)).to.deep.equal([3, 3, 3]);
    answers.forEach((x, i) => expectSame(x.predictions, [alone[4 + i]]));
  });

  it('gives every caller of a batch the error when prediction fails', async () => {
    const batcher = createBatcher({ predict: () => opened.predictor.predict([]).then(() => Promise.reject(new Error('engine failed'))) }, { maxWaitMs: 5 });
    const errors = await Promise.all([batcher.predict(['a']), batcher.predict(['b'])].map((p) => p.then(() => undefined, (e: Error) => e.message)));
    expect(errors).to.deep.equal(['engine failed', 'engine failed']);
    expect(batcher.queued).to.equal(0);
  });
});
