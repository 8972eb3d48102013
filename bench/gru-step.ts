// Seconds per training step of the head (forward in training mode, backward, Adam) on random features,
// measured as ../shared/bench/torch_gru_step.py measures PyTorch: full-length sequences, dropout 0.25,
// the first step a warm-up, median and min of the rest, GFLOP/s from the same FLOP formula. One JSON line.
// Then the same number of evaluation passes (logits only), as evaluate and infer run them.
//   npm run -s bench:gru-step -- --batch 128 --seq 128 --input 768 --hidden 256 --layers 2 --steps 3 [--unidirectional] [--backend onnxruntime|wasm|cpu] [--threads N] [--kernel auto|ort|tfjs] [--profile] [--trace PREFIX]
// --kernel: the backend's default (auto), ONNX Runtime (src/model/ort-kernel.ts) or tfjs; --profile (ort) adds, on stderr, the
// seconds per step inside session.run; --trace (ort) writes ONNX Runtime's per-node trace to PREFIX-<session>_<time>.json.
import os from 'node:os';
import { parseArgs } from 'node:util';
import { BACKEND_SETTINGS, createHead, createTfjsGruKernel, selectBackend, type BackendSetting, type TfjsEngine } from '../src/model/index.js';
import { createOrtGruKernel, emptyProfile, ortKernelThreads } from '../src/model/ort-kernel.js';
import { Random } from '../src/model/random.js';
import { Graph, encodeModel } from '../src/model/onnx-graph.js';
import { createSession, onnxruntime } from '../src/core/onnxruntime.js';

/** Multiply-add FLOPs of the GRU forward pass (3 gates, input and recurrent products), as torch_gru_step.py counts them. */
function gruFlops(b: number, t: number, d: number, h: number, layers: number, dirs: number): number {
  let total = 0;
  let input = d;
  for (let l = 0; l < layers; l++) {
    total += dirs * b * t * 2 * 3 * h * (input + h);
    input = h * dirs;
  }
  return total;
}

function median(values: number[]): number {
  const s = [...values].sort((a, b) => a - b);
  const m = s.length >> 1;
  return s.length % 2 ? s[m] : (s[m - 1] + s[m]) / 2;
}

