import { expect } from 'chai';
import { spawn, type ChildProcessWithoutNullStreams } from 'node:child_process';
import { createServer } from 'node:net';
import path from 'node:path';
import { makeReviewRows } from '../fixtures/reviews.js';
import { trainedExperiment } from '../fixtures/trained.js';
import { NO_TRACE, REPO, sentiment, tempDir } from '../helpers.js';

/** `sentiment serve ...` as a child process; resolves once its log says where it listens. */
function serveChild(args: string[], env: Record<string, string>) {
  const child: ChildProcessWithoutNullStreams = spawn(process.execPath, [path.join(REPO, 'bin/run.js'), 'serve', ...args], { cwd: REPO, env: { ...process.env, CI: '1', ...env } });
  let stderr = '';
  let stdout = '';
  child.stdout.on('data', (c) => (stdout += c));
  const exited = new Promise<number | null>((resolve) => child.on('close', (code) => resolve(code)));
  const waitFor = (pattern: RegExp) =>
    new Promise<RegExpExecArray>((resolve, reject) => {
      const check = () => {
        const m = pattern.exec(stderr);
        if (m) resolve(m);
        return m;
      };
      child.stderr.on('data', (c) => {
        stderr += c;
        check();
      });
      void exited.then(() => check() ?? reject(new Error(`exited without ${pattern}: ${stderr}`)));
    });
  const ready = waitFor(/ready: .*POST (http:\/\/[\d.:]+)\/predict/).then((m) => m[1]);
  return { child, ready, exited, output: () => ({ stdout, stderr }) };
}

describe('sentiment serve (the command)', function () {
  this.timeout(600_000);
  let file: string;
  let env: Record<string, string>;
  const texts = makeReviewRows(30, 5).map((r) => r.text);

  before(async () => {
    ({ file, env } = await trainedExperiment(await tempDir()));
  });

  it('on SIGTERM stops accepting, answers every request it accepted in full, and exits 0', async () => {
    // Requests wait up to 10 s for a batch of 64: they are all still queued when SIGTERM comes.
    const server = serveChild(['--config', file, '--port', '0', '--batch-wait-ms', '10000'], env);
    const url = await server.ready;
    const inferred = await sentiment(['infer', '--config', file, '--text', texts[0], '--json'], env);
    const want = JSON.parse(inferred.stdout).probability as number;
    const requests = texts.map((t) => fetch(`${url}/predict`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ text: t }) }));
    while (((await (await fetch(`${url}/health`)).json()) as { queued: number }).queued < texts.length);
    server.child.kill('SIGTERM');
    const responses = await Promise.all(requests);
    expect(responses.map((r) => r.status)).to.deep.equal(texts.map(() => 200));
    const answers = (await Promise.all(responses.map((r) => r.json()))) as { probability: number; label: string }[];
    expect(answers[0].probability).to.be.closeTo(want, 1e-6);
    for (const a of answers) expect(a.probability).to.be.within(0, 1);
    expect(await server.exited, server.output().stderr).to.equal(0);
    const { stderr } = server.output();
    expect(stderr).to.contain('stopping: no new requests');
    expect(stderr.trim().split('\n').filter((l) => / POST \/predict 200 /.test(l))).to.have.length(texts.length);
    expect(stderr).to.match(/\nstopped\n?$/);
    // Nothing listens there any more.
    expect(await fetch(`${url}/health`).then(() => 'answered', () => 'refused')).to.equal('refused');
  });

  it('logs JSON lines with --log-format json and stops on Ctrl-C (SIGINT) with exit 0', async () => {
    const server = serveChild(['--config', file, '--port', '0', '--log-format', 'json'], env);
    const m = await new Promise<string>((resolve, reject) => {
      let err = '';
      server.child.stderr.on('data', (c) => {
        err += c;
        const ready = err.split('\n').map((l) => (l.startsWith('{') ? JSON.parse(l) : {})).find((e) => e.event === 'ready');
        if (ready) resolve(ready.url);
      });
      void server.exited.then(() => reject(new Error(err)));
    });
    const r = await fetch(`${m}/predict`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ texts: texts.slice(0, 2) }) });
    expect(r.status).to.equal(200);
    server.child.kill('SIGINT');
    expect(await server.exited).to.equal(0);
    const events = server
      .output()
      .stderr.split('\n')
      .filter((l) => l.startsWith('{'))
      .map((l) => JSON.parse(l));
    expect(events.map((e) => e.event ?? `${e.method} ${e.path} ${e.status} ${e.batch}`)).to.deep.equal(['listening', 'ready', 'POST /predict 200 2', 'stopping', 'stopped']);
  });

  it('exits 2 without exactly one of --config and --model, and 1 with a clear message when the port is taken or nothing was trained', async () => {
    expect((await sentiment(['serve'], env)).code).to.equal(2);
    expect((await sentiment(['serve', '--config', file, '--model', 'x'], env)).code).to.equal(2);
    const untrained = await sentiment(['serve', '--config', file, '--set', 'HIDDEN_DIM=3', '--port', '0'], env);
    expect(untrained.code).to.equal(1);
    expect(untrained.stderr).to.contain(`sentiment run ${file} --set HIDDEN_DIM=3`);
    expect(untrained.stderr).to.not.match(NO_TRACE);
    const blocker = createServer();
    await new Promise<void>((resolve) => blocker.listen(0, '127.0.0.1', resolve));
    const port = (blocker.address() as { port: number }).port;
    try {
      const taken = await sentiment(['serve', '--config', file, '--port', String(port)], env);
      expect(taken.code).to.equal(1);
      expect(taken.stderr).to.contain(`--port ${port}: the address 127.0.0.1:${port} is already in use`);
      expect(taken.stderr).to.not.match(NO_TRACE);
    } finally {
      blocker.close();
    }
  });
});
