import { expect } from 'chai';
import { cp, readFile } from 'node:fs/promises';
import path from 'node:path';
import { Writable } from 'node:stream';
import { readArrowBatches } from '../../src/runner/arrow.js';
import { runExperiments } from '../../src/runner/run.js';
import { makeReviews } from '../fixtures/reviews.js';
import { tinyBert } from '../fixtures/tiny-bert.js';
import { sentiment, tempDir, writeText } from '../helpers.js';

const NEGATIVE = 'the movie was terrible. a waste of time.';
const POSITIVE = 'the movie was great. highly recommend.';

describe('sentiment infer, export, and run with TRAIN: false', function () {
  this.timeout(600_000);
  let dir: string;
  let file: string;
  let env: Record<string, string>;

  before(async () => {
    dir = await tempDir();
    await cp(await tinyBert(), path.join(dir, 'model'), { recursive: true });
    await makeReviews(path.join(dir, 'reviews'), { train: 600, test: 100 });
    file = await writeText(path.join(dir, 'exp.yaml'), 'MODEL: ./model\nDATASET: ./reviews\nMAX_LENGTH: 48\nN_EPOCHS: 10\nLEARNING_RATE: 0.005\nBATCH_SIZE: 32\nHIDDEN_DIM: 16\nBACKEND: onnxruntime\n');
    env = { SENTIMENT_CACHE_DIR: path.join(dir, 'cache'), SENTIMENT_RUNS_DIR: path.join(dir, 'runs') };
    await runExperiments({ experiments: [file], sets: [], cacheDir: env.SENTIMENT_CACHE_DIR, runsDir: env.SENTIMENT_RUNS_DIR, interactive: false, stream: new Writable({ write: (_c, _e, cb) => cb() }) });
  });

  it('finds the trained head through the cache and ranks a negative text above a positive one', async () => {
    const neg = await sentiment(['infer', '--config', file, '--text', NEGATIVE, '--json'], env);
    const pos = await sentiment(['infer', '--config', file, '--text', POSITIVE, '--json'], env);
    expect(neg.code, neg.stderr).to.equal(0);
    const [n, p] = [JSON.parse(neg.stdout), JSON.parse(pos.stdout)];
    expect(Object.keys(n)).to.deep.equal(['text', 'probability', 'label']);
    expect(n.text).to.equal(NEGATIVE);
    expect(n.probability).to.be.above(p.probability);
    expect(n.label).to.equal('negative');
    expect(p.label).to.equal('positive');
  });

  it('exits 1 for a config that was never trained, saying which command trains it', async () => {
    const r = await sentiment(['infer', '--config', file, '--set', 'HIDDEN_DIM=3', '--text', 'x'], env);
    expect(r.code).to.equal(1);
    expect(r.stderr).to.contain(`sentiment run ${file} --set HIDDEN_DIM=3`);
    expect(r.stderr).to.not.match(/\n\s+at /);
  });

  it('exits 2 without exactly one of --text and --file', async () => {
    expect((await sentiment(['infer', '--config', file], env)).code).to.equal(2);
    expect((await sentiment(['infer', '--config', file, '--text', 'a', '--file', 'b.txt'], env)).code).to.equal(2);
  });

  it('--file keeps one output row per input row, marking rows without text', async () => {
    const txt = await writeText(path.join(dir, 'in.txt'), `${POSITIVE}\n\n${NEGATIVE}\n`);
    const r = await sentiment(['infer', '--config', file, '--file', txt], env);
    expect(r.code, r.stderr).to.equal(0);
    const rows = r.stdout.trim().split('\n').map((l) => JSON.parse(l));
    expect(rows.map((x) => x.line)).to.deep.equal([1, 2, 3]);
    expect(rows[1]).to.include({ probability: null, error: 'empty line' });
    expect(rows[2].probability).to.be.above(rows[0].probability);
    expect(r.stderr).to.match(/3 rows .*1 without usable text/);
  });

  it('--file reads CSV and JSONL columns and writes CSV and Arrow', async () => {
    const csv = await writeText(path.join(dir, 'in.csv'), `id,review\n1,"${POSITIVE}"\n2,"${NEGATIVE}"\n`);
    const outArrow = path.join(dir, 'out.arrow');
    expect((await sentiment(['infer', '--config', file, '--file', csv, '--text-column', 'review', '--out', outArrow], env)).code).to.equal(0);
    const texts: string[] = [];
    for await (const b of readArrowBatches(outArrow)) for (let i = 0; i < b.numRows; i++) texts.push(b.getChild('text')!.get(i) as string);
    expect(texts).to.deep.equal([POSITIVE, NEGATIVE]);
    const jsonl = await writeText(path.join(dir, 'in.jsonl'), `{"body":"${POSITIVE}"}\nnot json\n`);
    const outCsv = path.join(dir, 'out.csv');
    expect((await sentiment(['infer', '--config', file, '--file', jsonl, '--text-column', 'body', '--out', outCsv], env)).code).to.equal(0);
    const lines = (await readFile(outCsv, 'utf8')).trim().split('\n');
    expect(lines[0]).to.equal('line,text,probability,label,error');
    expect(lines).to.have.length(3);
    expect(lines[2]).to.match(/^2,,,,"invalid JSON/);
    const missing = await sentiment(['infer', '--config', file, '--file', csv], env);
    expect(missing.code).to.equal(1);
    expect(missing.stderr).to.contain('no column "text" (columns: id, review)');
  });

  it('export writes a self-contained folder that infer --model uses without the cache', async () => {
    const out = path.join(dir, 'exported');
    const r = await sentiment(['export', '--config', file, '--out', out], env);
    expect(r.code, r.stderr).to.equal(0);
    const viaConfig = JSON.parse((await sentiment(['infer', '--config', file, '--text', NEGATIVE, '--json'], env)).stdout);
    const elsewhere = { SENTIMENT_CACHE_DIR: path.join(dir, 'empty-cache') };
    const viaModel = await sentiment(['infer', '--model', out, '--text', NEGATIVE, '--json'], elsewhere);
    expect(viaModel.code, viaModel.stderr).to.equal(0);
    expect(JSON.parse(viaModel.stdout)).to.deep.equal(viaConfig);
  });

  it('run with TRAIN: false predicts TEXT with the trained head, and refuses an untrained config', async () => {
    const r = await sentiment(['run', file, '--set', 'TRAIN=false', '--set', `TEXT=${NEGATIVE}`, '--json'], env);
    expect(r.code, r.stderr).to.equal(0);
    const doc = JSON.parse(r.stdout);
    expect(doc.stages.map((s: { name: string }) => s.name)).to.not.include('evaluate');
    expect(doc.stages.find((s: { name: string }) => s.name === 'train').cached).to.equal(true);
    expect(doc.prediction).to.include({ text: NEGATIVE, label: 'negative' });
    const untrained = await sentiment(['run', file, '--set', 'TRAIN=false', '--set', 'HIDDEN_DIM=3'], env);
    expect(untrained.code).to.equal(1);
    expect(untrained.stderr).to.contain('TRAIN is false, but this config has no trained head yet');
  });
});

