// ONNX Runtime's idle threads spinning (its default) or not, alternately in one process: seconds per head
// training step and evaluation pass (random features, B=128, T=128, In=128, H=64 and 256, 2 layers,
// bidirectional) and for encoding 250 IMDB test reviews with imdb-bert-tiny, ROUNDS rounds (default 4).
// Prints one JSON line: per measure, the times each way and the ratio of medians (off / on). Run it on
// idle cores and beside `stress --cpu N` to see both sides of SENTIMENT_SPINNING (README, Engines).
import { existsSync, readFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { encodeRows, loadEncoder } from '../src/encoder/encoder.js';
import { loadTokenizer } from '../src/encoder/tokenizer.js';
import { createHead } from '../src/model/index.js';
import { createOrtGruKernel } from '../src/model/ort-kernel.js';
import { Random } from '../src/model/random.js';

const shared = path.resolve(import.meta.dirname, '../../shared');
const model = path.join(shared, 'models/imdb-bert-tiny');
const test = path.join(shared, 'data/imdb/test.jsonl');
if (!existsSync(model) || !existsSync(test)) {
  console.log(JSON.stringify({ bench: 'spinning', skipped: `needs ${model} and ${test}` }));
  process.exit(0);
}
const ROUNDS = Number(process.env.ROUNDS ?? 4);
const SHAPES = [
  { input: 128, hidden: 64, steps: 128 },
  { input: 128, hidden: 256, steps: 128 },
];
const BATCH = 128;

/** B rows of full-length-ish random features (lengths T, T−1, …, T−6 in turn) with random labels. */
function randomBatch(input: number, steps: number) {
  const rng = new Random(3, 1);
  const x = Float32Array.from({ length: BATCH * steps * input }, () => rng.normal());
  const lengths = Int32Array.from({ length: BATCH }, (_, i) => steps - (i % 7));
  lengths.forEach((len, b) => x.fill(0, (b * steps + len) * input, (b + 1) * steps * input));
  return { x, lengths, labels: Float32Array.from({ length: BATCH }, (_, i) => i % 2), batch: BATCH, steps };
}

const lines = readFileSync(test, 'utf8').split('\n').filter(Boolean);
const tokenizer = await loadTokenizer(model, 512);
const rows = Array.from({ length: 250 }, (_, i) => tokenizer.encode((JSON.parse(lines[Math.floor((i * lines.length) / 250)]) as { text: string }).text));

const times: Record<string, { on: number[]; off: number[] }> = {};
const record = (name: string, spinning: boolean, seconds: number) => ((times[name] ??= { on: [], off: [] })[spinning ? 'on' : 'off'].push(+seconds.toFixed(3)));
const seconds = async (f: () => Promise<unknown>) => {
  const start = performance.now();
  await f();
  return (performance.now() - start) / 1000;
};

for (let round = 0; round < ROUNDS; round++) {
  for (const spinning of round % 2 ? [false, true] : [true, false]) {
    for (const s of SHAPES) {
      const settings = { inputSize: s.input, hiddenSize: s.hidden, layers: 2, bidirectional: true, dropout: 0.25, learningRate: 1e-3, seed: 1 };
      const head = await createHead(settings, { backend: 'onnxruntime', kernel: createOrtGruKernel({ allowSpinning: spinning }) });
      const batch = randomBatch(s.input, s.steps);
      await head.trainStep(batch); // warm-up: sessions are made on first use
      await head.predict(batch);
      const name = `In${s.input} H${s.hidden} T${s.steps}`;
      record(`train_step ${name}`, spinning, (await seconds(async () => { await head.trainStep(batch); await head.trainStep(batch); })) / 2);
      record(`predict ${name}`, spinning, await seconds(() => head.predict(batch)));
      head.dispose();
    }
    const encoder = await loadEncoder(model, { device: 'cpu', allowSpinning: spinning });
    await encodeRows(encoder, rows.slice(0, 8));
    record(`encode ${rows.length} reviews`, spinning, await seconds(() => encodeRows(encoder, rows)));
    await encoder.dispose();
  }
}

const median = (v: number[]) => {
  const s = [...v].sort((a, b) => a - b);
  return s.length % 2 ? s[s.length >> 1] : (s[s.length / 2 - 1] + s[s.length / 2]) / 2;
};
const measures = Object.fromEntries(Object.entries(times).map(([k, v]) => [k, { ...v, off_over_on: +(median(v.off) / median(v.on)).toFixed(2) }]));
console.log(JSON.stringify({ bench: 'spinning', rounds: ROUNDS, cpus: os.availableParallelism(), load_average: os.loadavg().map((l) => +l.toFixed(2)), seconds: measures }));
