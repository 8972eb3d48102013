import { expect } from 'chai';
import { balancedSubset, holdOut, splitExamples } from '../../src/stages/data.js';
import type { SourceExample } from '../../src/data/index.js';
import type { Experiment } from '../../src/config/experiment.js';
import { UserError } from '../../src/core/errors.js';
import { STAGES } from '../../src/stages/index.js';

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

  describe('every split needs both classes', () => {
    const one = (n: number, from: 'train' | 'test', classIndex: 0 | 1): SourceExample[] =>
      Array.from({ length: n }, (_, i) => ({ id: `${from}:one${i}`, text: `t${i}`, classIndex, source: from }));

    it('names the dataset, the split and the class counts when train holds one class', () => {
      const cfg = config({ DATASET: '../x.jsonl' } as Partial<Experiment>);
      expect(() => splitExamples([...one(600, 'train', 1), ...source(100, 'test')], classes, true, 0.2, cfg)).to.throw(
        UserError,
        /^DATASET \.\.\/x\.jsonl: split "train" has only one class \(positive: 420, negative: 0\); a classifier needs both$/,
      );
    });

    it('checks the valid split after the split, and the test split', () => {
      // One negative row among 200: it lands in train or valid, so one of them has a single class.
      const skewed = [...one(199, 'train', 1), ...one(1, 'train', 0).map((r) => ({ ...r, id: 'train:neg' }))];
      expect(() => splitExamples([...skewed, ...source(100, 'test')], classes, true, 0.2, config({ DATASET: 'd.jsonl' } as Partial<Experiment>))).to.throw(
        UserError,
        /split "(train|valid)" has only one class \(positive: \d+, negative: 0\)/,
      );
      expect(() => splitExamples([...source(100, 'train'), ...one(50, 'test', 0)], classes, true, 0.2, config({ DATASET: { path: 'folder' } } as Partial<Experiment>))).to.throw(
        UserError,
        /^DATASET folder: split "test" has only one class \(negative: 50, positive: 0\)/,
      );
    });
  });

  describe('the stage', function () {
    this.timeout(120_000);

    it('fails before writing anything on a one-class dataset, and warns about bytes that are not UTF-8 with the first file:line', async () => {
      const { tempDir, writeText } = await import('../helpers.js');
      const { runExperiments } = await import('../../src/runner/run.js');
      const { writeFile, readFile, readdir } = await import('node:fs/promises');
      const { existsSync } = await import('node:fs');
      const path = (await import('node:path')).default;
      const { Writable } = await import('node:stream');
      const dir = await tempDir();
      const lines = Array.from({ length: 40 }, (_, i) => `{"text":"review ${i}${i === 6 || i === 30 ? ' caf\xe9' : ''}","label":${i % 2}}`);
      await writeFile(path.join(dir, 'reviews.jsonl'), Buffer.from(`${lines.join('\n')}\n`, 'latin1'));
      await writeText(path.join(dir, 'ones.jsonl'), Array.from({ length: 40 }, (_, i) => `{"text":"review ${i}","label":1}\n`).join(''));
      const exp = await writeText(path.join(dir, 'exp.yaml'), 'DATASET: ./reviews.jsonl\nMODEL: ./model\n');
      let log = '';
      const stream = new Writable({ write: (c, _e, cb) => void ((log += String(c)), cb()) });
      const cacheDir = path.join(dir, 'cache');
      const [result] = await runExperiments({ stages: STAGES, experiments: [exp], sets: [], cacheDir, runsDir: path.join(dir, 'runs'), until: 'data', interactive: false, stream });
      expect(log).to.contain('warning: 2 examples have bytes that are not UTF-8 (first at');
      expect(log).to.match(/reviews\.jsonl:7\); they were read as U\+FFFD/);
      const manifest = JSON.parse(await readFile(path.join(result!.stages[0]!.path!, 'manifest.json'), 'utf8'));
      expect(manifest.info.non_utf8.rows).to.equal(2);
      expect(manifest.info.non_utf8.first).to.match(/reviews\.jsonl:7$/);

      let error: unknown;
      try {
        await runExperiments({ stages: STAGES, experiments: [exp], sets: ['DATASET=' + path.join(dir, 'ones.jsonl')], cacheDir, runsDir: path.join(dir, 'runs'), until: 'data', interactive: false, stream });
      } catch (e) {
        error = e;
      }
      // (The class may come from another module instance through the runner's lazy imports: checked by name.)
      expect((error as Error).name).to.equal('UserError');
      expect((error as Error).message).to.match(/ones\.jsonl: split "train" has only one class \(positive: \d+, negative: 0\); a classifier needs both/);
      // Only the first (two-class) dataset's entry is in the cache.
      const entries = (await readdir(path.join(cacheDir, 'data'))).filter((e) => !e.startsWith('.'));
      expect(entries).to.have.length(1);
      expect(existsSync(path.join(cacheDir, 'data', entries[0]!, 'manifest.json'))).to.equal(true);
    });
  });
});
