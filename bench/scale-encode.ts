// Encode at full model size against PyTorch on identical weights (issue 15, part 1): for bert-base-shaped
// random weights made by ../shared/bench/torch_encode.py (HF layout, onnx/model.onnx and pytorch_model.bin
// from the same state) and for ../shared/models/imdb-bert-tiny, both encode the same first N IMDB reviews
// with the same batching (length-sorted, token budget 4096), alternating ours and PyTorch's R times, each
// run in its own process. Ours times the encoder's model calls, as the peer does (tokenizing apart);
// parity is the largest difference from the model's reference_output.json (PyTorch, float32).
// Prints one JSON line per run and per model a summary line {model, ours, torch, ratio}.
//
// Usage: tsx bench/scale-encode.ts [--models bert-base,tiny] [--quantize none,int8] [--reviews 200] [--rounds 2] [--max-length 512]
//        tsx bench/scale-encode.ts --ours MODEL_DIR JSONL REVIEWS MAX_LENGTH QUANTIZE   (one of our runs, in a child)
import { spawnSync } from 'node:child_process';
import { existsSync, readFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { parseArgs } from 'node:util';
import { DEFAULT_BATCHING, loadEncoder, planBatches } from '../src/encoder/encoder.js';
import { loadTokenizer } from '../src/encoder/tokenizer.js';
import { quantizedEncoder, type QuantizeSetting } from '../src/encoder/quantize.js';

const REPO = path.resolve(import.meta.dirname, '..');
const SHARED = path.resolve(REPO, '../shared');
const PEER = path.join(SHARED, 'bench/torch_encode.py');
const IMDB = path.join(SHARED, 'data/imdb/train.jsonl');
const PYTHON = '/usr/bin/python3';

interface EncodeRun {
  impl: 'ours' | 'torch';
  model: string;
  /** Ours: ENCODER_QUANTIZE (PyTorch always runs the float32 weights). */
  quantize?: QuantizeSetting;
  reviews: number;
  tokens: number;
  batches: number;
  seconds: number;
  tokens_per_s: number;
  peak_rss_mib: number;
  parity_max_abs_diff?: number;
}

/**
 * One run of ours: tokenize the first `reviews` texts, plan batches as the encode stage does, time the model
 * calls. With int8, the encoder is the model quantized as ENCODER_QUANTIZE: int8 does (made once, in .bench/cache).
 */
async function ours(modelDir: string, jsonl: string, reviews: number, maxLength: number, quantize: QuantizeSetting): Promise<void> {
  const texts = readFileSync(jsonl, 'utf8').split('\n').slice(0, reviews).map((l) => (JSON.parse(l) as { text: string }).text);
  const tokenizer = await loadTokenizer(modelDir, maxLength);
  const rows = texts.map((t) => tokenizer.encode(t));
  const encoderDir = (await quantizedEncoder(modelDir, quantize, path.join(REPO, '.bench/cache'))).dir;
  const encoder = await loadEncoder(encoderDir, { device: 'cpu' });
  const batches = planBatches(rows.map((r) => r.length), { ...DEFAULT_BATCHING, numHeads: encoder.numHeads });
  // Parity first (it also warms the session up, as the peer's one-row warm-up does).
  const reference = JSON.parse(readFileSync(path.join(modelDir, 'reference_output.json'), 'utf8')) as { items: { input_ids: number[]; last_hidden_state: number[][] }[] };
  let parity = 0;
  for (const item of reference.items) {
    const [got] = await encoder.encode([item.input_ids]);
    item.last_hidden_state.forEach((vector, t) => vector.forEach((v, h) => (parity = Math.max(parity, Math.abs(v - got[t * encoder.width + h])))));
  }
  const started = performance.now();
  for (const batch of batches) await encoder.run(Array.from(batch, (i) => rows[i]));
  const seconds = (performance.now() - started) / 1000;
  const tokens = rows.reduce((n, r) => n + r.length, 0);
  const run: EncodeRun = {
    impl: 'ours',
    model: path.basename(modelDir),
    quantize,
    reviews: rows.length,
    tokens,
    batches: batches.length,
    seconds: Number(seconds.toFixed(3)),
    tokens_per_s: Math.round(tokens / seconds),
    peak_rss_mib: Math.round(process.resourceUsage().maxRSS / 1024),
    parity_max_abs_diff: parity,
  };
  console.log(JSON.stringify(run));
  await encoder.dispose();
}

function python(args: string[]): Record<string, unknown> {
  const r = spawnSync('/usr/bin/time', ['-f', '%M', PYTHON, PEER, ...args], { encoding: 'utf8', maxBuffer: 64 << 20 });
  if (r.status !== 0) throw new Error(`torch_encode.py ${args[0]} failed: ${r.stderr.slice(-2000)}`);
  const json = JSON.parse(r.stdout.trim().split('\n').at(-1)!) as Record<string, unknown>;
  const rss = Number(r.stderr.trim().split('\n').at(-1));
  return { ...json, peak_rss_mib: Math.round(rss / 1024) };
}

const mean = (xs: number[]) => xs.reduce((a, b) => a + b, 0) / xs.length;

async function main(): Promise<void> {
  const { values } = parseArgs({
    options: {
      ours: { type: 'boolean', default: false },
      models: { type: 'string', default: 'bert-base,tiny' },
      /** ENCODER_QUANTIZE values of ours to time against PyTorch's float32, each alternated with the peer. */
      quantize: { type: 'string', default: 'none,int8' },
      reviews: { type: 'string', default: '200' },
      rounds: { type: 'string', default: '2' },
      'max-length': { type: 'string', default: '512' },
      'model-dir': { type: 'string', default: path.join(REPO, '.bench/bert-base-random') },
    },
    allowPositionals: true,
  });
  if (values.ours) {
    const [modelDir, jsonl, reviews, maxLength, quantize] = process.argv.slice(3);
    await ours(modelDir, jsonl, Number(reviews), Number(maxLength), (quantize ?? 'none') as QuantizeSetting);
    return;
  }
  if (!existsSync(IMDB) || !existsSync(PEER)) {
    console.log(JSON.stringify({ bench: 'scale-encode', skipped: `needs ${IMDB} and ${PEER} (../shared)` }));
    return;
  }
  if (spawnSync(PYTHON, ['-c', 'import torch, onnx'], { stdio: 'ignore' }).status !== 0) {
    console.log(JSON.stringify({ bench: 'scale-encode', skipped: 'needs PyTorch: apt-get install -y python3-torch python3-onnx libopenblas0-pthread' }));
    return;
  }
  const reviews = Number(values.reviews);
  const rounds = Number(values.rounds);
  const maxLength = Number(values['max-length']);
  for (const name of values.models.split(',')) {
    let modelDir: string;
    if (name === 'bert-base') {
      modelDir = values['model-dir'];
      if (!existsSync(path.join(modelDir, 'reference_output.json'))) {
        console.error(`making a bert-base-shaped model with random weights in ${modelDir} (once)`);
        python(['make-model', modelDir]);
        python(['check', modelDir]);
      }
    } else {
      modelDir = path.join(SHARED, 'models/imdb-bert-tiny');
    }
    const variants = values.quantize.split(',') as QuantizeSetting[];
    const runs: EncodeRun[] = [];
    for (let round = 0; round < rounds; round++) {
      // Alternating, ours first one round and the peer first the next: the machine's drift falls on both.
      const forward = [...variants.map((q) => ({ impl: 'ours' as const, quantize: q })), { impl: 'torch' as const, quantize: 'none' as QuantizeSetting }];
      for (const { impl, quantize } of round % 2 === 0 ? forward : forward.reverse()) {
        let run: EncodeRun;
        if (impl === 'ours') {
          const r = spawnSync(process.execPath, ['--import', 'tsx', import.meta.filename, '--ours', modelDir, IMDB, String(reviews), String(maxLength), quantize], { encoding: 'utf8', maxBuffer: 64 << 20 });
          if (r.status !== 0) throw new Error(`our encode failed: ${r.stderr.slice(-2000)}`);
          run = JSON.parse(r.stdout.trim().split('\n').at(-1)!) as EncodeRun;
        } else {
          const p = python(['time', modelDir, IMDB, '--reviews', String(reviews), '--max-length', String(maxLength), '--threads', String(os.availableParallelism())]);
          run = { impl: 'torch', model: path.basename(modelDir), reviews: p.reviews as number, tokens: p.tokens as number, batches: p.batches as number, seconds: p.seconds as number, tokens_per_s: p.tokens_per_s as number, peak_rss_mib: p.peak_rss_mib as number };
        }
        runs.push(run);
        console.log(JSON.stringify({ bench: 'scale-encode', round, load_average: os.loadavg().map((x) => Number(x.toFixed(2))), ...run }));
      }
    }
    const torch = runs.filter((r) => r.impl === 'torch');
    const speed = (of: EncodeRun[]) => mean(of.map((r) => r.tokens_per_s));
    for (const quantize of variants) {
      const ours = runs.filter((r) => r.impl === 'ours' && r.quantize === quantize);
      console.log(
        JSON.stringify({
          bench: 'scale-encode',
          summary: true,
          model: path.basename(modelDir),
          quantize,
          reviews,
          max_length: maxLength,
          same_tokens: new Set([...ours, ...torch].map((r) => r.tokens)).size === 1,
          ours_tokens_per_s: Math.round(speed(ours)),
          torch_tokens_per_s: Math.round(speed(torch)),
          ratio: Number((speed(ours) / speed(torch)).toFixed(2)),
          ours_peak_rss_mib: Math.max(...ours.map((r) => r.peak_rss_mib)),
          torch_peak_rss_mib: Math.max(...torch.map((r) => r.peak_rss_mib)),
          // Against PyTorch's float32 output: ~1e-6 for float32; int8's error is the quantization's.
          parity_max_abs_diff: Math.max(...ours.map((r) => r.parity_max_abs_diff ?? NaN)),
        }),
      );
    }
  }
}

await main();
