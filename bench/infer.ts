// Inference speed with imdb-bert-tiny from ../shared: a small head is trained in a temporary cache and
// exported, then (1) cold single-text `sentiment infer --model DIR --text ...`, process start to answer
// (median of 3 runs), and (2) warm throughput of `--file` on 1,000 IMDB test reviews (rows/s once
// loaded, as the command reports it). Prints one JSON line. Uses the built CLI (npm run build).
import { execFileSync, spawnSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { Writable } from 'node:stream';
import { exportModel } from '../src/runner/trained-model.js';
import { runExperiments } from '../src/runner/run.js';
import { STAGES } from '../src/stages/index.js';

const repo = path.resolve(import.meta.dirname, '..');
const shared = path.resolve(repo, '../shared');
const model = path.join(shared, 'models/imdb-bert-tiny');
const imdb = path.join(shared, 'data/imdb');
if (!existsSync(model) || !existsSync(imdb)) {
  console.log(JSON.stringify({ bench: 'infer', skipped: `needs ${model} and ${imdb}` }));
  process.exit(0);
}

const dir = await mkdtemp(path.join(os.tmpdir(), 'sentiment-bench-infer-'));
try {
  const file = path.join(dir, 'bench.yaml');
  await writeFile(file, `DATASET: ${JSON.stringify(imdb)}\nMODEL: ${JSON.stringify(model)}\nMAX_TRAIN_EXAMPLES: 400\nMAX_TEST_EXAMPLES: 100\nMAX_LENGTH: 256\nHIDDEN_DIM: 64\nN_EPOCHS: 1\n`);
  const cacheDir = path.join(dir, 'cache');
  await runExperiments({ stages: STAGES, experiments: [file], sets: [], cacheDir, runsDir: path.join(dir, 'runs'), interactive: false, stream: new Writable({ write: (_c, _e, cb) => cb() }) });
  const exported = (await exportModel(file, [], cacheDir, path.join(dir, 'exported'), STAGES)).dir;
  const cli = path.join(repo, 'bin/run.js');
  const env = { ...process.env, SENTIMENT_CACHE_DIR: path.join(dir, 'empty-cache') };

  const cold: number[] = [];
  for (let i = 0; i < 3; i++) {
    const t = performance.now();
    execFileSync(process.execPath, [cli, 'infer', '--model', exported, '--text', 'I like you!', '--json'], { env, stdio: ['ignore', 'pipe', 'ignore'] });
    cold.push((performance.now() - t) / 1000);
  }
  const reviews = (await readFile(path.join(imdb, 'test.jsonl'), 'utf8')).split('\n').slice(0, 1000).join('\n');
  const input = path.join(dir, 'reviews.jsonl');
  await writeFile(input, `${reviews}\n`);
  const t = performance.now();
  const r = spawnSync(process.execPath, [cli, 'infer', '--model', exported, '--file', input, '--out', path.join(dir, 'out.jsonl')], { env, encoding: 'utf8' });
  const wall = (performance.now() - t) / 1000;
  const m = /([\d,]+) rows in ([\d.]+)s/.exec(r.stderr);
  if (r.status !== 0 || !m) throw new Error(`infer --file failed: ${r.stderr}`);
  const rows = Number(m[1].replace(/,/g, ''));
  console.log(
    JSON.stringify({
      bench: 'infer',
      model: 'imdb-bert-tiny',
      max_length: 256,
      cold_single_text_seconds_median: +cold.sort((a, b) => a - b)[1].toFixed(2),
      cold_runs: cold.map((s) => +s.toFixed(2)),
      file_reviews: rows,
      warm_texts_per_s: Math.round(rows / Number(m[2])),
      file_wall_seconds: +wall.toFixed(1),
    }),
  );
} finally {
  await rm(dir, { recursive: true, force: true });
}
