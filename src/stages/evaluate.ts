import { writeFile } from 'node:fs/promises';
import path from 'node:path';
import type { Stage } from './stage.js';
import { METRICS_FILE, SPLITS, type Metrics } from '../training/metrics.js';
import { FEATURES_FILE } from '../features/features.js';
import { splitRows } from './train.js';
import { evaluateSplit, loadTrainedHead } from '../training/trained-head.js';

/** Measures the best head (the one train kept) on every split, in eval mode. */
export const evaluateStage: Stage<'evaluate', { BATCH_SIZE: number }, 'data' | 'encode' | 'train'> = {
  name: 'evaluate',
  // 2: metrics.json has the test split's confusion matrix and ROC curve.
  version: 2,
  upstream: ['data', 'encode', 'train'],
  // Rows are predicted BATCH_SIZE at a time, as in training; the engine is the one train used.
  reads: (config) => ({ BATCH_SIZE: config.BATCH_SIZE }),
  async produce(ctx) {
    const featuresFile = path.join(ctx.upstream.encode.dir, FEATURES_FILE);
    const { head, info } = await loadTrainedHead(ctx.upstream.train.dir);
    try {
      const result: Partial<Metrics> = { backend: head.backend, kernel: head.kernel, best_epoch: info.best_epoch };
      for (const split of SPLITS) {
        // A counter per split (each its own phase, so its own rate and ETA).
        const acc = await evaluateSplit(head, featuresFile, split, ctx.reads.BATCH_SIZE, (n) => ctx.progress.update(n, splitRows(ctx.upstream.data, split), 'rows', split), ctx.signal);
        result[split] = acc.result();
        if (split === 'test') {
          const { classes, target } = ctx.upstream.data.manifest.info;
          result.test_curves = { target, other: classes.find((c) => c !== target) ?? `not ${target}`, ...acc.curves() };
        }
      }
      await writeFile(path.join(ctx.dir, METRICS_FILE), JSON.stringify(result, null, 2));
      return { ...(result as Metrics), files: [METRICS_FILE] };
    } finally {
      head.dispose();
    }
  },
};
