import { writeFile } from 'node:fs/promises';
import path from 'node:path';
import type { EpochRecord } from '../training/trained-head.js';
import type { Metrics } from '../training/metrics.js';
import { formatMeasure, formatPercent } from '../training/metrics.js';

/** The splits in one order and one colour each, in every chart of both reports. */
const SPLIT_SCALE = { domain: ['train', 'valid', 'test'], range: ['#4c78a8', '#f58518', '#54a24b'] };

/** One line chart per measure (loss, accuracy) of train vs valid over epochs, the kept epoch marked, as SVG. */
async function learningCurve(history: EpochRecord[], measure: 'loss' | 'accuracy', bestEpoch: number): Promise<string> {
  const vega = await import('vega');
  const { compile } = await import('vega-lite');
  const values = history.flatMap((h) => [
    { epoch: h.epoch, split: 'train', value: measure === 'loss' ? h.train_loss : h.train_accuracy },
    { epoch: h.epoch, split: 'valid', value: measure === 'loss' ? h.valid_loss : h.valid_accuracy },
  ]);
  const { spec } = compile({
    width: 360,
    height: 220,
    title: { text: measure, subtitle: `dashed line: the kept head (epoch ${bestEpoch})` },
    layer: [
      {
        data: { values },
        mark: { type: 'line', point: true },
        encoding: {
          x: { field: 'epoch', type: 'quantitative', axis: { tickMinStep: 1 } },
          y: { field: 'value', type: 'quantitative', title: measure, scale: { zero: false } },
          color: { field: 'split', type: 'nominal', scale: { domain: SPLIT_SCALE.domain.slice(0, 2), range: SPLIT_SCALE.range.slice(0, 2) } },
        },
      },
      { data: { values: [{ epoch: bestEpoch }] }, mark: { type: 'rule', strokeDash: [4, 3], color: '#888' }, encoding: { x: { field: 'epoch', type: 'quantitative' } } },
    ],
  } as never);
  return new vega.View(vega.parse(spec), { renderer: 'none' }).toSVG();
}

/** The test split's ROC curve with the chance diagonal, as SVG. */
async function rocChart(points: { fpr: number; tpr: number }[], auc: number | null): Promise<string> {
  const vega = await import('vega');
  const { compile } = await import('vega-lite');
  const { spec } = compile({
    width: 260,
    height: 260,
    title: { text: 'ROC curve (test)', subtitle: `AUC ${formatMeasure(auc)}` },
    layer: [
      { data: { values: [{ fpr: 0, tpr: 0 }, { fpr: 1, tpr: 1 }] }, mark: { type: 'line', strokeDash: [4, 3], color: '#aaa' }, encoding: { x: { field: 'fpr', type: 'quantitative' }, y: { field: 'tpr', type: 'quantitative' } } },
      {
        data: { values: points },
        mark: { type: 'line', color: SPLIT_SCALE.range[2] },
        encoding: {
          x: { field: 'fpr', type: 'quantitative', title: 'false positive rate', scale: { domain: [0, 1] } },
          y: { field: 'tpr', type: 'quantitative', title: 'true positive rate', scale: { domain: [0, 1] } },
          order: { field: 'fpr' },
        },
      },
    ],
  } as never);
  return new vega.View(vega.parse(spec), { renderer: 'none' }).toSVG();
}

/** The test split's confusion matrix, rows the actual class, columns the predicted one (TARGET first). */
function confusionTable(c: NonNullable<Metrics['test_curves']>): string {
  const { tp, fp, fn, tn } = c.confusion;
  const t = escape(c.target);
  const o = escape(c.other);
  return `<table><tr><th>test</th><th>predicted ${t}</th><th>predicted ${o}</th></tr>
<tr><th>actual ${t}</th><td>${tp}</td><td>${fn}</td></tr>
<tr><th>actual ${o}</th><td>${fp}</td><td>${tn}</td></tr></table>`;
}

