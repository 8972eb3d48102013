import { expect } from 'chai';
import { cp, readFile, writeFile } from 'node:fs/promises';
import { existsSync } from 'node:fs';
import path from 'node:path';
import { Writable } from 'node:stream';
import { Cache } from '../../src/core/cache.js';
import { loadExperiment } from '../../src/config/experiment.js';
import { isUserError } from '../../src/core/errors.js';
import { arrow } from '../../src/core/arrow.js';
import { experimentSources, keyContext } from '../../src/runner/pipeline.js';
import { guardReads, type StageName, type UpstreamEntry } from '../../src/stages/stage.js';
import { runExperiments } from '../../src/runner/run.js';
import { formatMetrics } from '../../src/cli/tables.js';
import { FEATURES_FILE } from '../../src/features/features.js';
import { trainStage } from '../../src/stages/train.js';
import { readSafetensors } from '../../src/training/safetensors.js';
import type { EpochRecord } from '../../src/training/trained-head.js';
import { makeReviews } from '../fixtures/reviews.js';
import { tinyBert } from '../fixtures/tiny-bert.js';
import { sentiment, tempDir, writeText, locationEnv } from '../helpers.js';
import { STAGES } from '../../src/stages/index.js';

describe('stages/train, evaluate, infer (end to end on the repo fixtures)', function () {
  this.timeout(600_000);
  let dir: string;
  let file: string;
  const request = (sets: string[] = [], force?: StageName | 'all') => ({
    stages: STAGES,
    experiments: [file],
    sets,
    cacheDir: path.join(dir, 'cache'),
    runsDir: path.join(dir, 'runs'),
    interactive: false,
    force,
    stream: new Writable({ write: (_c, _e, cb) => cb() }),
  });

  before(async () => {
    dir = await tempDir();
    await cp(await tinyBert(), path.join(dir, 'model'), { recursive: true });
    await makeReviews(path.join(dir, 'reviews'), { train: 600, test: 200 });
    file = await writeText(
      path.join(dir, 'exp.yaml'),
      'MODEL: ./model\nDATASET: ./reviews\nMAX_LENGTH: 48\nN_EPOCHS: 10\nLEARNING_RATE: 0.005\nBATCH_SIZE: 32\nHIDDEN_DIM: 16\nN_LAYERS: 2\nBACKEND: onnxruntime\nTEXT: "the movie was great. highly recommend."\n',
    );
  });

  it('trains, keeps the best-valid head, evaluates every split and predicts TEXT', async () => {
    const [result] = await runExperiments(request());
    expect(result.stages.map((s) => s.name)).to.deep.equal(['data', 'tokenize', 'encode', 'train', 'evaluate', 'infer']);
    expect(result.backend).to.equal('onnxruntime');
    const m = result.metrics!;
    for (const split of ['train', 'valid', 'test'] as const) {
      expect(m[split]).to.include.keys('loss', 'accuracy', 'precision', 'recall', 'f1', 'roc_auc', 'examples');
      expect(m[split].loss).to.be.a('number').and.be.above(0);
    }
    expect(m.train.examples + m.valid.examples).to.equal(600);
    expect(m.test.examples).to.equal(200);
    // the synthetic reviews are learnable: well above chance after 10 epochs
    expect(m.test.accuracy).to.be.above(0.6);
    const train = result.stages.find((s) => s.name === 'train')!;
    const history = JSON.parse(await readFile(path.join(train.path, 'history.json'), 'utf8')) as EpochRecord[];
    expect(history).to.have.length(10);
    const best = history.reduce((a, b) => (b.valid_loss < a.valid_loss ? b : a));
    expect(m.best_epoch).to.equal(best.epoch);
    expect(m.valid.loss).to.be.closeTo(best.valid_loss, 1e-5);
    const { tensors } = await readSafetensors(path.join(train.path, 'head.safetensors'));
    expect(tensors['rnn.weight_ih_l0'].shape).to.deep.equal([48, 32]);
    expect(tensors['rnn.weight_hh_l1_reverse'].shape).to.deep.equal([48, 16]);
    expect(tensors['out.weight'].shape).to.deep.equal([1, 32]);
    expect(result.prediction!.text).to.equal('the movie was great. highly recommend.');
    expect(result.prediction!.label).to.equal(result.prediction!.probability >= 0.5 ? 'negative' : 'positive');
    for (const f of ['metrics.json', 'history.json', 'report.html', 'config.yaml', 'run.json']) expect(existsSync(path.join(result.run_dir, f)), f).to.equal(true);
    const report = await readFile(path.join(result.run_dir, 'report.html'), 'utf8');
    expect(report).to.contain('<svg');
    // The kept epoch is marked on the curves, the table's eval-mode train row is explained, the resolved config is shown.
    expect(report).to.contain(`dashed line: the kept head (epoch ${m.best_epoch})`);
    expect(report).to.contain('in eval mode, without dropout');
    expect(report).to.match(/<h2>Configuration<\/h2>\s*<pre>[^<]*HIDDEN_DIM: 16/);
  });

  it('gives identical metrics when the same config is trained again on the same backend', async () => {
    const [first] = await runExperiments(request());
    expect(first.stages.find((s) => s.name === 'train')!.cached).to.equal(true);
    // metrics.json as written, byte for byte (read before the retrain replaces the entry at the same key).
    const written = (r: typeof first) => readFile(path.join(r.stages.find((s) => s.name === 'evaluate')!.path, 'metrics.json'), 'utf8');
    const before = await written(first);
    const [again] = await runExperiments(request([], 'train'));
    expect(again.stages.find((s) => s.name === 'train')!.cached).to.equal(false);
    expect(again.stages.find((s) => s.name === 'evaluate')!.cached).to.equal(false);
    expect(await written(again)).to.equal(before);
    expect(JSON.stringify(again.metrics)).to.equal(JSON.stringify(first.metrics));
  });

  it('shares data, tokenize and encode between head settings', async () => {
    const [other] = await runExperiments(request(['HIDDEN_DIM=8', 'N_EPOCHS=1']));
    expect(other.stages.map((s) => s.cached)).to.deep.equal([true, true, true, false, false, false]);
  });

  it('prints the metrics table and the prediction, and --json carries backend, metrics and prediction', async () => {
    const env = locationEnv(dir);
    const json = await sentiment(['run', file, '--json'], env);
    expect(json.code, json.stderr).to.equal(0);
    const doc = JSON.parse(json.stdout);
    expect(doc.backend).to.equal('onnxruntime');
    expect(doc.metrics.test).to.include.keys('loss', 'accuracy');
    expect(doc.prediction).to.include.keys('text', 'probability', 'label');
    const text = await sentiment(['run', file], env);
    expect(text.stdout).to.match(/accuracy/).and.match(/test/).and.match(/the movie was great/);
  });

  it('stops on a loss that is not a number, naming the epoch and batch, and writes no head', async () => {
    const [first] = await runExperiments(request());
    const entryOf = async <N extends 'data' | 'encode'>(name: N): Promise<UpstreamEntry<N>> => {
      const stage = first.stages.find((s) => s.name === name)!;
      return { dir: stage.path, manifest: JSON.parse(await readFile(path.join(stage.path, 'manifest.json'), 'utf8')) };
    };
    const [data, encode] = [await entryOf('data'), await entryOf('encode')];
    // The same features with every value +Inf in float16 (what an overflowing encoder gives): the GRU's sums become NaN.
    const table = arrow.tableFromIPC(await readFile(path.join(encode.dir, FEATURES_FILE)));
    for (const chunk of table.getChild('features')!.data) (chunk.children[0].children[0].values as Uint16Array).fill(0x7c00);
    const damaged = await tempDir();
    await writeFile(path.join(damaged, FEATURES_FILE), arrow.tableToIPC(table, 'file'));
    const out = await tempDir();
    const experiment = loadExperiment(file, []);
    const logged: string[] = [];
    const cache = new Cache(path.join(dir, 'cache'));
    const produce = trainStage.produce({
      ...keyContext(guardReads('train', trainStage.reads(experiment.config)), experimentSources(experiment, cache), cache),
      settings: { threads: undefined, device: 'cpu' },
      dir: out,
      resumeDir: await tempDir(),
      upstream: { data, encode: { ...encode, dir: damaged } },
      progress: { update: () => undefined, log: (line) => logged.push(line) },
      signal: new AbortController().signal,
    });
    const error = await produce.then(() => undefined, (e: unknown) => e);
    expect(isUserError(error), String(error)).to.equal(true);
    expect(String(error)).to.match(/train: the training loss became NaN at epoch 1, batch 1, before any epoch finished/);
    expect(existsSync(path.join(out, 'head.safetensors'))).to.equal(false);
  });

  it('shows undefined measures (ROC-AUC of a split with one class) as "—", never a crash', () => {
    const split = { examples: 3, loss: 0.5, accuracy: 1, precision: 1, recall: 1, f1: 1, roc_auc: null };
    const table = formatMetrics({ backend: 'onnxruntime', kernel: 'ort-scan', best_epoch: 1, train: split, valid: split, test: { ...split, loss: Number.NaN } });
    expect(table.split('\n').filter((l) => l.includes('—'))).to.have.length(3);
    expect(table).to.match(/test\s*│ —/);
  });
});

