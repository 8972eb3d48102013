// How fast training reads its features from the cache (issue 15): one epoch of the train stage's own
// batches (trainingBatches: record batches in seeded random order, float16 decoded, rows pooled, sorted and
// padded) over an encode entry's features.arrow, without training. Compare seconds per batch with the
// head's step time (bench/gru-vs-torch.ts) to see whether reading limits an epoch.
//
// Usage: npx tsx bench/feature-read.ts CACHE/encode/KEY/features.arrow [--split train] [--batch 128] [--epochs 2]
// Prints one JSON line per epoch (the first may read from disk, later ones from the page cache).
import { stat } from 'node:fs/promises';
import { parseArgs } from 'node:util';
import { trainingBatches } from '../src/training/batches.js';

const { values, positionals } = parseArgs({
  options: {
    split: { type: 'string', default: 'train' },
    batch: { type: 'string', default: '128' },
    epochs: { type: 'string', default: '2' },
  },
  allowPositionals: true,
});
const [file] = positionals;
if (!file) throw new Error('usage: bench/feature-read.ts FEATURES_ARROW [--split train] [--batch 128] [--epochs 2]');
const bytes = (await stat(file)).size;
for (let epoch = 0; epoch < Number(values.epochs); epoch++) {
  const started = performance.now();
  let batches = 0;
  let rows = 0;
  let paddedValues = 0;
  for await (const batch of trainingBatches(file, values.split, Number(values.batch), 12345, epoch)) {
    batches++;
    rows += batch.batch;
    paddedValues += batch.x.length;
  }
  const seconds = (performance.now() - started) / 1000;
  console.log(
    JSON.stringify({
      bench: 'feature-read',
      epoch,
      split: values.split,
      file_gib: Number((bytes / 2 ** 30).toFixed(2)),
      rows,
      batches,
      seconds: Number(seconds.toFixed(1)),
      seconds_per_batch: Number((seconds / batches).toFixed(3)),
      file_gib_per_s: Number((bytes / 2 ** 30 / seconds).toFixed(2)),
      padded_float32_gib: Number(((paddedValues * 4) / 2 ** 30).toFixed(2)),
      peak_rss_mib: Math.round(process.resourceUsage().maxRSS / 1024),
    }),
  );
}
