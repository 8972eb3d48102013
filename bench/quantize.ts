// ENCODER_QUANTIZE: int8's effect on results (issue 15): the same experiment run through the CLI with the
// encoder's float32 weights and with int8 ones, at several SEEDs (each SEED's split, subsets and head are
// the same for both, so the differences pair up), on imdb-bert-tiny and the real IMDB reviews.
//
// Usage: npm run -s bench:quantize -- [--seeds 1,2,3] [--train 2000] [--test 1000] [--max-length 256]
//        [--hidden 64] [--epochs 2] [--cache-dir DIR]
// Prints one JSON line per run ({quantize, seed, test_accuracy, encode_seconds, ...}) and a summary line.
import { spawnSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import { mkdtemp, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { parseArgs } from 'node:util';

const REPO = path.resolve(import.meta.dirname, '..');
const { values: a } = parseArgs({
  options: {
    seeds: { type: 'string', default: '1,2,3' },
    train: { type: 'string', default: '2000' },
    test: { type: 'string', default: '1000' },
    'max-length': { type: 'string', default: '256' },
    hidden: { type: 'string', default: '64' },
    epochs: { type: 'string', default: '2' },
    'cache-dir': { type: 'string' },
    dataset: { type: 'string', default: path.resolve(REPO, '../shared/data/imdb') },
    model: { type: 'string', default: path.resolve(REPO, '../shared/models/imdb-bert-tiny') },
  },
});

interface RunJson {
  stages: { name: string; cached: boolean; seconds: number; info: Record<string, unknown> }[];
}

const mean = (xs: number[]) => xs.reduce((s, x) => s + x, 0) / xs.length;
const sd = (xs: number[]) => Math.sqrt(xs.reduce((s, x) => s + (x - mean(xs)) ** 2, 0) / Math.max(1, xs.length - 1));

async function main(): Promise<void> {
  if (!existsSync(a.dataset) || !existsSync(a.model)) {
    console.log(JSON.stringify({ bench: 'quantize', skipped: `needs ${a.dataset} and ${a.model} (../shared)` }));
    return;
  }
  const cacheDir = a['cache-dir'] ?? (await mkdtemp(path.join(os.tmpdir(), 'sentiment-bench-quantize-')));
  const runsDir = await mkdtemp(path.join(os.tmpdir(), 'sentiment-bench-quantize-runs-'));
  const results: { quantize: string; seed: number; accuracy: number }[] = [];
  try {
    for (const seed of a.seeds.split(',').map(Number)) {
      for (const quantize of seed % 2 === 0 ? ['int8', 'none'] : ['none', 'int8']) {
        const sets = [
          `DATASET=${a.dataset}`,
          `MODEL=${a.model}`,
          `MAX_TRAIN_EXAMPLES=${a.train}`,
          `MAX_TEST_EXAMPLES=${a.test}`,
          `MAX_LENGTH=${a['max-length']}`,
          `HIDDEN_DIM=${a.hidden}`,
          `N_EPOCHS=${a.epochs}`,
          `SEED=${seed}`,
          `ENCODER_QUANTIZE=${quantize}`,
        ].flatMap((s) => ['--set', s]);
        const r = spawnSync(process.execPath, [path.join(REPO, 'bin/run.js'), 'run', path.join(REPO, 'experiments/imdb-bigru.yaml'), ...sets, '--json'], {
          encoding: 'utf8',
          maxBuffer: 64 << 20,
          env: { ...process.env, CI: '1', SENTIMENT_CACHE_DIR: cacheDir, SENTIMENT_RUNS_DIR: runsDir },
        });
        if (r.status !== 0) throw new Error(`run failed (${quantize}, SEED ${seed}): ${r.stderr.slice(-2000)}`);
        const run = JSON.parse(r.stdout) as RunJson;
        const stage = (name: string) => run.stages.find((s) => s.name === name)!;
        const metrics = stage('evaluate').info as { test?: { accuracy: number; loss: number } };
        const accuracy = metrics.test!.accuracy;
        results.push({ quantize, seed, accuracy });
        console.log(
          JSON.stringify({
            bench: 'quantize',
            quantize,
            seed,
            test_accuracy: accuracy,
            test_loss: metrics.test!.loss,
            encode_seconds: stage('encode').cached ? null : Number(stage('encode').seconds.toFixed(2)),
            tokens: stage('encode').info.tokens,
          }),
        );
      }
    }
  } finally {
    await rm(runsDir, { recursive: true, force: true });
    if (!a['cache-dir']) await rm(cacheDir, { recursive: true, force: true });
  }
  const of = (q: string) => results.filter((r) => r.quantize === q).map((r) => r.accuracy);
  const diffs = results.filter((r) => r.quantize === 'int8').map((r) => r.accuracy - results.find((n) => n.quantize === 'none' && n.seed === r.seed)!.accuracy);
  console.log(
    JSON.stringify({
      bench: 'quantize',
      summary: true,
      seeds: a.seeds,
      float32_accuracy: { mean: Number(mean(of('none')).toFixed(4)), sd: Number(sd(of('none')).toFixed(4)) },
      int8_accuracy: { mean: Number(mean(of('int8')).toFixed(4)), sd: Number(sd(of('int8')).toFixed(4)) },
      paired_difference: { mean: Number(mean(diffs).toFixed(4)), sd: Number(sd(diffs).toFixed(4)) },
    }),
  );
}

await main();
