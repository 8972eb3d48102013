import type { Progress } from '../core/progress.js';

import { formatCount, formatSeconds } from '../core/format.js';

const UNIT_SCALE: Record<string, [number, string]> = { bytes: [1024 * 1024, 'MiB'] };

/**
 * Turns progress updates into one status line with rate and ETA, at most every `intervalMs`
 * (frequent on a terminal, sparse in logs).
 */
export class ProgressLine implements Progress {
  private started = performance.now();
  private lastEmit = 0;
  private phase?: string;

  constructor(
    private readonly emit: (line: string) => void,
    private readonly logLine: (line: string) => void,
    private readonly intervalMs: number,
  ) {}

  update(done: number, total: number | undefined, unit: string, phase?: string, note?: string): void {
    const now = performance.now();
    if (phase !== this.phase) {
      this.phase = phase;
      this.started = now;
      this.lastEmit = 0;
    }
    const finished = total !== undefined && done >= total;
    if (!finished && now - this.lastEmit < this.intervalMs) return;
    this.lastEmit = now;
    const elapsed = (now - this.started) / 1000;
    const rate = elapsed > 0 ? done / elapsed : 0;
    const [scale, shown] = UNIT_SCALE[unit] ?? [1, unit];
    const fmt = (n: number) => (scale === 1 ? formatCount(n) : (n / scale).toFixed(1));
    const amount = total !== undefined ? `${fmt(done)}/${fmt(total)} ${shown}` : `${fmt(done)} ${shown}`;
    const parts = [phase ? `${phase}: ${amount}` : amount, `${fmt(rate)} ${shown}/s`];
    if (total !== undefined && rate > 0 && !finished) parts.push(`ETA ${formatSeconds((total - done) / rate)}`);
    if (note) parts.push(note);
    this.emit(parts.join(' · '));
  }

  log(message: string): void {
    this.logLine(message);
  }
}
