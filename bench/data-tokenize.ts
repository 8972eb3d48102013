// Throughput of the data and tokenize stages on the full IMDB train split (25,000 reviews) from
// ../shared, with the real bert-base-uncased tokenizer, in a fresh cache: once on one thread and once
// on one worker thread per core, in the same run. Prints one JSON line each.
import { existsSync } from 'node:fs';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { Writable } from 'node:stream';
import { loadExperiment } from '../src/config/experiment.js';
import { runStages } from '../src/runner/pipeline.js';
import { STAGES } from '../src/stages/index.js';
import type { TokenizeInfo } from '../src/stages/tokenize.js';

const shared = path.resolve(import.meta.dirname, '../../shared');
const train = path.join(shared, 'data/imdb/train.jsonl');
const tokenizer = path.join(shared, 'tokenizers/bert-base-uncased');
if (!existsSync(train) || !existsSync(tokenizer)) {
  console.log(JSON.stringify({ bench: 'data+tokenize', skipped: `needs ${train} and ${tokenizer}` }));
  process.exit(0);
}

async function measure(threads: number) {
  process.env.SENTIMENT_THREADS = String(threads);
  const dir = await mkdtemp(path.join(os.tmpdir(), 'sentiment-bench-'));
  try {
    // The train file alone: every one of its 25,000 reviews goes through both stages.
    const file = path.join(dir, 'bench.yaml');
    await writeFile(file, `DATASET: { path: ${JSON.stringify(train)} }\nMODEL: ${JSON.stringify(tokenizer)}\nMAX_LENGTH: 512\n`);
    const quiet = new Writable({ write: (_c, _e, cb) => cb() });
    const result = await runStages(loadExperiment(file), STAGES, { cacheDir: path.join(dir, 'cache'), runsDir: path.join(dir, 'runs'), until: 'tokenize', interactive: false, stream: quiet });
    const [data, tokenize] = result.stages;
    const info = tokenize.info as TokenizeInfo;
    const rows = info.rows;
    const tokens = info.tokens;
    return {
      bench: 'data+tokenize',
      threads: info.threads,
      reviews: rows,
      tokens,
      data_seconds: +data.seconds.toFixed(2),
      data_reviews_per_s: Math.round(rows / data.seconds),
      tokenize_seconds: +tokenize.seconds.toFixed(2),
      tokenize_reviews_per_s: Math.round(rows / tokenize.seconds),
      tokenize_tokens_per_s: Math.round(tokens / tokenize.seconds),
      total_reviews_per_s: Math.round(rows / (data.seconds + tokenize.seconds)),
    };
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
}

// Single-threaded first, so the process's peak RSS after it is that configuration's.
const single = await measure(1);
console.log(JSON.stringify({ ...single, peak_rss_mib: Math.round(process.resourceUsage().maxRSS / 1024) }));
const parallel = await measure(os.availableParallelism());
console.log(
  JSON.stringify({
    ...parallel,
    peak_rss_mib: Math.round(process.resourceUsage().maxRSS / 1024),
    tokenize_speedup_vs_1_thread: +(single.tokenize_seconds / parallel.tokenize_seconds).toFixed(2),
  }),
);
