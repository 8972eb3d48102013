// `npm run bench`: each benchmark in its own process (so peak RSS is its own), one JSON line each.
import { spawnSync } from 'node:child_process';
import path from 'node:path';

const benches = ['data-tokenize.ts', 'encode.ts', 'infer.ts', 'serve.ts', 'gru-vs-torch.ts'];
for (const bench of benches) {
  const r = spawnSync(process.execPath, ['--import', 'tsx', path.join(import.meta.dirname, bench)], { stdio: ['ignore', 'inherit', 'inherit'] });
  if (r.status !== 0) process.exitCode = 1;
}
