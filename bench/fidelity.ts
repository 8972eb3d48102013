// Fidelity with several seeds: our head and the PyTorch reference (bench/torch_head_reference.py) trained
// on the same exported features and the same train/valid/test split, N seeds each, alternating.
//
// The pipeline runs once, up to encode, through the CLI (data SEED fixed, default 12345); its features.arrow
// is exported for PyTorch. SEED also decides the data stage's split and subsets, so `run --set SEED=s`
// would give each seed different rows: instead only the head's seed varies. Ours is trained in-process by
// the train stage's own code (trainHead with headSettings, as src/stages/train.ts calls it) on that
// features.arrow with seed s, and measured on test as the evaluate stage does (evaluateSplit on the kept head);
// PyTorch gets `--seed s` on the export of the same file.
//
// Usage: npm run -s bench:fidelity -- [--seeds 1,2,3,4,5] [--train 2000] [--test 1000] [--max-length 256]
//        [--hidden 64] [--epochs 2] [--data-seed 12345] [--cache-dir DIR] [--backend auto] [--impl ours,torch]
// Prints one JSON line per run ({impl, seed, test_accuracy, valid_loss, best_epoch, seconds}) and a summary line.
import { execFileSync, spawnSync } from 'node:child_process';
import { mkdtemp, rm } from 'node:fs/promises';
import { existsSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { parseArgs } from 'node:util';
import { trainHead, resolveEngine } from '../src/training/train-head.js';
import { headSettings, type TrainReads } from '../src/stages/train.js';
import { evaluateSplit, loadTrainedHead } from '../src/training/trained-head.js';
import { FEATURES_FILE } from '../src/features/features.js';
import type { Progress } from '../src/core/progress.js';

const { values: a } = parseArgs({
  options: {
    seeds: { type: 'string', default: '1,2,3,4,5' },
    impl: { type: 'string', default: 'ours,torch' },
    train: { type: 'string', default: '2000' },
    test: { type: 'string', default: '1000' },
    'max-length': { type: 'string', default: '256' },
    hidden: { type: 'string', default: '64' },
    epochs: { type: 'string', default: '2' },
    'data-seed': { type: 'string', default: '12345' },
    'cache-dir': { type: 'string' },
    backend: { type: 'string', default: 'auto' },
    experiment: { type: 'string', default: 'experiments/imdb-bigru.yaml' },
    dataset: { type: 'string', default: '../shared/data/imdb' },
    model: { type: 'string', default: '../shared/models/imdb-bert-tiny' },
    python: { type: 'string', default: '/usr/bin/python3' },
  },
});
const seeds = a.seeds.split(',').map(Number);
const hidden = Number(a.hidden);
const epochs = Number(a.epochs);
// experiments/imdb-bigru.yaml's other settings (the PyTorch reference's defaults are the same).
const base = { BATCH_SIZE: 128, N_LAYERS: 2, BIDIRECTIONAL: true, DROPOUT: 0.25, LEARNING_RATE: 1e-3 };

const work = await mkdtemp(path.join(os.tmpdir(), 'fidelity-'));
const cacheDir = a['cache-dir'] ?? path.join(work, 'cache');

// 1. data → tokenize → encode, once, through the CLI.
const encodeRun = execFileSync(
  process.execPath,
  [
    'bin/run.js', 'run', a.experiment, '--until', 'encode',
    '--set', `DATASET=${a.dataset}`, '--set', `MODEL=${a.model}`,
    '--set', `MAX_TRAIN_EXAMPLES=${a.train}`, '--set', `MAX_TEST_EXAMPLES=${a.test}`, '--set', `MAX_LENGTH=${a['max-length']}`,
    '--set', `SEED=${a['data-seed']}`, '--cache-dir', cacheDir, '--runs-dir', path.join(work, 'runs'), '--json',
  ],
  { encoding: 'utf8', stdio: ['ignore', 'pipe', 'inherit'], maxBuffer: 64 << 20 },
);
const features = findFeatures(JSON.parse(encodeRun));
const rows = await splitRowsOf(features);
console.error(`features: ${features} (${JSON.stringify(rows)})`);

// 2. export for PyTorch.
const exportDir = path.join(work, 'features');
execFileSync(process.execPath, ['--import', 'tsx', 'bench/export-features.ts', features, exportDir], { stdio: ['ignore', 'ignore', 'inherit'] });

// 3. seeds, alternating ours and PyTorch.
const quiet: Progress = { update: () => undefined, log: () => undefined };
const results: { impl: 'ours' | 'torch'; seed: number; test_accuracy: number }[] = [];
for (const seed of seeds) {
  for (const impl of (['ours', 'torch'] as const).filter((i) => a.impl.split(',').includes(i))) {
    const r = impl === 'ours' ? await ours(seed) : torch(seed);
    results.push(r);
    console.log(JSON.stringify(r));
  }
}
const stats = (impl: string) => {
  const xs = results.filter((r) => r.impl === impl).map((r) => r.test_accuracy);
  const mean = xs.reduce((s, x) => s + x, 0) / xs.length;
  const sd = xs.length > 1 ? Math.sqrt(xs.reduce((s, x) => s + (x - mean) ** 2, 0) / (xs.length - 1)) : NaN;
  return { mean, sd, n: xs.length };
};
const o = stats('ours');
const t = stats('torch');
const welch_t = (o.mean - t.mean) / Math.sqrt(o.sd ** 2 / o.n + t.sd ** 2 / t.n);
console.log(JSON.stringify({ summary: true, settings: { train: Number(a.train), test: Number(a.test), max_length: Number(a['max-length']), hidden, epochs, data_seed: Number(a['data-seed']), ...base }, rows, ours: o, torch: t, difference: o.mean - t.mean, welch_t }));
await rm(work, { recursive: true, force: true });

async function ours(seed: number) {
  const started = performance.now();
  const outDir = await mkdtemp(path.join(work, `ours-${seed}-`));
  const engine = resolveEngine(a.backend as never);
  const reads = { ...base, HIDDEN_DIM: hidden, SEED: seed } as unknown as TrainReads;
  const { info } = await trainHead({
    settings: headSettings(reads, rows.hidden),
    engine,
    featuresFile: features,
    batchSize: base.BATCH_SIZE,
    epochs,
    seed,
    schedule: 'constant',
    warmup: 0,
    patience: null,
    rows: { train: rows.train, valid: rows.valid, test: rows.test },
    outDir,
    progress: quiet,
    signal: new AbortController().signal,
  });
  const { head } = await loadTrainedHead(outDir);
  try {
    const test = (await evaluateSplit(head, features, 'test', base.BATCH_SIZE)).lossAndAccuracy();
    return { impl: 'ours' as const, seed, test_accuracy: test.accuracy, test_loss: test.loss, valid_loss: info.best_valid_loss, best_epoch: info.best_epoch, seconds: round((performance.now() - started) / 1000) };
  } finally {
    head.dispose();
  }
}

function torch(seed: number) {
  const started = performance.now();
  const args = ['bench/torch_head_reference.py', exportDir, '--hidden', String(hidden), '--epochs', String(epochs), '--seed', String(seed),
    '--batch', String(base.BATCH_SIZE), '--layers', String(base.N_LAYERS), '--dropout', String(base.DROPOUT), '--lr', String(base.LEARNING_RATE)];
  if (!base.BIDIRECTIONAL) args.push('--unidirectional');
  // OMP_WAIT_POLICY=PASSIVE: PyTorch's OpenMP pool otherwise spins against OpenBLAS's threads.
  const p = spawnSync(a.python, args, { encoding: 'utf8', env: { ...process.env, OMP_WAIT_POLICY: 'PASSIVE' }, maxBuffer: 64 << 20 });
  if (p.status !== 0) throw new Error(`torch_head_reference.py exited ${p.status}: ${p.stderr}`);
  const r = JSON.parse(p.stdout.trim().split('\n').pop()!) as { history: { valid_loss: number; epoch: number }[]; test: { accuracy: number; loss: number } };
  const best = r.history.reduce((b, h) => (h.valid_loss < b.valid_loss ? h : b));
  return { impl: 'torch' as const, seed, test_accuracy: r.test.accuracy, test_loss: r.test.loss, valid_loss: best.valid_loss, best_epoch: best.epoch, seconds: round((performance.now() - started) / 1000) };
}

function round(x: number) {
  return Math.round(x * 10) / 10;
}

/** The encode entry's features.arrow, from `run --json`'s stages. */
function findFeatures(json: unknown): string {
  const found: string[] = [];
  const visit = (v: unknown) => {
    if (Array.isArray(v)) v.forEach(visit);
    else if (v && typeof v === 'object') {
      const o = v as Record<string, unknown>;
      const isEncode = o.name === 'encode' || o.stage === 'encode';
      for (const key of ['path', 'dir', 'entry']) {
        if (isEncode && typeof o[key] === 'string' && existsSync(path.join(o[key] as string, FEATURES_FILE))) found.push(path.join(o[key] as string, FEATURES_FILE));
      }
      Object.values(o).forEach(visit);
    }
  };
  visit(json);
  if (!found.length) throw new Error(`no encode entry with ${FEATURES_FILE} in run --json's output: ${JSON.stringify(json).slice(0, 500)}`);
  return found[0];
}

/** Rows per split and the features' width. */
async function splitRowsOf(file: string): Promise<{ train: number; valid: number; test: number; hidden: number }> {
  const { readFeatures } = await import('../src/features/features.js');
  const counts = { train: 0, valid: 0, test: 0, hidden: 0 };
  for await (const b of readFeatures(file)) {
    counts.hidden = b.width;
    for (const s of b.split) counts[s as 'train' | 'valid' | 'test']++;
  }
  return counts;
}

