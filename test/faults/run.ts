/**
 * Fault injection against the real CLI, on the repo's fixtures by default (`npm run test:faults`):
 *
 *   1. kill -9 at a random moment of a run, then rerun: the rerun must finish with the metrics of an
 *      uninterrupted run, report no wait on the dead process's lock, and leave no temporary folder
 *      or lock behind (N rounds, each on a fresh cache);
 *   2. damaged cache entries (bytes overwritten in place, truncated files, a missing or garbage
 *      manifest, a garbage head): the next run must warn, recompute and give the same metrics;
 *   3. two runs at once on one fresh cache: both finish with the same metrics, every entry computed once;
 *   4. starts: `infer --model` started many times, and two-job sweeps, each of which must finish with
 *      its output (a process that stops early must never exit 0).
 *
 * One summary line per case (trials, failures); exits 1 on any failure. Options:
 *   --rounds N          kill -9 rounds (default 5; the README's acceptance run uses 20)
 *   --experiment FILE   default experiments/quickstart.yaml
 *   --set K=V           overrides, repeatable (e.g. the real-data subset: DATASET=../shared/data/imdb ...)
 *   --starts N          `infer --model` starts (default 5; acceptance: 50, beside `stress --cpu 2`)
 *   --sweeps N          two-job sweeps of experiments/sweeps/quickstart-grid.yaml (default 1; acceptance: 20)
 *   --keep              keep the work folder (printed) for inspection
 */
