import { expect } from 'chai';
import { cp, readFile } from 'node:fs/promises';
import path from 'node:path';
import { Writable } from 'node:stream';
import { runExperiments } from '../../src/runner/run.js';
import { STAGES } from '../../src/stages/index.js';
import type { EvaluationReport } from '../../src/runner/evaluate-file.js';
import { makeReviewRows, makeReviews } from '../fixtures/reviews.js';
import { tinyBert } from '../fixtures/tiny-bert.js';
import { sentiment, tempDir, writeText, locationEnv, NO_TRACE } from '../helpers.js';

const csvField = (s: string) => `"${s.replace(/"/g, '""')}"`;

describe('sentiment evaluate', function () {
  this.timeout(600_000);
  let dir: string;
  let config: string;
  let env: Record<string, string>;
  const rows = makeReviewRows(40, 99);
  let csv: string;
  let jsonl: string;

  before(async () => {
    dir = await tempDir();
    await cp(await tinyBert(), path.join(dir, 'model'), { recursive: true });
    await makeReviews(path.join(dir, 'reviews'), { train: 300, test: 60 });
    config = await writeText(path.join(dir, 'exp.yaml'), 'MODEL: ./model\nDATASET: ./reviews\nMAX_LENGTH: 48\nN_EPOCHS: 6\nLEARNING_RATE: 0.005\nBATCH_SIZE: 32\nHIDDEN_DIM: 16\nBACKEND: onnxruntime\n');
    env = locationEnv(dir);
    await runExperiments({ stages: STAGES, experiments: [config], sets: [], cacheDir: env.SENTIMENT_CACHE_DIR, runsDir: env.SENTIMENT_RUNS_DIR, interactive: false, stream: new Writable({ write: (_c, _e, cb) => cb() }) });
    // Labels as the fixture's dataset has them (0/1, 1 = positive), plus two rows whose label maps to no class.
    csv = await writeText(path.join(dir, 'labelled.csv'), ['text,label', ...rows.map((r) => `${csvField(r.text)},${r.label}`), `${csvField(rows[0].text)},maybe`, `${csvField(rows[1].text)},maybe`].join('\n') + '\n');
    // The same rows with class names as labels.
    jsonl = await writeText(path.join(dir, 'labelled.jsonl'), rows.map((r) => JSON.stringify({ text: r.text, label: r.label === 1 ? 'positive' : 'negative' })).join('\n') + '\n');
  });

  it('--json: accuracy equals counting infer --file; the confusion matrix sums to the rows; ROC-AUC in [0, 1]', async () => {
    const r = await sentiment(['evaluate', '--config', config, '--file', csv, '--json'], env);
    expect(r.code, r.stderr).to.equal(0);
    const report = JSON.parse(r.stdout) as EvaluationReport;
    expect(report.rows).to.equal(rows.length + 2);
    expect(report.evaluated).to.equal(rows.length);
    expect(report.target).to.equal('negative');
    expect(report.other).to.equal('positive');

    const inferred = await sentiment(['infer', '--config', config, '--file', csv, '--json'], env);
    expect(inferred.code, inferred.stderr).to.equal(0);
    const predictions = (JSON.parse(inferred.stdout) as { predicted: string }[]).slice(0, rows.length);
    const correct = predictions.filter((p, i) => p.predicted === (rows[i].label === 1 ? 'positive' : 'negative')).length;
    expect(report.metrics.accuracy).to.be.closeTo(correct / rows.length, 1e-12);
    expect(report.metrics.examples).to.equal(rows.length);

    const { tp, fp, fn, tn } = report.confusion;
    expect(tp + fp + fn + tn).to.equal(rows.length);
    // TARGET is negative (label 0 in the file): actual negatives are TP + FN.
    expect(tp + fn).to.equal(rows.filter((x) => x.label === 0).length);
    expect((tp + tn) / rows.length).to.be.closeTo(report.metrics.accuracy, 1e-12);
    expect(report.metrics.roc_auc).to.be.within(0, 1);
    expect(report.metrics.loss).to.be.above(0);
    expect(report.roc[0]).to.deep.equal({ fpr: 0, tpr: 0, threshold: null });
    expect(report.roc.at(-1)).to.include({ fpr: 1, tpr: 1 });

    // The unmappable label is reported with its count, not silently dropped.
    expect(report.skipped).to.deep.include({ no_text: 0, no_label: 0, unmapped_label: 2 });
    expect(report.skipped.unmapped_values).to.deep.equal([{ value: 'maybe', count: 2 }]);
  });

  it('reads JSONL with class names as labels to the same metrics, and writes --out', async () => {
    const out = path.join(dir, 'eval.json');
    const r = await sentiment(['evaluate', '--config', config, '--file', jsonl, '--out', out], env);
    expect(r.code, r.stderr).to.equal(0);
    expect(r.stdout).to.contain('predicted negative');
    expect(r.stdout).to.match(/accuracy/);
    expect(r.stdout).to.contain(`written to ${out}`);
    const written = JSON.parse(await readFile(out, 'utf8')) as EvaluationReport;
    const fromCsv = JSON.parse((await sentiment(['evaluate', '--config', config, '--file', csv, '--json'], env)).stdout) as EvaluationReport;
    expect(written.evaluated).to.equal(rows.length);
    expect(written.confusion).to.deep.equal(fromCsv.confusion);
    expect(written.metrics.accuracy).to.equal(fromCsv.metrics.accuracy);
    expect(written.metrics.roc_auc).to.be.closeTo(fromCsv.metrics.roc_auc!, 1e-12);
  });

  it('the table reports unmapped labels with their count', async () => {
    const r = await sentiment(['evaluate', '--config', config, '--file', csv], env);
    expect(r.code, r.stderr).to.equal(0);
    expect(r.stdout).to.contain('2 with a label that maps to no class: "maybe" ×2');
    expect(r.stdout).to.contain(`${rows.length} of ${rows.length + 2} rows evaluated`);
  });

  it('--classes names the file\'s label values; --threshold splits numeric ones', async () => {
    const named = await writeText(path.join(dir, 'named.csv'), ['review;stars', ...rows.map((r) => `${csvField(r.text)};${r.label === 1 ? 'pos' : 'neg'}`)].join('\n') + '\n');
    const byName = await sentiment(['evaluate', '--config', config, '--file', named, '--text-column', 'review', '--label-column', 'stars', '--classes', 'neg,pos', '--json'], env);
    expect(byName.code, byName.stderr).to.equal(0);
    const scores = await writeText(path.join(dir, 'scores.csv'), ['text,score', ...rows.map((r, i) => `${csvField(r.text)},${r.label === 1 ? 0.5 + (i % 5) / 10 : (i % 5) / 10}`)].join('\n') + '\n');
    const byScore = await sentiment(['evaluate', '--config', config, '--file', scores, '--label-column', 'score', '--threshold', '0.5', '--json'], env);
    expect(byScore.code, byScore.stderr).to.equal(0);
    const [a, b] = [JSON.parse(byName.stdout), JSON.parse(byScore.stdout)] as EvaluationReport[];
    expect(a.evaluated).to.equal(rows.length);
    expect(b.confusion).to.deep.equal(a.confusion);
    // Without --classes, "neg"/"pos" match no class: an error that says how to name them.
    const unnamed = await sentiment(['evaluate', '--config', config, '--file', named, '--text-column', 'review', '--label-column', 'stars'], env);
    expect(unnamed.code).to.equal(1);
    expect(unnamed.stderr).to.contain(`none of its ${rows.length} records has both a text and a label`);
    expect(unnamed.stderr).to.contain('--classes');
  });

  it('a missing label column is an error naming the file and its columns', async () => {
    const noLabel = await writeText(path.join(dir, 'nolabel.csv'), `text,score\n${csvField(rows[0].text)},1\n`);
    const r = await sentiment(['evaluate', '--config', config, '--file', noLabel], env);
    expect(r.code).to.equal(1);
    expect(r.stderr).to.contain(`--file ${noLabel}:1: no column "label" (columns: text, score); choose one with --label-column`);
    expect(r.stderr).to.not.match(NO_TRACE);
    const noField = await writeText(path.join(dir, 'nolabel.jsonl'), `${JSON.stringify({ text: rows[0].text, stars: 1 })}\n`);
    const j = await sentiment(['evaluate', '--config', config, '--file', noField, '--json'], env);
    expect(j.code).to.equal(1);
    expect(JSON.parse(j.stdout).error).to.contain(`--file ${noField}: no record has the field "label" (fields of its first record: text, stars)`);
  });

  it('exits 2 for wrong usage: no model, --classes with --threshold, a bad --threshold', async () => {
    expect((await sentiment(['evaluate', '--file', csv], env)).code).to.equal(2);
    expect((await sentiment(['evaluate', '--config', config, '--file', csv, '--classes', 'a,b', '--threshold', '1'], env)).code).to.equal(2);
    const bad = await sentiment(['evaluate', '--config', config, '--file', csv, '--threshold', 'high'], env);
    expect(bad.code).to.equal(2);
    expect(bad.stderr).to.contain('--threshold high: expected a number');
  });
});
