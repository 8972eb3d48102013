// `npm run bench:scale`: the original's job at its real size (issue 15), one JSON line per figure:
// - encode against PyTorch on identical weights (bench/scale-encode.ts), float32 and ENCODER_QUANTIZE int8:
//   the bert-base-shaped model on BASE_REVIEWS (default 100) reviews, imdb-bert-tiny on TINY_REVIEWS (2,000);
// - the head's training step at the original's shape (B=128, T=128 and 512, D=768 and 128, H=256, 2 layers,
//   bidirectional) against PyTorch, with the machine's sgemm peak measured in the same run (bench/gru-vs-torch.ts);
// - int8's effect on test accuracy on imdb-bert-tiny (bench/quantize.ts, SEEDS default 1,2,3).
// Each part in its own process, one after the other. ROUNDS (default 2) alternations each.
import { spawnSync } from 'node:child_process';
import os from 'node:os';
import path from 'node:path';

const rounds = process.env.ROUNDS ?? '2';
const parts: { file: string; args?: string[]; env?: NodeJS.ProcessEnv }[] = [
  { file: 'scale-encode.ts', args: ['--models', 'bert-base', '--reviews', process.env.BASE_REVIEWS ?? '100', '--rounds', rounds] },
  { file: 'scale-encode.ts', args: ['--models', 'tiny', '--reviews', process.env.TINY_REVIEWS ?? '2000', '--rounds', rounds] },
  { file: 'gru-vs-torch.ts', env: { SEQS: '128,512', BATCHES: '128', INPUTS: '768,128', ROUNDS: rounds } },
  { file: 'quantize.ts', args: ['--seeds', process.env.SEEDS ?? '1,2,3'] },
];
console.log(JSON.stringify({ bench: 'scale', started: new Date().toISOString(), cores: os.availableParallelism(), load_average: os.loadavg().map((x) => Number(x.toFixed(2))) }));
for (const part of parts) {
  const r = spawnSync(process.execPath, ['--import', 'tsx', path.join(import.meta.dirname, part.file), ...(part.args ?? [])], {
    stdio: ['ignore', 'inherit', 'inherit'],
    env: { ...process.env, ...part.env },
  });
  if (r.status !== 0) process.exitCode = 1;
}
console.log(JSON.stringify({ bench: 'scale', finished: new Date().toISOString(), load_average: os.loadavg().map((x) => Number(x.toFixed(2))) }));