async function main(): Promise<void> {
  const { values } = parseArgs({
    options: {
      batch: { type: 'string', default: '32' },
      seq: { type: 'string', default: '128' },
      input: { type: 'string', default: '768' },
      hidden: { type: 'string', default: '256' },
      layers: { type: 'string', default: '2' },
      unidirectional: { type: 'boolean', default: false },
      steps: { type: 'string', default: '5' },
      backend: { type: 'string', default: 'auto' },
      threads: { type: 'string' },
      kernel: { type: 'string', default: 'auto' },
      profile: { type: 'boolean', default: false },
      trace: { type: 'string' },
    },
  });
  const [batch, seq, input, hidden, layers, steps] = [values.batch, values.seq, values.input, values.hidden, values.layers, values.steps].map(Number);
  const backend = values.backend as BackendSetting;
  if (!BACKEND_SETTINGS.includes(backend)) throw new Error(`--backend must be one of ${BACKEND_SETTINGS.join(', ')}`);
  if (values.threads) process.env.SENTIMENT_THREADS = values.threads;
  const dirs = values.unidirectional ? 1 : 2;

  if (!['auto', 'tfjs', 'ort'].includes(values.kernel)) throw new Error('--kernel must be auto, tfjs or ort');
  const selected = await selectBackend(backend);
  const useOrt = values.kernel === 'ort' || (values.kernel === 'auto' && selected.name === 'onnxruntime');
  if (!useOrt && !('tf' in selected)) throw new Error('--kernel tfjs needs a tfjs backend: --backend wasm, cpu, tensorflow or tensorflow-gpu');
  const profile = emptyProfile();
  const kernel = useOrt ? createOrtGruKernel({ profile: values.profile ? profile : undefined, traceFilePrefix: values.trace }) : createTfjsGruKernel((selected as TfjsEngine).tf, (selected as TfjsEngine).tfBackend);
  const head = await createHead({ inputSize: input, hiddenSize: hidden, layers, bidirectional: dirs === 2, dropout: 0.25, learningRate: 1e-3, seed: 0 }, { backend, kernel });
  const rng = new Random(0, 99);
  const x = new Float32Array(batch * seq * input);
  for (let i = 0; i < x.length; i++) x[i] = rng.normal();
  const labels = Float32Array.from({ length: batch }, () => (rng.nextFloat() > 0.5 ? 1 : 0));
  const b = { x, lengths: new Int32Array(batch).fill(seq), labels, batch, steps: seq };

  const times: number[] = [];
  for (let i = 0; i <= steps; i++) {
    if (i === 1) Object.assign(profile, emptyProfile());
    const start = performance.now();
    await head.trainStep(b);
    if (i > 0) times.push((performance.now() - start) / 1000); // the first step warms up
  }
  if (values.profile && useOrt) {
    const per = (v: number) => +(v / times.length).toFixed(4);
    const p = profile;
    console.error(
      JSON.stringify({
        profile: 'ort-kernel seconds per step',
        runs: p.calls / times.length,
        forward_session_run: per(p.forwardSeconds),
        backward_session_run: per(p.backwardSeconds),
        network_session_run: per(p.networkSeconds),
        outside_kernel: +(times.reduce((a, b) => a + b, 0) / times.length - per(p.forwardSeconds + p.backwardSeconds + p.networkSeconds)).toFixed(4),
      }),
    );
  }
  // Evaluation (what evaluate and infer run per batch): the forward pass in eval mode, logits only.
  const evalTimes: number[] = [];
  for (let i = 0; i <= steps; i++) {
    const start = performance.now();
    await head.predict(b);
    if (i > 0) evalTimes.push((performance.now() - start) / 1000);
  }
  head.dispose(); // releases the kernel's sessions, which writes --trace files
  const med = median(times);
  const flops = 3 * gruFlops(batch, seq, input, hidden, layers, dirs); // forward + ~2x backward
  console.log(
    JSON.stringify({
      bench: 'gru-step',
      engine: head.backendDescription,
      backend: head.backend,
      kernel: head.kernel,
      threads: useOrt ? ortKernelThreads() : Number(/(\d+) threads?/.exec(head.backendDescription)?.[1] ?? 1),
      shape: { batch, seq, input, hidden, layers, directions: dirs },
      steps: times.length,
      seconds_per_step_median: +med.toFixed(4),
      seconds_per_step_min: +Math.min(...times).toFixed(4),
      eval_seconds_per_batch_median: +median(evalTimes).toFixed(4),
      train_gflop_per_step: +(flops / 1e9).toFixed(2),
      achieved_gflops: +(flops / med / 1e9).toFixed(1),
      ...(useOrt && { onnxruntime_sgemm_gflops: +(await onnxruntimeSgemmGflops()).toFixed(1) }),
      peak_rss_mib: Math.round(process.resourceUsage().maxRSS / 1024),
      load_average: os.loadavg().map((v) => +v.toFixed(2)),
    }),
  );
}

/**
 * ONNX Runtime's own GEMM on this machine, measured as torch_gru_step.py measures PyTorch's (2048³, the
 * best of the GRU kernel's threads): the ceiling for a kernel whose time is ONNX Runtime's GEMMs.
 */
async function onnxruntimeSgemmGflops(): Promise<number> {
  const n = 2048;
  const g = new Graph('sgemm');
  g.output(g.op1('MatMul', [g.input('a', 'float', [n, n]), g.input('b', 'float', [n, n])]), 'float', [n, n]);
  const session = await createSession(encodeModel(g), 'gru-kernel');
  const ort = onnxruntime();
  const feeds = { a: new ort.Tensor('float32', Float32Array.from({ length: n * n }, () => Math.random() - 0.5), [n, n]), b: new ort.Tensor('float32', Float32Array.from({ length: n * n }, () => Math.random() - 0.5), [n, n]) };
  for (let i = 0; i < 2; i++) await session.run(feeds);
  const start = performance.now();
  for (let i = 0; i < 5; i++) await session.run(feeds);
  const seconds = (performance.now() - start) / 1000 / 5;
  await session.release();
  return (2 * n ** 3) / seconds / 1e9;
}

await main();
