import Table from 'cli-table3';
import { formatSeconds } from '../core/format.js';
import type { RunResult } from '../runner/run.js';
import type { SweepTrialResult } from '../runner/sweep.js';
import type { EvaluationReport } from '../runner/evaluate-file.js';
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

/** `sentiment evaluate` for people: what was read, the metrics, and the confusion matrix. */
export function formatEvaluation(report: EvaluationReport): string {
  const { skipped, confusion: c, target, other } = report;
  const out = [`${report.file}: ${report.evaluated.toLocaleString('en-US')} of ${report.rows.toLocaleString('en-US')} rows evaluated (the head predicts "${target}")`];
  const skips = [
    skipped.no_text ? `${skipped.no_text} without text` : '',
    skipped.no_label ? `${skipped.no_label} without a label` : '',
    skipped.unmapped_label
      ? `${skipped.unmapped_label} with a label that maps to no class: ${skipped.unmapped_values.map((v) => `${JSON.stringify(v.value)} ×${v.count}`).join(', ')}${skipped.unmapped_values.reduce((n, v) => n + v.count, 0) < skipped.unmapped_label ? ', …' : ''}`
      : '',
  ].filter(Boolean);
  if (skips.length) out.push(`skipped: ${skips.join('; ')}`);
  const m = report.metrics;
  const metrics = new Table({ head: ['loss', 'accuracy', 'precision', 'recall', 'F1', 'ROC-AUC', 'examples'], style: { head: [], border: [] } });
  metrics.push([formatMeasure(m.loss), formatPercent(m.accuracy), formatPercent(m.precision), formatPercent(m.recall), formatPercent(m.f1), formatMeasure(m.roc_auc), m.examples]);
  const confusion = new Table({ head: ['', `predicted ${target}`, `predicted ${other}`], style: { head: [], border: [] } });
  confusion.push([`actual ${target}`, `${c.tp} (TP)`, `${c.fn} (FN)`], [`actual ${other}`, `${c.fp} (FP)`, `${c.tn} (TN)`]);
  out.push(metrics.toString(), confusion.toString());
  return out.join('\n');
}

/** One sweep trial's outcome in a line: its measures when done, its last epoch when stopped, else why not. */
export function trialLine(t: SweepTrialResult): string {
  const m = t.metrics;
  const last = t.history.at(-1);
  switch (t.status) {
    case 'done':
      return m ? `valid loss ${formatMeasure(m.valid.loss)}  test acc ${formatPercent(m.test.accuracy)}  (${t.epochs} epoch${t.epochs === 1 ? '' : 's'})` : 'done';
    case 'stopped':
      return `stopped after epoch ${last?.epoch ?? t.epochs}: ${t.stopped}`;
    case 'failed':
      return `FAILED: ${t.error}`;
    default:
      return t.status;
  }
}
