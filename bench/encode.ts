// Throughput and peak memory of the encode stage's batching on 2,000 IMDB reviews (1,000 train +
// 1,000 test, class-balanced) from ../shared with imdb-bert-tiny, MAX_LENGTH 512, float16: with length
// sorting (the stage's default) and without. Data and tokenize run first in this process; each variant
// then runs in its own process (so its peak RSS is its own). Prints one JSON line.
import { spawnSync } from 'node:child_process';
import { existsSync, statSync } from 'node:fs';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { Writable } from 'node:stream';
import { fileURLToPath } from 'node:url';
import { loadExperiment } from '../src/config/experiment.js';
import { runStages } from '../src/runner/pipeline.js';
import { dataStage } from '../src/stages/data.js';
import { tokenizeStage, TOKENS_FILE } from '../src/stages/tokenize.js';
import { encodeTokensFile } from '../src/stages/encode.js';
import { DEFAULT_BATCHING, loadEncoder } from '../src/encoder/encoder.js';

const shared = path.resolve(import.meta.dirname, '../../shared');
const imdb = path.join(shared, 'data/imdb');
const model = path.join(shared, 'models/imdb-bert-tiny');
const REVIEWS = 2000;

/** One variant, in a child process: load the encoder, encode tokens.arrow, report. */
async function variant(tokensFile: string, outFile: string, sortByLength: boolean): Promise<void> {
  const loadStart = performance.now();
  const encoder = await loadEncoder(model, { device: 'cpu' });
  const loadSeconds = (performance.now() - loadStart) / 1000;
  const start = performance.now();
  const info = await encodeTokensFile({ tokensFile, outFile, encoder, dtype: 'float16', batching: { sortByLength } });
  const seconds = (performance.now() - start) / 1000;
  await encoder.dispose();
  console.log(
    JSON.stringify({
      seconds: +seconds.toFixed(2),
      load_seconds: +loadSeconds.toFixed(2),
      tokens_per_s: Math.round(info.tokens / seconds),
      reviews_per_s: Math.round(info.rows / seconds),
      batches: info.batches,
      padding_share: +(1 - info.tokens / info.padded_tokens).toFixed(3),
      peak_rss_mib: Math.round(process.resourceUsage().maxRSS / 1024),
      output_mib: +(statSync(outFile).size / 2 ** 20).toFixed(1),
      rows: info.rows,
      tokens: info.tokens,
    }),
  );
}

async function main(): Promise<void> {
  if (!existsSync(path.join(imdb, 'train.jsonl')) || !existsSync(path.join(model, 'onnx/model.onnx'))) {
    console.log(JSON.stringify({ bench: 'encode', skipped: `needs ${imdb}/{train,test}.jsonl and ${model}/onnx/model.onnx` }));
    return;
  }
  const dir = await mkdtemp(path.join(os.tmpdir(), 'sentiment-bench-encode-'));
  try {
    const file = path.join(dir, 'bench.yaml');
    await writeFile(
      file,
      `DATASET: ${JSON.stringify(imdb)}\nMODEL: ${JSON.stringify(model)}\nMAX_LENGTH: 512\nMAX_TRAIN_EXAMPLES: ${REVIEWS / 2}\nMAX_TEST_EXAMPLES: ${REVIEWS / 2}\nENCODER_DTYPE: float16\n`,
    );
    const quiet = new Writable({ write: (_c, _e, cb) => cb() });
    const result = await runStages(loadExperiment(file), [dataStage, tokenizeStage], { cacheDir: path.join(dir, 'cache'), runsDir: path.join(dir, 'runs'), interactive: false, stream: quiet });
    const tokensFile = path.join(result.stages[1].path, TOKENS_FILE);
    const results: Record<string, unknown> = {};
    for (const [name, sort] of [['sorted', true], ['unsorted', false]] as const) {
      const r = spawnSync(process.execPath, ['--import', 'tsx', fileURLToPath(import.meta.url), '--variant', tokensFile, path.join(dir, `${name}.arrow`), String(sort)], {
        stdio: ['ignore', 'pipe', 'inherit'],
        encoding: 'utf8',
      });
      if (r.status !== 0) throw new Error(`${name} variant failed (exit ${r.status})`);
      results[name] = JSON.parse(r.stdout.trim().split('\n').pop()!);
      await rm(path.join(dir, `${name}.arrow`), { force: true });
    }
    const sorted = results.sorted as { rows: number; tokens: number };
    console.log(
      JSON.stringify({
        bench: 'encode',
        model: 'imdb-bert-tiny',
        reviews: sorted.rows,
        tokens: sorted.tokens,
        max_length: 512,
        dtype: 'float16',
        device: 'cpu',
        token_budget: DEFAULT_BATCHING.tokenBudget,
        cpus: os.availableParallelism(),
        sorted: strip(results.sorted),
        unsorted: strip(results.unsorted),
      }),
    );
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
}

function strip(r: unknown): unknown {
  const { rows: _rows, tokens: _tokens, ...rest } = r as Record<string, unknown>;
  return rest;
}

const args = process.argv.slice(2);
if (args[0] === '--variant') await variant(args[1], args[2], args[3] === 'true');
else await main();