import { spawn } from 'node:child_process';
import { existsSync } from 'node:fs';
import { mkdtemp, open, readdir, rm, stat, truncate, unlink, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';

const REPO = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../..');
const CLI = path.join(REPO, 'bin/run.js');

const { values } = parseArgs({
  options: {
    rounds: { type: 'string', default: '5' },
    experiment: { type: 'string', default: 'experiments/quickstart.yaml' },
    set: { type: 'string', multiple: true, default: [] },
    starts: { type: 'string', default: '5' },
    sweeps: { type: 'string', default: '1' },
    keep: { type: 'boolean', default: false },
  },
});
const rounds = Number(values.rounds);
const experiment = path.resolve(values.experiment);
const sets = values.set.flatMap((s) => ['--set', s]);

interface Ran {
  code: number | null;
  signal: NodeJS.Signals | null;
  stdout: string;
  stderr: string;
}

interface RunDoc {
  stages: { name: string; cached: boolean; path: string; waited?: number }[];
  metrics?: unknown;
}

/** `sentiment run EXPERIMENT --json` on a cache; `killAfterMs` sends SIGKILL that long after the start. */
function run(cacheDir: string, runsDir: string, killAfterMs?: number): Promise<Ran> {
  return cli(['run', experiment, ...sets, '--json', '--cache-dir', cacheDir, '--runs-dir', runsDir], killAfterMs);
}

function cli(args: string[], killAfterMs?: number): Promise<Ran> {
  return new Promise((resolve) => {
    const child = spawn(process.execPath, [CLI, ...args], {
      cwd: REPO,
      env: { ...process.env, CI: '1' },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (d) => (stdout += d));
    child.stderr.on('data', (d) => (stderr += d));
    const timer = killAfterMs === undefined ? undefined : setTimeout(() => child.kill('SIGKILL'), killAfterMs);
    child.on('close', (code, signal) => {
      clearTimeout(timer);
      resolve({ code, signal, stdout, stderr });
    });
  });
}

function parse(r: Ran): RunDoc | undefined {
  if (r.code !== 0) return undefined;
  try {
    return JSON.parse(r.stdout) as RunDoc;
  } catch {
    return undefined;
  }
}

const lastLines = (text: string, n = 4) => text.trim().split('\n').slice(-n).join(' | ');

/** Temporary folders, locks and damaged entries moved aside, anywhere in the cache. */
async function leftovers(cacheDir: string): Promise<string[]> {
  const found: string[] = [];
  let stages: string[] = [];
  try {
    stages = await readdir(cacheDir);
  } catch {
    return found;
  }
  for (const stage of stages) {
    const dir = path.join(cacheDir, stage);
    if (!(await stat(dir)).isDirectory()) continue;
    for (const name of await readdir(dir)) if (name.startsWith('.tmp-') || name.endsWith('.lock')) found.push(path.join(stage, name));
  }
  return found;
}

interface CaseResult {
  name: string;
  trials: number;
  failures: string[];
}

const results: CaseResult[] = [];
function report(c: CaseResult): void {
  results.push(c);
  console.log(`${c.failures.length ? 'FAIL' : 'ok  '}  ${c.name}: ${c.trials} trials, ${c.failures.length} failures`);
  for (const f of c.failures) console.log(`        ${f}`);
}

const work = await mkdtemp(path.join(os.tmpdir(), 'sentiment-faults-'));
let fresh = 0;
const freshCache = () => path.join(work, `cache-${++fresh}`);
const runsDir = path.join(work, 'runs');

// The reference: one uninterrupted run, and how long it takes uncached (the window kills are drawn from).
const started = performance.now();
const referenceCache = freshCache();
const reference = await run(referenceCache, runsDir);
const referenceMs = performance.now() - started;
const referenceDoc = parse(reference);
if (!referenceDoc?.metrics) {
  console.error(`the reference run failed (exit ${reference.code}): ${lastLines(reference.stderr)}`);
  process.exit(1);
}
const expected = JSON.stringify(referenceDoc.metrics);
console.log(`reference run: ${(referenceMs / 1000).toFixed(1)} s uncached; work folder ${work}`);

function checkRerun(r: Ran, failures: string[], label: string, options: { expectWarning?: RegExp } = {}): RunDoc | undefined {
  const doc = parse(r);
  if (!doc) {
    failures.push(`${label}: rerun exited ${r.code ?? r.signal}: ${lastLines(r.stderr)}`);
    return undefined;
  }
  if (JSON.stringify(doc.metrics) !== expected) failures.push(`${label}: metrics differ from the uninterrupted run`);
  if (/^\s+at /m.test(r.stderr)) failures.push(`${label}: a stack trace on stderr`);
  if (options.expectWarning && !options.expectWarning.test(r.stderr)) failures.push(`${label}: no warning matching ${options.expectWarning} on stderr`);
  return doc;
}

// 1. kill -9 at a random moment, then rerun.
{
  const failures: string[] = [];
  for (let round = 1; round <= rounds; round++) {
    const cacheDir = freshCache();
    const at = Math.round(Math.random() * referenceMs);
    const killed = await run(cacheDir, runsDir, at);
    if (killed.code === 0) {
      // It finished before the kill landed: still a valid trial of "rerun after", on a complete cache.
    } else if (killed.signal !== 'SIGKILL') {
      failures.push(`round ${round}: the run to be killed ended by itself with ${killed.code}: ${lastLines(killed.stderr)}`);
      continue;
    }
    const rerun = await run(cacheDir, runsDir);
    const doc = checkRerun(rerun, failures, `round ${round} (kill at ${at} ms)`);
    // Nothing else runs on this cache: any wait would be on the dead process's lock.
    const waited = doc?.stages.filter((s) => s.waited !== undefined).map((s) => `${s.name} ${s.waited} s`) ?? [];
    if (waited.length) failures.push(`round ${round}: waited on a dead holder's lock: ${waited.join(', ')}`);
    const left = await leftovers(cacheDir);
    if (left.length) failures.push(`round ${round}: left behind after the rerun: ${left.join(', ')}`);
    await rm(cacheDir, { recursive: true, force: true });
  }
  report({ name: 'kill -9 at a random moment, then rerun', trials: rounds, failures });
}

// 2. Damaged entries: each case damages the complete reference cache, reruns, and checks it healed.
const entryOf = (stage: string) => referenceDoc.stages.find((s) => s.name === stage)!.path;
async function overwriteInPlace(file: string, bytes: number): Promise<void> {
  const size = (await stat(file)).size;
  const handle = await open(file, 'r+');
  const offset = Math.max(0, Math.floor(size / 2) - bytes / 2);
  const garbage = Buffer.alloc(Math.min(bytes, size), 0x5a);
  await handle.write(garbage, 0, garbage.length, offset);
  await handle.close();
}
const damages: { name: string; damage: () => Promise<void> }[] = [
  { name: 'features.arrow with 64 KiB overwritten in place (same size)', damage: () => overwriteInPlace(path.join(entryOf('encode'), 'features.arrow'), 64 << 10) },
  { name: 'features.arrow truncated to half', damage: async () => truncate(path.join(entryOf('encode'), 'features.arrow'), Math.floor((await stat(path.join(entryOf('encode'), 'features.arrow'))).size / 2)) },
  { name: 'tokenize entry: manifest.json missing', damage: () => unlink(path.join(entryOf('tokenize'), 'manifest.json')) },
  { name: 'train entry: manifest.json truncated', damage: () => truncate(path.join(entryOf('train'), 'manifest.json'), 20) },
  { name: 'train entry: head.safetensors garbage (same size)', damage: async () => overwriteInPlace(path.join(entryOf('train'), 'head.safetensors'), (await stat(path.join(entryOf('train'), 'head.safetensors'))).size) },
  { name: 'data entry: an Arrow file truncated to 100 bytes', damage: async () => {
    const dir = entryOf('data');
    const arrowFile = (await readdir(dir)).find((n) => n.endsWith('.arrow'))!;
    await truncate(path.join(dir, arrowFile), 100);
  } },
  { name: 'evaluate entry: metrics.json replaced by garbage', damage: () => writeFile(path.join(entryOf('evaluate'), 'metrics.json'), '{"train": nul') },
];
{
  for (const d of damages) {
    const failures: string[] = [];
    if (!existsSync(referenceCache)) break;
    await d.damage();
    const rerun = await run(referenceCache, runsDir);
    checkRerun(rerun, failures, d.name, { expectWarning: /warning/i });
    // Healed: a second run uses the cache without warnings.
    const again = await run(referenceCache, runsDir);
    const doc = checkRerun(again, failures, `${d.name}, second rerun`);
    if (doc && /warning/i.test(again.stderr)) failures.push(`${d.name}: the second rerun still warns: ${lastLines(again.stderr)}`);
    if (doc && doc.stages.some((s) => !s.cached)) failures.push(`${d.name}: the second rerun recomputed ${doc.stages.filter((s) => !s.cached).map((s) => s.name).join(', ')}`);
    report({ name: `damaged: ${d.name}`, trials: 1, failures });
  }
}

// 3. Two runs at once on one fresh cache.
{
  const failures: string[] = [];
  const cacheDir = freshCache();
  const [a, b] = await Promise.all([run(cacheDir, runsDir), run(cacheDir, runsDir)]);
  const docs = [checkRerun(a, failures, 'first of two'), checkRerun(b, failures, 'second of two')];
  if (docs[0] && docs[1]) {
    for (const stage of docs[0].stages) {
      const entries = (await readdir(path.join(cacheDir, stage.name))).filter((n) => /^[0-9a-f]{64}$/.test(n));
      if (entries.length !== 1) failures.push(`${stage.name}: ${entries.length} entries, expected 1`);
      const computed = docs.filter((d) => !d!.stages.find((s) => s.name === stage.name)!.cached).length;
      if (computed !== 1) failures.push(`${stage.name}: reported as computed by ${computed} runs, expected exactly 1`);
    }
  }
  const left = await leftovers(cacheDir);
  if (left.length) failures.push(`left behind: ${left.join(', ')}`);
  report({ name: 'two runs at once on one cache', trials: 1, failures });
}

// 4. Starts: every start of a command must end with its output, or exit non-zero.
{
  const failures: string[] = [];
  const starts = Number(values.starts);
  const model = path.join(work, 'model');
  // Its own cache, so a failure of an earlier case does not show up here.
  const cacheDir = freshCache();
  await run(cacheDir, runsDir);
  const exported = await cli(['export', '--config', experiment, ...sets, '--cache-dir', cacheDir, '--out', model]);
  if (exported.code !== 0) failures.push(`export exited ${exported.code}: ${lastLines(exported.stderr)}`);
  else {
    const texts = path.join(work, 'texts.txt');
    await writeFile(texts, 'I like you!\nI hate you!\nwhat a film\n');
    for (let i = 0; i < starts; i++) {
      const r = await cli(['infer', '--model', model, '--file', texts, '--json']);
      let rows = -1;
      try {
        rows = (JSON.parse(r.stdout) as unknown[]).length;
      } catch {
        // counted below
      }
      if (r.code === 0 && rows !== 3) failures.push(`start ${i + 1}: exited 0 without its output (silent exit): ${lastLines(r.stderr)}`);
      else if (r.code !== 0) failures.push(`start ${i + 1}: exited ${r.code ?? r.signal}: ${lastLines(r.stderr)}`);
    }
  }
  report({ name: 'infer --model starts', trials: starts, failures });
}
{
  const failures: string[] = [];
  const sweeps = Number(values.sweeps);
  for (let i = 0; i < sweeps; i++) {
    const r = await cli(['sweep', 'experiments/sweeps/quickstart-grid.yaml', '--jobs', '2', '--json', '--cache-dir', path.join(work, 'sweep-cache'), '--runs-dir', runsDir]);
    let trials: { id: string; status: string; error?: string }[] = [];
    try {
      trials = (JSON.parse(r.stdout) as { trials: typeof trials }).trials;
    } catch {
      // counted below
    }
    if (r.code === 0 && trials.length !== 4) failures.push(`sweep ${i + 1}: exited 0 without its 4 trials (silent exit): ${lastLines(r.stderr)}`);
    else if (r.code !== 0) failures.push(`sweep ${i + 1}: exited ${r.code ?? r.signal}: ${trials.filter((t) => t.status !== 'done').map((t) => `${t.id}: ${t.error}`).join('; ') || lastLines(r.stderr)}`);
    // Each sweep starts cold, so trials share and compute the upstream stages at once.
    await rm(path.join(work, 'sweep-cache'), { recursive: true, force: true });
  }
  report({ name: 'two-job sweeps of the quickstart grid', trials: sweeps, failures });
}

if (!values.keep) await rm(work, { recursive: true, force: true });
const failed = results.filter((r) => r.failures.length).length;
console.log(`${results.reduce((n, r) => n + r.trials, 0)} trials in ${results.length} cases: ${failed ? `${failed} cases failed` : 'all passed'}`);
process.exit(failed ? 1 : 0);