const escape = (s: string) => s.replace(/[&<>"]/g, (c) => ({ '&': '&amp;', '<': '&lt;', '>': '&gt;', '"': '&quot;' })[c]!);

/** report.html: learning curves and the metrics table, self-contained (no scripts, no network). */
export async function writeReport(runDir: string, experiment: string, history: EpochRecord[], metrics: Metrics, configYaml?: string): Promise<string> {
  const rows = (['train', 'valid', 'test'] as const)
    .map((s) => {
      const m = metrics[s];
      const cells = [m.examples, formatMeasure(m.loss), pct(m.accuracy), pct(m.precision), pct(m.recall), pct(m.f1), formatMeasure(m.roc_auc)];
      return `<tr><th>${s}</th>${cells.map((c) => `<td>${c}</td>`).join('')}</tr>`;
    })
    .join('\n');
  const html = `<!doctype html>
<meta charset="utf-8">
<title>${escape(experiment)}: sentiment run report</title>
<style>body{font-family:system-ui,sans-serif;margin:2em}table{border-collapse:collapse}td,th{padding:.3em .8em;border-bottom:1px solid #ddd;text-align:right}figure{display:inline-block;margin:0 2em 1em 0}.note{color:#555;max-width:60em}pre{background:#f6f6f6;padding:1em;display:inline-block}</style>
<h1>${escape(experiment)}</h1>
<p>backend ${escape(metrics.backend)} · kernel ${escape(metrics.kernel)} · best epoch ${metrics.best_epoch} of ${history.length}</p>
<table><tr><th></th><th>examples</th><th>loss</th><th>accuracy</th><th>precision</th><th>recall</th><th>F1</th><th>ROC-AUC</th></tr>
${rows}
</table>
<p class="note">The table measures the kept head (best valid loss) in eval mode, without dropout, after training. The curves' train values are
averaged over each epoch while the head was still changing, with dropout, as the original reports them; so the table's train row is
better than the curve's last train point.</p>
${metrics.test_curves ? `<h2>Test split</h2>\n<figure>${confusionTable(metrics.test_curves)}</figure><figure>${await rocChart(metrics.test_curves.roc, metrics.test.roc_auc)}</figure>` : ''}
<h2>Learning curves</h2>
<figure>${await learningCurve(history, 'loss', metrics.best_epoch)}</figure>
<figure>${await learningCurve(history, 'accuracy', metrics.best_epoch)}</figure>
${configYaml ? `<h2>Configuration</h2>\n<pre>${escape(configYaml)}</pre>` : ''}
`;
  const file = path.join(runDir, 'report.html');
  await writeFile(file, html);
  return file;
}

const pct = formatPercent;

/** comparison.html: the trials' metrics side by side and their valid-loss curves, self-contained. */
export async function writeSweepReport(
  dir: string,
  sweep: string,
  trials: import('./sweep.js').SweepTrialResult[],
  histories: { trial: string; epoch: number; valid_loss: number; train_loss: number }[],
): Promise<string> {
  const vega = await import('vega');
  const { compile } = await import('vega-lite');
  const svg = async (spec: Parameters<typeof compile>[0]) => new vega.View(vega.parse(compile(spec).spec), { renderer: 'none' }).toSVG();
  const done = trials.filter((t) => t.metrics);
  const bars = done.flatMap((t) =>
    (['train', 'valid', 'test'] as const).map((split) => ({ trial: `${t.id} ${t.label}`, split, accuracy: t.metrics![split].accuracy, loss: t.metrics![split].loss })),
  );
  const bar = (measure: 'accuracy' | 'loss') =>
    svg({
      title: measure,
      data: { values: bars },
      // Dots, not bars: the axis starts near the smallest value, and a bar would then be as long as its distance from there.
      mark: { type: 'point', filled: true, size: 90 },
      encoding: {
        // Full trial labels (no truncation), splits in the run report's order and colours.
        y: { field: 'trial', type: 'nominal', sort: null, title: null, axis: { labelLimit: 0 } },
        yOffset: { field: 'split', sort: SPLIT_SCALE.domain },
        // Trials often differ by a little: the axis starts near the smallest value, not at zero.
        x: { field: measure, type: 'quantitative', scale: { zero: false } },
        color: { field: 'split', type: 'nominal', scale: SPLIT_SCALE },
      },
      width: 360,
    });
  const curves = histories.length
    ? await svg({
        title: 'valid loss by epoch',
        data: { values: histories },
        mark: { type: 'line', point: true },
        encoding: {
          x: { field: 'epoch', type: 'quantitative', axis: { tickMinStep: 1 } },
          y: { field: 'valid_loss', type: 'quantitative', scale: { zero: false } },
          color: { field: 'trial', type: 'nominal', legend: { labelLimit: 0 } },
        },
        width: 420,
        height: 260,
      })
    : '';
  const rows = trials
    .map((t) => {
      const m = t.metrics;
      // A stopped trial was not evaluated: its last epoch's valid measures.
      const last = t.status === 'stopped' ? t.history.at(-1) : undefined;
      const cells = m
        ? [formatMeasure(m.valid.loss), pct(m.valid.accuracy), formatMeasure(m.test.loss), pct(m.test.accuracy), formatMeasure(m.test.roc_auc)]
        : last
          ? [formatMeasure(last.valid_loss), pct(last.valid_accuracy), '', '', '']
          : ['', '', '', '', ''];
      return `<tr><th>${escape(t.id)}</th><td style="text-align:left">${escape(t.label)}</td><td>${t.status}</td><td>${t.epochs}</td>${cells.map((c) => `<td>${c}</td>`).join('')}<td style="text-align:left">${escape(t.error ?? t.stopped ?? '')}</td></tr>`;
    })
    .join('\n');
  const html = `<!doctype html>
<meta charset="utf-8">
<title>${escape(sweep)}: sweep comparison</title>
<style>body{font-family:system-ui,sans-serif;margin:2em}table{border-collapse:collapse}td,th{padding:.3em .8em;border-bottom:1px solid #ddd;text-align:right}figure{display:inline-block;margin:0 2em 1em 0}</style>
<h1>${escape(sweep)}</h1>
<p>Trials sorted by valid loss (stopped trials after finished ones, by their last epoch's).</p>
<table><tr><th>trial</th><th>overrides</th><th>status</th><th>epochs</th><th>valid loss</th><th>valid accuracy</th><th>test loss</th><th>test accuracy</th><th>test ROC-AUC</th><th>error</th></tr>
${rows}
</table>
${done.length ? `<figure>${await bar('accuracy')}</figure><figure>${await bar('loss')}</figure>` : ''}
${curves ? `<figure>${curves}</figure>` : ''}
`;
  const file = path.join(dir, 'comparison.html');
  await writeFile(file, html);
  return file;
}
