// `npm run bench:scale`: the original's job at its real size (issue 15), one JSON line per figure.
// So far: encode at bert-base shape and with imdb-bert-tiny against PyTorch on identical weights
// (bench/scale-encode.ts), and the head's training step at the original's shape (B=128, T=128 and 512,
// D=768, H=256, 2 layers, bidirectional) against PyTorch, with the machine's sgemm peak measured in the
// same run (bench/gru-vs-torch.ts). Each part in its own process, one after the other.
import { spawnSync } from 'node:child_process';
import path from 'node:path';

const parts: { file: string; args?: string[]; env?: NodeJS.ProcessEnv }[] = [
  { file: 'scale-encode.ts', args: process.argv.slice(2) },
  { file: 'gru-vs-torch.ts', env: { SEQS: '128,512', BATCHES: '128', ROUNDS: process.env.ROUNDS ?? '2' } },
];
for (const part of parts) {
  const r = spawnSync(process.execPath, ['--import', 'tsx', path.join(import.meta.dirname, part.file), ...(part.args ?? [])], {
    stdio: ['ignore', 'inherit', 'inherit'],
    env: { ...process.env, ...part.env },
  });
  if (r.status !== 0) process.exitCode = 1;
}
