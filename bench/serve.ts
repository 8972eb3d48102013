// `sentiment serve` under load (autocannon) next to `sentiment infer --file` on the same IMDB reviews, in
// the same run, alternately: for each concurrency (1, 16, 64) infer --file's texts/s, then the server's
// requests/s (one review per request, so texts/s too), p50/p99 latency and peak RSS, then infer --file
// again; the ratio is against the mean of the two infer --file runs around it. Every answer is
// checked against infer --file's. Then p50/p99 at concurrency 1 for one 20-word text, and SIGTERM in the
// middle of a concurrency-64 run: every request the server accepted must get a whole response.
// The model: imdb-bigru.yaml on 1,000 IMDB reviews with ../shared/models/imdb-bert-tiny (MAX_LENGTH 128,
// HIDDEN_DIM 64, 2 epochs), trained once into .bench/serve/ and exported. Prints one JSON line.
// Settings (environment): DURATION seconds per load run (default 10), TEXTS reviews (default 500).
import autocannon from 'autocannon';
import { spawn, spawnSync } from 'node:child_process';
import { existsSync, readFileSync } from 'node:fs';
import { mkdir, readFile, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { Writable } from 'node:stream';
import { exportModel } from '../src/runner/trained-model.js';
import { runExperiments } from '../src/runner/run.js';
import { STAGES } from '../src/stages/index.js';

const repo = path.resolve(import.meta.dirname, '..');
const shared = path.resolve(repo, '../shared');
const model = path.join(shared, 'models/imdb-bert-tiny');
const imdb = path.join(shared, 'data/imdb');
if (!existsSync(model) || !existsSync(path.join(imdb, 'test.jsonl'))) {
  console.log(JSON.stringify({ bench: 'serve', skipped: `needs ${model} and ${imdb}/test.jsonl` }));
  process.exit(0);
}
const DURATION = Number(process.env.DURATION ?? 10);
const TEXTS = Number(process.env.TEXTS ?? 500);
const CONCURRENCY = [1, 16, 64];
/** 20 words. */
const SHORT_TEXT = 'This movie was a pleasant surprise, with a clever plot, warm performances and a lovely soundtrack I still hum today.';

const dir = path.join(repo, '.bench/serve');
const cli = path.join(repo, 'bin/run.js');
const experiment = path.join(repo, 'experiments/imdb-bigru.yaml');
const sets = [`DATASET=${imdb}`, `MODEL=${model}`, 'MAX_TRAIN_EXAMPLES=1000', 'MAX_TEST_EXAMPLES=500', 'MAX_LENGTH=128', 'HIDDEN_DIM=64', 'N_EPOCHS=2'];
const cacheDir = path.join(dir, 'cache');
await mkdir(dir, { recursive: true });
await runExperiments({ stages: STAGES, experiments: [experiment], sets, cacheDir, runsDir: path.join(dir, 'runs'), interactive: false, stream: new Writable({ write: (_c, _e, cb) => cb() }) });
const exported = (await exportModel(experiment, sets, cacheDir, path.join(dir, 'model'), STAGES, { force: true })).dir;
const env = { ...process.env, SENTIMENT_CACHE_DIR: path.join(dir, 'empty-cache') };

// Reviews spread over the file (it is sorted by label).
const lines = (await readFile(path.join(imdb, 'test.jsonl'), 'utf8')).split('\n').filter(Boolean);
const texts = Array.from({ length: TEXTS }, (_, i) => (JSON.parse(lines[Math.floor((i * lines.length) / TEXTS)]) as { text: string }).text);
const input = path.join(dir, 'reviews.jsonl');
await writeFile(input, texts.map((text) => JSON.stringify({ text })).join('\n') + '\n');

/** `infer --file` on the reviews: texts/s once loaded (as the command reports it), and its predictions. */
function inferFile(): { texts_per_s: number; probabilities: number[] } {
  const out = path.join(dir, 'infer-out.jsonl');
  const r = spawnSync(process.execPath, [cli, 'infer', '--model', exported, '--file', input, '--out', out], { env, encoding: 'utf8' });
  const m = /([\d,]+) rows in ([\d.]+)s/.exec(r.stderr);
  if (r.status !== 0 || !m) throw new Error(`infer --file failed: ${r.stderr}`);
  const probabilities = readFileSync(out, 'utf8').trim().split('\n').map((l) => (JSON.parse(l) as { probability: number }).probability);
  return { texts_per_s: Math.round(Number(m[1].replace(/,/g, '')) / Number(m[2])), probabilities };
}

/** A `sentiment serve --model` child on a free port, once ready; its peak RSS sampled while `sampling`. */
async function startServer() {
  const child = spawn(process.execPath, [cli, 'serve', '--model', exported, '--port', '0'], { env, stdio: ['ignore', 'ignore', 'pipe'] });
  let stderr = '';
  const exited = new Promise<number | null>((resolve) => child.on('close', (code) => resolve(code)));
  const url = await new Promise<string>((resolve, reject) => {
    child.stderr.on('data', (c) => {
      stderr += c;
      const m = /ready: .*POST (http:\/\/[\d.:]+)\/predict/.exec(stderr);
      if (m) resolve(m[1]);
    });
    void exited.then(() => reject(new Error(`serve exited: ${stderr.slice(-2000)}`)));
  });
  const rssMiB = () => {
    const m = /VmRSS:\s+(\d+) kB/.exec(readFileSync(`/proc/${child.pid}/status`, 'utf8'));
    return m ? Number(m[1]) / 1024 : 0;
  };
  return { child, url, exited, rssMiB, stderr: () => stderr };
}

interface Load {
  connections: number;
  duration: number;
  /** The text of request number i (per connection, in order). */
  text: (i: number) => string;
  /** Checks a 200's body against what infer gives for that text; false: a wrong answer. */
  check?: (i: number, body: string) => boolean;
  /** Every response received: its status and whether it closed its connection (`Connection: close`). */
  onAnswer?: (status: number, closes: boolean) => void;
  onStart?: (instance: autocannon.Instance) => void;
}

/** One autocannon run: the results, answers checked, errors by code, and the server's peak RSS meanwhile. */
async function load(server: Awaited<ReturnType<typeof startServer>>, opts: Load) {
  let next = 0;
  let wrong = 0;
  let checked = 0;
  const errorCodes: Record<string, number> = {};
  let peak = server.rssMiB();
  const sampler = setInterval(() => {
    try {
      peak = Math.max(peak, server.rssMiB());
    } catch {
      /* the server has exited */
    }
  }, 100);
  const load1 = os.loadavg()[0];
  const result = await new Promise<autocannon.Result>((resolve, reject) => {
    const instance = autocannon(
      {
        url: server.url,
        connections: opts.connections,
        duration: opts.duration,
        headers: { 'content-type': 'application/json' },
        requests: [
          {
            method: 'POST',
            path: '/predict',
            // The request a connection sends now is number `i` (one at a time per connection).
            setupRequest: (req, context) => {
              const i = ((context as { i?: number }).i = next++);
              return { ...req, body: JSON.stringify({ text: opts.text(i) }) };
            },
            onResponse: (status, body, context, headers) => {
              opts.onAnswer?.(status, String(headers?.connection ?? headers?.Connection).toLowerCase() === 'close');
              if (status !== 200 || !opts.check) return;
              checked++;
              if (!opts.check((context as { i: number }).i, body)) wrong++;
            },
          },
        ],
      },
      (err, res) => (err ? reject(err) : resolve(res)),
    );
    instance.on('reqError', (e: Error & { code?: string }) => (errorCodes[e.code ?? e.message] = (errorCodes[e.code ?? e.message] ?? 0) + 1));
    opts.onStart?.(instance);
  });
  clearInterval(sampler);
  return { result, wrong, checked, errorCodes, peakRssMiB: Math.round(peak), load: [+load1.toFixed(2), +os.loadavg()[0].toFixed(2)] };
}

const answerChecker = (probabilities: number[]) => (i: number, body: string) => {
  const p = (JSON.parse(body) as { probability: number }).probability;
  return Math.abs(p - probabilities[i % texts.length]) <= 1e-6;
};

const runs: Record<string, unknown>[] = [];
let reference: number[] | undefined;
let worstDiff = 0;
const inferChecked = () => {
  const infer = inferFile();
  if (reference) infer.probabilities.forEach((p, i) => (worstDiff = Math.max(worstDiff, Math.abs(p - reference![i]))));
  reference ??= infer.probabilities;
  return infer.texts_per_s;
};
for (const connections of CONCURRENCY) {
  const before = inferChecked();
  const server = await startServer();
  try {
    const r = await load(server, { connections, duration: DURATION, text: (i) => texts[i % texts.length], check: answerChecker(reference!) });
    const rps = r.result.requests.average;
    server.child.kill('SIGTERM');
    await server.exited;
    const after = inferChecked();
    const inferMean = (before + after) / 2;
    runs.push({
      concurrency: connections,
      infer_file_texts_per_s: [before, after],
      serve_requests_per_s: Math.round(rps),
      serve_texts_per_s: Math.round(rps),
      serve_vs_infer: +(rps / inferMean).toFixed(2),
      latency_ms_p50: r.result.latency.p50,
      latency_ms_p99: r.result.latency.p99,
      requests: r.result.requests.total,
      non_2xx: r.result.non2xx,
      errors: r.errorCodes,
      answers_checked: r.checked,
      answers_not_as_infer: r.wrong,
      peak_rss_mib: r.peakRssMiB,
      load_average: r.load,
    });
  } finally {
    server.child.kill('SIGTERM');
    await server.exited;
  }
}

// p50/p99 at concurrency 1 for one 20-word text.
const short = await startServer();
let shortRun;
try {
  shortRun = await load(short, { connections: 1, duration: Math.min(DURATION, 5), text: () => SHORT_TEXT });
} finally {
  short.child.kill('SIGTERM');
  await short.exited;
}

// SIGTERM in the middle of a concurrency-64 run.
const victim = await startServer();
const received: Record<string, number> = {};
let closingAnswers = 0;
let receivedBeforeTerm = 0;
const term = await load(victim, {
  connections: 64,
  duration: 6,
  text: (i) => texts[i % texts.length],
  check: answerChecker(reference!),
  onAnswer: (status, closes) => {
    received[status] = (received[status] ?? 0) + 1;
    if (closes) closingAnswers++;
  },
  onStart: (instance) => {
    setTimeout(() => {
      receivedBeforeTerm = Object.values(received).reduce((a, b) => a + b, 0);
      victim.child.kill('SIGTERM');
    }, 3000);
    // Once the server is gone, every try is a refused connection: stop soon after.
    void victim.exited.then(() => setTimeout(() => instance.stop(), 500));
  },
});
const exitCode = await victim.exited;
// What the server answered (its access log: a line once a response was written whole) against what the client got.
const logged: Record<string, number> = {};
for (const m of victim.stderr().matchAll(/ POST \/predict (\d+) /g)) logged[m[1]] = (logged[m[1]] ?? 0) + 1;
const total = (counts: Record<string, number>) => Object.values(counts).reduce((a, b) => a + b, 0);

console.log(
  JSON.stringify({
    bench: 'serve',
    model: 'imdb-bert-tiny, MAX_LENGTH 128, HIDDEN_DIM 64',
    texts: TEXTS,
    seconds_per_run: DURATION,
    cpus: os.cpus().length,
    runs,
    infer_file_runs_max_abs_diff: worstDiff,
    short_text_c1: { words: SHORT_TEXT.split(/\s+/).length, latency_ms_p50: shortRun.result.latency.p50, latency_ms_p99: shortRun.result.latency.p99, requests_per_s: Math.round(shortRun.result.requests.average) },
    sigterm_under_load: {
      answers_before_sigterm: receivedBeforeTerm,
      answered_by_server: logged,
      received_by_client: received,
      // Accepted requests whose answer the client did not get whole: must be 0.
      accepted_without_whole_answer: total(logged) - total(received),
      answers_checked: term.checked,
      answers_not_as_infer: term.wrong,
      // ECONNREFUSED: tries after the server stopped listening. ECONNRESET: requests autocannon wrote on a
      // connection after the server's answer on it said `Connection: close` (the server had not read them).
      client_errors: term.errorCodes,
      answers_with_connection_close: closingAnswers,
      server_exit_code: exitCode,
      server_log_tail: victim.stderr().trim().split('\n').slice(-2),
    },
  }),
);
