import { expect } from 'chai';
import { balancedSubset, holdOut, splitExamples } from '../../src/stages/data.js';
import type { SourceExample } from '../../src/data/index.js';
import type { Experiment } from '../../src/runner/config.js';
import { UserError } from '../../src/runner/errors.js';

function source(n: number, from: 'train' | 'test'): SourceExample[] {
  return Array.from({ length: n }, (_, i) => ({ id: `${from}:${i}`, text: `text ${i}`, classIndex: (i % 2) as 0 | 1, source: from }));
}

const config = (over: Partial<Experiment> = {}) =>
  ({ SEED: 12345, VALID_RATIO: 0.3, MAX_TRAIN_EXAMPLES: null, MAX_TEST_EXAMPLES: null, TARGET: 'negative', ...over }) as Experiment;
const classes: [string, string] = ['negative', 'positive'];

describe('stages/data', () => {
  const rows = [...source(1000, 'train'), ...source(400, 'test')];

  it('holds out VALID_RATIO of train, keeps test, and gives every id once', () => {
    const out = splitExamples(rows, classes, true, 0.2, config());
    const count = (s: string) => out.filter((e) => e.split === s).length;
    expect([count('train'), count('valid'), count('test')]).to.deep.equal([700, 300, 400]);
    expect(new Set(out.map((e) => e.id)).size).to.equal(1400);
  });

  it('is deterministic for a seed and different across seeds', () => {
    const valid = (seed: number) => splitExamples(rows, classes, true, 0.2, config({ SEED: seed })).filter((e) => e.split === 'valid').map((e) => e.id);
    expect(valid(1)).to.deep.equal(valid(1));
    expect(valid(1)).to.not.deep.equal(valid(2));
  });

  it('labels 1 for TARGET: negative by default, positive when asked', () => {
    const neg = splitExamples(rows, classes, true, 0.2, config());
    const pos = splitExamples(rows, classes, true, 0.2, config({ TARGET: 'positive' }));
    const first = (out: typeof neg) => out.find((e) => e.id === 'train:0')!.label;
    expect(first(neg)).to.equal(1); // class index 0 is "negative"
    expect(first(pos)).to.equal(0);
  });

  it('rejects a TARGET that is not a class of the dataset, naming the classes', () => {
    expect(() => splitExamples(rows, classes, true, 0.2, config({ TARGET: 'hate' }))).to.throw(UserError, /TARGET: "hate" is not a class of this dataset; its classes are "negative" and "positive"/);
  });

  it('takes class-balanced subsets before the valid split', () => {
    const out = splitExamples(rows, classes, true, 0.2, config({ MAX_TRAIN_EXAMPLES: 100, MAX_TEST_EXAMPLES: 50 }));
    const trainAndValid = out.filter((e) => e.split !== 'test');
    expect(trainAndValid).to.have.length(100);
    expect(trainAndValid.filter((e) => e.label === 1)).to.have.length(50);
    expect(out.filter((e) => e.split === 'valid')).to.have.length(30);
    expect(out.filter((e) => e.split === 'test')).to.have.length(50);
  });

  it('fills a subset from the larger class when the smaller one runs out', () => {
    const skewed = [...Array.from({ length: 10 }, (_, i) => ({ id: `a${i}`, label: 1 as const })), ...Array.from({ length: 90 }, (_, i) => ({ id: `b${i}`, label: 0 as const }))];
    const subset = balancedSubset(skewed, 40, 1, 'x');
    expect(subset).to.have.length(40);
    expect(subset.filter((r) => r.label === 1)).to.have.length(10);
  });

  it('carves a test split from a single file with test_ratio', () => {
    const out = splitExamples(source(1000, 'train'), classes, false, 0.2, config());
    expect(out.filter((e) => e.split === 'test')).to.have.length(200);
    expect(out.filter((e) => e.split === 'valid')).to.have.length(240);
  });

  it('holdOut keeps input order within each part', () => {
    const items = Array.from({ length: 50 }, (_, i) => ({ id: String(i) }));
    const { kept, held } = holdOut(items, 0.5, 3, 'p');
    expect(kept.map((r) => Number(r.id))).to.deep.equal([...kept.map((r) => Number(r.id))].sort((a, b) => a - b));
    expect(kept.length + held.length).to.equal(50);
  });

  it('refuses an empty split', () => {
    expect(() => splitExamples(source(2, 'train'), classes, true, 0.2, config())).to.throw(UserError, /test split is empty/);
  });
});
