import { expect } from 'chai';
import { connect } from 'node:net';
import path from 'node:path';
import { gzipSync } from 'node:zlib';
import { startServer, type Opened, type Server } from '../../src/runner/serve.js';
import { openPredictor, type InferRequest } from '../../src/runner/trained-model.js';
import { STAGES } from '../../src/stages/index.js';
import { makeReviewRows } from '../fixtures/reviews.js';
import { trainedExperiment } from '../fixtures/trained.js';
import { NO_TRACE, sentiment, tempDir, writeText } from '../helpers.js';

interface Answer {
  probability: number;
  label: string;
}

const post = (server: Server, body: unknown, headers: Record<string, string> = { 'content-type': 'application/json' }, signal?: AbortSignal) =>
  fetch(`${server.url}/predict`, { method: 'POST', headers, body: typeof body === 'string' || body instanceof Blob ? body : JSON.stringify(body), signal });

describe('serve: a real HTTP server over a trained head', function () {
  this.timeout(600_000);
  let dir: string;
  let request: InferRequest;
  let env: Record<string, string>;
  let file: string;
  const texts = makeReviewRows(60, 11).map((r) => r.text);
  /** What `sentiment infer --file` predicts for each text. */
  const expected = new Map<string, Answer>();
  let server: Server;
  const log: string[] = [];

  before(async () => {
    dir = await tempDir();
    ({ file, env } = await trainedExperiment(dir));
    request = { stages: STAGES, config: file, sets: [], cacheDir: env.SENTIMENT_CACHE_DIR };
    const input = await writeText(path.join(dir, 'texts.txt'), `${texts.join('\n')}\n`);
    const r = await sentiment(['infer', '--config', file, '--file', input], env);
    expect(r.code, r.stderr).to.equal(0);
    for (const row of r.stdout.trim().split('\n').map((l) => JSON.parse(l))) expected.set(row.text, { probability: row.probability, label: row.predicted });
    server = await startServer(request, { port: 0, maxWaitMs: 20, write: (l) => log.push(l) });
    await server.ready;
  });
  after(() => server?.close());

  function expectInfer(answers: Answer[], sent: string[]): void {
    expect(answers.map((a) => Object.keys(a))).to.deep.equal(sent.map(() => ['probability', 'label']));
    expect(answers.map((a) => a.label)).to.deep.equal(sent.map((t) => expected.get(t)!.label));
    answers.forEach((a, i) => expect(a.probability, sent[i]).to.be.closeTo(expected.get(sent[i])!.probability, 1e-6));
  }

  it('listens on 127.0.0.1 by default and says it is ready on GET /health', async () => {
    expect(server.url).to.match(/^http:\/\/127\.0\.0\.1:\d+$/);
    const r = await fetch(`${server.url}/health`);
    expect(r.status).to.equal(200);
    expect(await r.json()).to.deep.equal({ status: 'ok', queued: 0 });
  });

  it('answers {"text"} with {"probability","label"} and {"texts"} with a list in the same order, as infer does', async () => {
    const one = await post(server, { text: texts[0] });
    expect(one.status).to.equal(200);
    expectInfer([(await one.json()) as Answer], [texts[0]]);
    const sent = texts.slice(0, 20).reverse();
    const many = await post(server, { texts: sent });
    expect(many.status).to.equal(200);
    expectInfer((await many.json()) as Answer[], sent);
  });

  it('gives the probability `infer --text` gives, to 1e-6', async () => {
    const r = await sentiment(['infer', '--config', file, '--text', texts[7], '--json'], env);
    expect(r.code, r.stderr).to.equal(0);
    const answer = (await (await post(server, { text: texts[7] })).json()) as Answer;
    expect(answer.probability).to.be.closeTo(JSON.parse(r.stdout).probability, 1e-6);
  });

  it('answers 200 concurrent requests, each caller its own texts in its order, in shared batches', async () => {
    log.length = 0;
    const sends = Array.from({ length: 200 }, (_, i) => {
      const k = 1 + (i % 3);
      return Array.from({ length: k }, (_, j) => texts[(i * 7 + j * 13) % texts.length]);
    });
    const answers = await Promise.all(
      sends.map(async (sent, i) => {
        const r = await post(server, i % 2 ? { texts: sent } : { text: sent[0] });
        expect(r.status).to.equal(200);
        const body = await r.json();
        return (i % 2 ? body : [body]) as Answer[];
      }),
    );
    answers.forEach((a, i) => expectInfer(a, i % 2 ? sends[i] : [sends[i][0]]));
    const access = log.filter((l) => l.includes('POST /predict'));
    expect(access).to.have.length(200);
    const batches = access.map((l) => Number(/batch=(\d+)/.exec(l)![1]));
    expect(Math.max(...batches)).to.be.above(3);
    expect(Math.max(...batches)).to.be.at.most(64);
  });

  it('answers a malformed or wrongly shaped body with 400 and a message naming the field', async () => {
    const cases: [unknown, string][] = [
      ['{"text": ', 'body: not valid JSON'],
      [[1], 'body: must be a JSON object'],
      [{}, 'needs "text" (a string) or "texts"'],
      [{ txt: 'a' }, 'txt: unknown field'],
      [{ text: 5 }, 'text: must be a string'],
      [{ text: '  ' }, 'text: must not be empty'],
      [{ texts: 'a' }, 'texts: must be an array of strings'],
      [{ texts: [] }, 'texts: must hold at least one text'],
      [{ texts: ['a', 7] }, 'texts[1]: must be a string'],
      [{ text: 'a', texts: ['b'] }, 'either "text" or "texts", not both'],
      // A key JSON.parse keeps as an own property is refused by name, not as invalid JSON.
      ['{"text": "a", "__proto__": {"x": 1}}', '__proto__: unknown field'],
      ['{"text": "a", "constructor": {"prototype": {"x": 1}}}', 'constructor: unknown field'],
    ];
    for (const [body, message] of cases) {
      const r = await post(server, body);
      const text = await r.text();
      expect(r.status, JSON.stringify(body)).to.equal(400);
      expect(JSON.parse(text).error, JSON.stringify(body)).to.contain(message);
      expect(text).to.not.match(/\bat \S+:\d+/);
    }
    for (const type of ['application/x-www-form-urlencoded', 'text/plain', 'text/plain; charset=utf-8']) {
      const other = await post(server, type.startsWith('text/') ? '{"text": "a"}' : 'text=a', { 'content-type': type });
      expect(other.status, type).to.equal(415);
      expect(((await other.json()) as { error: string }).error, type).to.contain('content-type: application/json');
    }
    const gzip = await post(server, new Blob([gzipSync('{"text": "a"}')]), { 'content-type': 'application/json', 'content-encoding': 'gzip' });
    expect(gzip.status).to.equal(415);
    expect(((await gzip.json()) as { error: string }).error).to.equal('body: content-encoding gzip is not supported; send the JSON uncompressed');
    const missing = await fetch(`${server.url}/nope`);
    expect(missing.status).to.equal(404);
    expect(((await missing.json()) as { error: string }).error).to.contain('POST /predict');
  });

  it("answers what Node's HTTP parser refuses (an unknown method, headers too large) in the same JSON error format, and logs it", async () => {
    /** One raw request; resolves with everything the server sent before it closed the connection. */
    const raw = (request: string) =>
      new Promise<string>((resolve, reject) => {
        const socket = connect(Number(new URL(server.url).port), '127.0.0.1', () => socket.end(request));
        let got = '';
        socket.on('data', (d) => (got += d));
        socket.on('close', () => resolve(got));
        socket.on('error', reject);
      });
    log.length = 0;
    const method = await raw('BREW /predict HTTP/1.1\r\nHost: x\r\n\r\n');
    expect(method).to.match(/^HTTP\/1\.1 400 /);
    expect(JSON.parse(method.slice(method.indexOf('\r\n\r\n') + 4))).to.deep.equal({ error: 'request: not valid HTTP (HPE_INVALID_METHOD)' });
    const long = await raw(`GET /${'a'.repeat(100_000)} HTTP/1.1\r\nHost: x\r\n\r\n`);
    expect(long).to.match(/^HTTP\/1\.1 431 /);
    expect(JSON.parse(long.slice(long.indexOf('\r\n\r\n') + 4))).to.deep.equal({ error: 'request: the URL and headers are too large' });
    expect(log).to.deep.equal(['client error 400: request: not valid HTTP (HPE_INVALID_METHOD)', 'client error 431: request: the URL and headers are too large']);
  });

  it('GET /model gives the resolved config, classes, encoder, head settings and when it was trained', async () => {
    const info = (await (await fetch(`${server.url}/model`)).json()) as Record<string, any>;
    expect(info.experiment).to.equal('exp');
    expect(info.classes).to.deep.equal(['negative', 'positive']);
    expect(info.target).to.equal('negative');
    expect(info.config).to.include({ MAX_LENGTH: 32, HIDDEN_DIM: 8, TARGET: 'negative' });
    expect(info.encoder).to.include({ max_length: 32, dtype: 'float16', device: 'cpu', width: 32 });
    expect(info.head).to.include({ hiddenSize: 8, layers: 2, bidirectional: true, backend: 'onnxruntime' });
    expect(Date.parse(info.trained_at)).to.be.below(Date.now());
    expect(info.serving).to.deep.equal({ batch_wait_ms: 20, max_batch: 64, max_queue: 1024, body_limit: 1024 * 1024 });
  });

  describe('limits', () => {
    let small: Server;
    const lines: string[] = [];
    /**
     * A server whose batches wait 10 s unless full (4 texts). Only its first batch surely waits: after a
     * batch, one starts as soon as the callers it answered are back, so tests that need texts to wait
     * get a server of their own.
     */
    const startSmall = async (write: (line: string) => void) => {
      const server = await startServer(request, { port: 0, bodyLimit: 2000, maxQueue: 4, maxBatch: 4, maxWaitMs: 10_000, logFormat: 'json', write });
      await server.ready;
      return server;
    };
    before(async () => (small = await startSmall((l) => lines.push(l))));
    after(() => small?.close());

    it('answers a body over --body-limit with 413, and a text longer than MAX_LENGTH tokens like infer (truncated)', async () => {
      const big = await post(small, { text: 'good '.repeat(500) });
      expect(big.status).to.equal(413);
      expect(((await big.json()) as { error: string }).error).to.contain('larger than the limit of 2000 bytes');
      const long = `${texts[0]} ${'the plot was good and the cast was great. '.repeat(5)}`;
      const r = await sentiment(['infer', '--config', file, '--text', long, '--json'], env);
      expect(r.code, r.stderr).to.equal(0);
      // A batch waits out --batch-wait-ms (10 s) unless it is full: 4 texts fill it.
      const answers = (await (await post(small, { texts: [long, long, long, long] })).json()) as Answer[];
      expect(answers[3].probability).to.be.closeTo(JSON.parse(r.stdout).probability, 1e-6);
    });

    it('answers 503 with Retry-After when the queue is full, and takes requests again once it has room', async () => {
      const fresh = await startSmall(() => {});
      try {
        const waiting = post(fresh, { texts: texts.slice(0, 3) });
        // /health says when the 3 texts wait (10 s, for a fourth to fill the batch); the queue holds 4.
        while (((await (await fetch(`${fresh.url}/health`)).json()) as { queued: number }).queued < 3);
        const full = await post(fresh, { texts: texts.slice(3, 5) });
        expect(full.status).to.equal(503);
        expect(full.headers.get('retry-after')).to.equal('1');
        expect(((await full.json()) as { error: string }).error).to.contain('queue is full');
        const fits = await post(fresh, { text: texts[3] });
        expect(fits.status).to.equal(200);
        expectInfer([(await fits.json()) as Answer], [texts[3]]);
        expectInfer((await (await waiting).json()) as Answer[], texts.slice(0, 3));
      } finally {
        await fresh.close();
      }
    });

    it('logs one JSON line per request with --log-format json: method, path, status, ms, batch size', async () => {
      lines.length = 0;
      await fetch(`${small.url}/health`);
      await post(small, { texts: texts.slice(0, 4) });
      const entries = lines.map((l) => JSON.parse(l));
      expect(entries.map((e) => [e.method, e.path, e.status, e.batch])).to.deep.equal([
        ['GET', '/health', 200, null],
        ['POST', '/predict', 200, 4],
      ]);
      for (const e of entries) expect(e.ms).to.be.a('number');
    });

    it('logs a request whose client went away before its answer as 499', async () => {
      const logged: string[] = [];
      const fresh = await startSmall((l) => logged.push(l));
      try {
        const controller = new AbortController();
        const gone = post(fresh, { text: texts[0] }, { 'content-type': 'application/json' }, controller.signal).catch(() => 'aborted');
        while (((await (await fetch(`${fresh.url}/health`)).json()) as { queued: number }).queued < 1);
        controller.abort();
        expect(await gone).to.equal('aborted');
        while (!logged.some((l) => l.includes('"status":499'))) await new Promise((resolve) => setTimeout(resolve, 10));
        expect(JSON.parse(logged.find((l) => l.includes('"status":499'))!)).to.include({ method: 'POST', path: '/predict', status: 499 });
      } finally {
        await fresh.close();
      }
    });
  });

  it('answers 503 on /health and /predict while the model loads, 200 once it is loaded', async () => {
    let release!: () => void;
    const held = new Promise<void>((r) => (release = r));
    let asked: InferRequest | undefined;
    const loading = await startServer(request, { port: 0, write: () => {}, open: async (req, found): Promise<Opened> => ((asked = req), await held, openPredictor(req, found)) });
    try {
      const health = await fetch(`${loading.url}/health`);
      expect(health.status).to.equal(503);
      expect(health.headers.get('retry-after')).to.equal('1');
      expect((await post(loading, { text: 'x' })).status).to.equal(503);
      expect((await fetch(`${loading.url}/model`)).status).to.equal(503);
      release();
      await loading.ready;
      // The server loads the model as infer does, but with ONNX Runtime's threads not spinning.
      expect(asked).to.deep.equal({ ...request, allowSpinning: false });
      expect((await fetch(`${loading.url}/health`)).status).to.equal(200);
    } finally {
      release();
      await loading.close();
    }
  });

  it('stopped while the model loads: exits without ever saying ready', async () => {
    let release!: () => void;
    const held = new Promise<void>((r) => (release = r));
    const lines: string[] = [];
    const loading = await startServer(request, { port: 0, write: (l) => lines.push(l), open: async (req, found): Promise<Opened> => (await held, openPredictor(req, found)) });
    const closing = loading.close();
    release();
    await closing;
    expect(lines.map((l) => l.split(' ')[0].replace(/:$/, ''))).to.deep.equal(['listening', 'stopping', 'stopped']);
  });

  it('answers 500 without the error or its stack when prediction fails, and logs the stack', async () => {
    const lines: string[] = [];
    const failing = await startServer(request, {
      port: 0,
      write: (l) => lines.push(l),
      open: async (req) => {
        const opened = await openPredictor(req);
        // The warm-up prediction before ready works; the engine fails from the first request on.
        let calls = 0;
        return { ...opened, predictor: { ...opened.predictor, predict: (t: string[]) => (calls++ === 0 ? opened.predictor.predict(t) : Promise.reject(new Error('engine failed'))) } };
      },
    });
    try {
      await failing.ready;
      const r = await post(failing, { text: texts[0] });
      expect(r.status).to.equal(500);
      expect(await r.json()).to.deep.equal({ error: 'internal error while predicting; see the server log' });
      expect(lines.join('\n')).to.contain('error in POST /predict: Error: engine failed').and.match(NO_TRACE);
    } finally {
      await failing.close();
    }
  });

  it('fails to start with a clear error when the port is taken or the config was never trained', async () => {
    const port = Number(new URL(server.url).port);
    const taken = await startServer(request, { port, write: () => {} }).catch((e: Error) => e);
    expect((taken as Error).message).to.contain(`--port ${port}: the address 127.0.0.1:${port} is already in use`);
    // Found before the port is taken: a busy port does not hide it.
    const untrained = await startServer({ ...request, sets: ['HIDDEN_DIM=3'] }, { port, write: () => {} }).catch((e: Error) => e);
    expect((untrained as Error).message).to.contain('no trained head for this config');
    expect((untrained as Error).message).to.not.match(NO_TRACE);
  });
});
