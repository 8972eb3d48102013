// The head's training step next to PyTorch's (../shared/bench/torch_gru_step.py) in the same run, same
// shapes, alternating ours and PyTorch ROUNDS times (env, default 3) per batch size: B=32 and B=128 at T=128, D=768,
// H=256, L=2, bidirectional. Prints one JSON line per batch size with every pair's medians and ratio,
// the median ratio, our evaluation pass, and GFLOP/s against the machine's GEMM peak as PyTorch measures
// it. Skips PyTorch when Debian's python3-torch is absent.
//
// Fairness: Debian's OpenBLAS 0.3.21 does not recognise newer CPUs and falls back to its generic
// "Prescott" kernels, which made PyTorch's GEMM about 5× slower on this machine. When it does, PyTorch
// runs with OPENBLAS_CORETYPE set to the newest kernel family the CPU's flags allow (SkylakeX for
// AVX-512, Haswell for AVX2); the core used is reported. An OPENBLAS_CORETYPE already set is kept.
// And Debian's torch runs an OpenMP pool beside OpenBLAS's threads; on 2 cores the OpenMP threads spin
// against OpenBLAS's unless OMP_WAIT_POLICY=PASSIVE (PyTorch's step at B=128 then took 2.6-2.8 s, not
// ~6 s), so PyTorch runs with it (an OMP_WAIT_POLICY already set is kept), and the policy is reported.
// SEQS (env, default 128) lists the sequence lengths T, e.g. SEQS=128,512; BATCHES (default 32,128); INPUTS the widths D (default 768).
import { spawnSync } from 'node:child_process';
import { existsSync, readFileSync } from 'node:fs';
import path from 'node:path';

const ROUNDS = Number(process.env.ROUNDS ?? 3);
const torchScript = path.resolve(import.meta.dirname, '../../shared/bench/torch_gru_step.py');
const python = '/usr/bin/python3';
const hasTorch = existsSync(torchScript) && spawnSync(python, ['-c', 'import torch'], { stdio: 'ignore' }).status === 0;

function lastJson(out: string): Record<string, any> {
  return JSON.parse(out.trim().split('\n').filter((l) => l.startsWith('{')).pop()!);
}

/** The environment PyTorch runs in, and the OpenBLAS kernel family it will use. */
function torchEnvironment(): { env: NodeJS.ProcessEnv; core: string | undefined } {
  const chosen = openblasCore();
  return { env: { ...chosen.env, OMP_WAIT_POLICY: process.env.OMP_WAIT_POLICY ?? 'PASSIVE' }, core: chosen.core };
}

function openblasCore(): { env: NodeJS.ProcessEnv; core: string | undefined } {
  const coreOf = (env: NodeJS.ProcessEnv) => {
    const r = spawnSync(python, ['-c', 'import torch; torch.ones(2, 2) @ torch.ones(2, 2)'], { env: { ...env, OPENBLAS_VERBOSE: '2' }, encoding: 'utf8' });
    return /Core: (\w+)/.exec(`${r.stdout}${r.stderr}`)?.[1];
  };
  const detected = coreOf(process.env);
  if (process.env.OPENBLAS_CORETYPE || detected !== 'Prescott') return { env: process.env, core: detected };
  const flags = readFileSync('/proc/cpuinfo', 'utf8');
  const family = /\bavx512f\b/.test(flags) ? 'SkylakeX' : /\bavx2\b/.test(flags) ? 'Haswell' : undefined;
  if (!family) return { env: process.env, core: detected };
  const env = { ...process.env, OPENBLAS_CORETYPE: family };
  return { env, core: `${coreOf(env)} (OPENBLAS_CORETYPE; detected ${detected})` };
}

const median = (v: number[]) => {
  const s = [...v].sort((a, b) => a - b);
  return s.length % 2 ? s[s.length >> 1] : (s[s.length / 2 - 1] + s[s.length / 2]) / 2;
};

const torchEnv = hasTorch ? torchEnvironment() : undefined;
const SEQS = (process.env.SEQS ?? '128').split(',').map(Number);
const BATCHES = (process.env.BATCHES ?? '32,128').split(',').map(Number);
// INPUTS: the encoder widths D (768: bert-base; 128: imdb-bert-tiny).
const INPUTS = (process.env.INPUTS ?? '768').split(',').map(Number);
for (const [input, seq, batch] of INPUTS.flatMap((d) => SEQS.flatMap((t) => BATCHES.map((b) => [d, t, b] as const)))) {
  const args = ['--batch', String(batch), '--seq', String(seq), '--input', String(input), '--hidden', '256', '--layers', '2', '--steps', '3'];
  const pairs: { ours: Record<string, any>; torch?: Record<string, any> }[] = [];
  for (let round = 0; round < ROUNDS; round++) {
    const ours = lastJson(spawnSync(process.execPath, ['--import', 'tsx', path.join(import.meta.dirname, 'gru-step.ts'), ...args], { encoding: 'utf8' }).stdout);
    const torch = torchEnv ? lastJson(spawnSync(python, [torchScript, ...args], { encoding: 'utf8', env: torchEnv.env }).stdout) : undefined;
    pairs.push({ ours, torch });
  }
  const ratios = pairs.filter((p) => p.torch).map((p) => +(p.ours.seconds_per_step_median / p.torch!.seconds_per_step_median).toFixed(2));
  const last = pairs[pairs.length - 1];
  console.log(
    JSON.stringify({
      bench: 'gru-step-vs-pytorch',
      batch,
      seq,
      input,
      ours_kernel: last.ours.kernel,
      ours_seconds_per_step: pairs.map((p) => p.ours.seconds_per_step_median),
      ours_eval_seconds_per_batch: pairs.map((p) => p.ours.eval_seconds_per_batch_median),
      ours_gflops: pairs.map((p) => p.ours.achieved_gflops),
      pytorch_seconds_per_step: hasTorch ? pairs.map((p) => p.torch!.seconds_per_step_median) : null,
      pytorch_gflops: hasTorch ? pairs.map((p) => p.torch!.achieved_gflops) : null,
      pytorch_openblas_core: torchEnv?.core ?? null,
      pytorch_omp_wait_policy: torchEnv?.env.OMP_WAIT_POLICY ?? null,
      ours_peak_rss_mib: pairs.map((p) => p.ours.peak_rss_mib ?? null),
      ratio_ours_to_pytorch: hasTorch ? ratios : null,
      ratio_median: hasTorch ? median(ratios) : null,
      machine_sgemm_gflops: hasTorch ? pairs.map((p) => p.torch!.machine_sgemm_gflops) : null,
      onnxruntime_sgemm_gflops: pairs.map((p) => p.ours.onnxruntime_sgemm_gflops ?? null),
      ours_share_of_onnxruntime_sgemm: +(median(pairs.map((p) => p.ours.achieved_gflops)) / median(pairs.map((p) => p.ours.onnxruntime_sgemm_gflops ?? NaN))).toFixed(2),
      ours_share_of_sgemm_peak: hasTorch ? +(median(pairs.map((p) => p.ours.achieved_gflops)) / median(pairs.map((p) => p.torch!.machine_sgemm_gflops))).toFixed(2) : null,
      ...(hasTorch ? {} : { pytorch: 'skipped: needs /usr/bin/python3 with torch (apt-get install -y python3-torch libopenblas0-pthread) and ../shared/bench' }),
    }),
  );
}
