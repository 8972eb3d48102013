import Table from 'cli-table3';
import { formatSeconds } from '../core/format.js';
import type { RunResult } from '../runner/run.js';
import { formatMeasure, formatPercent, type Metrics } from '../training/metrics.js';

/** Plain-text summary of a run, for the terminal. */
export function formatRun(result: RunResult): string {
  const width = Math.max(...result.stages.map((s) => s.name.length));
  const lines = result.stages.map((s) => `  ${s.name.padEnd(width)}  ${s.cached ? 'cached  ' : 'computed'}  ${formatSeconds(s.seconds).padStart(6)}  ${s.path}`);
  const out = [`${result.experiment}: run folder ${result.run_dir}`, ...lines];
  if (result.metrics) out.push(`backend ${result.backend}, best epoch ${result.metrics.best_epoch}`, formatMetrics(result.metrics));
  if (result.prediction) out.push(`${JSON.stringify(result.prediction.text)}: ${result.prediction.probability.toFixed(4)} → ${result.prediction.label}`);
  return out.join('\n');
}

/** The original's numbers (loss, accuracy per split) and the rest, as a table. */
export function formatMetrics(metrics: Metrics): string {
  const table = new Table({ head: ['', 'loss', 'accuracy', 'precision', 'recall', 'F1', 'ROC-AUC', 'examples'], style: { head: [], border: [] } });
  for (const split of ['train', 'valid', 'test'] as const) {
    const m = metrics[split];
    const pct = formatPercent;
    table.push([split, formatMeasure(m.loss), pct(m.accuracy), pct(m.precision), pct(m.recall), pct(m.f1), formatMeasure(m.roc_auc), m.examples]);
  }
  return table.toString();
}
