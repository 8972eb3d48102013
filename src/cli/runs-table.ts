import Table from 'cli-table3';
import type { PastRun } from '../runner/runs.js';
import { formatPercent } from '../training/metrics.js';

/** `K=V K=V`, as --set would take them. */
export function formatOverrides(overrides: Record<string, unknown>): string {
  return Object.entries(overrides)
    .map(([k, v]) => `${k}=${typeof v === 'string' ? v : JSON.stringify(v)}`)
    .join(' ');
}

/** Past runs as a table, newest first (as given). */
export function formatRuns(runs: PastRun[]): string {
  const table = new Table({ head: ['experiment', 'time', 'overrides', 'test accuracy', 'status'], style: { head: [], border: [] } });
  for (const r of runs) {
    const status = r.status === 'failed' && r.error ? `failed: ${r.error.length > 60 ? `${r.error.slice(0, 59)}…` : r.error}` : r.status;
    table.push([r.experiment, r.time.replace('T', ' ').replace(/Z$/, ''), formatOverrides(r.overrides), r.test_accuracy === undefined ? '' : formatPercent(r.test_accuracy), status]);
  }
  return table.toString();
}
