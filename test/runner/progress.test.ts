import { expect } from 'chai';
import { ProgressLine } from '../../src/runner/progress.js';

describe('runner/progress', () => {
  it('shows rate and ETA, restarting the rate only when the phase changes', async () => {
    const lines: string[] = [];
    const p = new ProgressLine((l) => lines.push(l), () => {}, 0);
    p.update(0, 100, 'rows', 'epoch 1', 'loss 0.70');
    await new Promise((r) => setTimeout(r, 50));
    p.update(50, 100, 'rows', 'epoch 1', 'loss 0.60');
    expect(lines[1]).to.match(/^epoch 1: 50\/100 rows · [1-9][\d,]* rows\/s · ETA [\d.]+s · loss 0\.60$/);
  });
});
