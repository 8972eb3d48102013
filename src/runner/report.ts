import { writeFile } from 'node:fs/promises';
import path from 'node:path';
import type { EpochRecord } from '../stages/train.js';
import type { Metrics } from '../stages/evaluate.js';

/** One line chart per measure (loss, accuracy) of train vs valid over epochs, as SVG. */
async function learningCurve(history: EpochRecord[], measure: 'loss' | 'accuracy'): Promise<string> {
  const vega = await import('vega');
  const { compile } = await import('vega-lite');
  const values = history.flatMap((h) => [
    { epoch: h.epoch, split: 'train', value: measure === 'loss' ? h.train_loss : h.train_accuracy },
    { epoch: h.epoch, split: 'valid', value: measure === 'loss' ? h.valid_loss : h.valid_accuracy },
  ]);
  const { spec } = compile({
    width: 360,
    height: 220,
    title: measure,
    data: { values },
    mark: { type: 'line', point: true },
    encoding: {
      x: { field: 'epoch', type: 'quantitative', axis: { tickMinStep: 1 } },
      y: { field: 'value', type: 'quantitative', title: measure, scale: { zero: false } },
      color: { field: 'split', type: 'nominal' },
    },
  });
  return new vega.View(vega.parse(spec), { renderer: 'none' }).toSVG();
}

const escape = (s: string) => s.replace(/[&<>"]/g, (c) => ({ '&': '&amp;', '<': '&lt;', '>': '&gt;', '"': '&quot;' })[c]!);

/** report.html: learning curves and the metrics table, self-contained (no scripts, no network). */
export async function writeReport(runDir: string, experiment: string, history: EpochRecord[], metrics: Metrics): Promise<string> {
  const rows = (['train', 'valid', 'test'] as const)
    .map((s) => {
      const m = metrics[s];
      const cells = [m.examples, m.loss.toFixed(4), pct(m.accuracy), pct(m.precision), pct(m.recall), pct(m.f1), m.roc_auc.toFixed(4)];
      return `<tr><th>${s}</th>${cells.map((c) => `<td>${c}</td>`).join('')}</tr>`;
    })
    .join('\n');
  const html = `<!doctype html>
<meta charset="utf-8">
<title>${escape(experiment)}: sentiment run report</title>
<style>body{font-family:system-ui,sans-serif;margin:2em}table{border-collapse:collapse}td,th{padding:.3em .8em;border-bottom:1px solid #ddd;text-align:right}figure{display:inline-block;margin:0 2em 1em 0}</style>
<h1>${escape(experiment)}</h1>
<p>backend ${escape(metrics.backend)} · kernel ${escape(metrics.kernel)} · best epoch ${metrics.best_epoch} of ${history.length}</p>
<table><tr><th></th><th>examples</th><th>loss</th><th>accuracy</th><th>precision</th><th>recall</th><th>F1</th><th>ROC-AUC</th></tr>
${rows}
</table>
<h2>Learning curves</h2>
<figure>${await learningCurve(history, 'loss')}</figure>
<figure>${await learningCurve(history, 'accuracy')}</figure>
`;
  const file = path.join(runDir, 'report.html');
  await writeFile(file, html);
  return file;
}

function pct(x: number): string {
  return `${(100 * x).toFixed(2)}%`;
}
