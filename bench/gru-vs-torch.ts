// The head's training step next to PyTorch's (../shared/bench/torch_gru_step.py) in the same run, same
// shapes, alternating: B=32 and B=128 at T=128, D=768, H=256, L=2, bidirectional. Prints one JSON line
// per batch size with both medians, the ratio, and GFLOP/s against the machine's GEMM peak as PyTorch
// measures it. Skips PyTorch when Debian's python3-torch is absent.
import { spawnSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import path from 'node:path';

const torchScript = path.resolve(import.meta.dirname, '../../shared/bench/torch_gru_step.py');
const python = '/usr/bin/python3';
const hasTorch = existsSync(torchScript) && spawnSync(python, ['-c', 'import torch'], { stdio: 'ignore' }).status === 0;

function lastJson(out: string): Record<string, any> {
  return JSON.parse(out.trim().split('\n').filter((l) => l.startsWith('{')).pop()!);
}

for (const batch of [32, 128]) {
  const args = ['--batch', String(batch), '--seq', '128', '--input', '768', '--hidden', '256', '--layers', '2', '--steps', '3'];
  const ours = lastJson(spawnSync(process.execPath, ['--import', 'tsx', path.join(import.meta.dirname, 'gru-step.ts'), ...args], { encoding: 'utf8' }).stdout);
  const torch = hasTorch ? lastJson(spawnSync(python, [torchScript, ...args], { encoding: 'utf8' }).stdout) : undefined;
  console.log(
    JSON.stringify({
      bench: 'gru-step-vs-pytorch',
      batch,
      ours_seconds_per_step: ours.seconds_per_step_median,
      ours_kernel: ours.kernel,
      ours_gflops: ours.achieved_gflops,
      pytorch_seconds_per_step: torch?.seconds_per_step_median ?? null,
      pytorch_gflops: torch?.achieved_gflops ?? null,
      ratio_ours_to_pytorch: torch ? +(ours.seconds_per_step_median / torch.seconds_per_step_median).toFixed(2) : null,
      machine_sgemm_gflops: torch?.machine_sgemm_gflops ?? null,
      ours_share_of_sgemm_peak: torch ? +(ours.achieved_gflops / torch.machine_sgemm_gflops).toFixed(2) : null,
      ...(hasTorch ? {} : { pytorch: 'skipped: needs /usr/bin/python3 with torch (apt-get install -y python3-torch libopenblas0-pthread) and ../shared/bench' }),
    }),
  );
}
