import { expect } from 'chai';
import { readFile } from 'node:fs/promises';
import path from 'node:path';
import { Queue, type RedisClient } from 'bullmq';
import { cacheId } from '../../src/core/cache.js';
import { UserError } from '../../src/core/errors.js';
import { MemoryRungStore, ashaVerdict, earlyStopPolicy } from '../../src/runner/asha.js';
import { RedisRungStore, parseRedisUrl, probeRedis, queueVersion, refusal, trialJobId } from '../../src/runner/queue.js';
import { STAGES } from '../../src/stages/index.js';
import type { EpochRecord } from '../../src/training/trained-head.js';
import { REPO, tempDir, thrownBy, writeText } from '../helpers.js';
import { freePort, startRedis } from '../redis.js';

describe('runner/queue: RedisRungStore', function () {
  let url: string;
  const queues: Queue[] = [];
  /** A client on the suite's Redis (BullMQ's, as the worker uses). */
  async function client(): Promise<RedisClient> {
    const q = new Queue(`rung-test-${queues.length}`, { connection: parseRedisUrl(url).options });
    queues.push(q);
    return q.client;
  }

  before(async function () {
    ({ url } = await startRedis(this));
  });
  after(async () => {
    for (const q of queues) await q.close();
  });

  it('answers exactly as MemoryRungStore over a sequence with repeats, several rungs and exact doubles', async () => {
    const redis = new RedisRungStore(await client(), 'same-as-memory');
    const memory = new MemoryRungStore();
    const values = [0.5, 0.1 + 0.2, 1e-300, -0.25, 0.6931471805599453, 2 / 3, 0.5];
    // A fixed pseudo-random sequence of (rung, trial, value), trials coming back to rungs they passed.
    let seed = 7;
    const next = (n: number) => ((seed = (seed * 1103515245 + 12345) % 2 ** 31), seed % n);
    const calls: [number, string, number][] = [];
    for (let i = 0; i < 60; i++) calls.push([[1, 3, 9][next(3)], `t${next(8)}`, values[next(values.length)]]);
    for (const [rung, trial, value] of calls) {
      expect(await redis.recordAndRead(rung, trial, value), `${trial} at rung ${rung}`).to.deep.equal(await memory.recordAndRead(rung, trial, value));
    }
  });

  it('keeps a trial its first value and position: a replay gets the same earlier values', async () => {
    const store = new RedisRungStore(await client(), 'replay');
    expect(await store.recordAndRead(1, 'a', 0.4)).to.deep.equal([]);
    expect(await store.recordAndRead(1, 'b', 0.3)).to.deep.equal([0.4]);
    expect(await store.recordAndRead(1, 'c', 0.2)).to.deep.equal([0.4, 0.3]);
    expect(await store.recordAndRead(1, 'b', 9)).to.deep.equal([0.4]);
    expect(await store.recordAndRead(1, 'd', 0.1)).to.deep.equal([0.4, 0.3, 0.2]);
  });

  it('keeps sweeps apart, and its keys expire after about 7 days', async () => {
    const c = await client();
    await new RedisRungStore(c, 'one').recordAndRead(1, 'a', 0.4);
    expect(await new RedisRungStore(c, 'two').recordAndRead(1, 'b', 0.5)).to.deep.equal([]);
    const keys = await (c as unknown as { keys(p: string): Promise<string[]> }).keys('sentiment:rungs:*');
    expect(keys).to.include.members(['sentiment:rungs:{one}:1:at', 'sentiment:rungs:{one}:1:values']);
    for (const key of keys) {
      const ttl = await (c as unknown as { pttl(k: string): Promise<number> }).pttl(key);
      expect(ttl, key).to.be.within(6.9 * 24 * 3600 * 1000, 7 * 24 * 3600 * 1000);
    }
  });

  it('orders trials that reach a rung at once from several connections: each sees exactly those before it', async () => {
    const clients = await Promise.all([client(), client(), client()]);
    const n = 30;
    const answers = await Promise.all(Array.from({ length: n }, (_, i) => new RedisRungStore(clients[i % 3], 'race').recordAndRead(3, `t${i}`, i)));
    // Every position once, and each trial's answer is the prefix of one common order.
    expect(answers.map((a) => a.length).sort((a, b) => a - b)).to.deep.equal(Array.from({ length: n }, (_, i) => i));
    const order = answers.reduce((longest, a) => (a.length > longest.length ? a : longest), [] as number[]);
    const last = answers.findIndex((a) => a.length === n - 1);
    const full = [...order, last];
    for (const a of answers) expect(a).to.deep.equal(full.slice(0, a.length));
  });

  it('gives ASHA the same verdicts as the in-memory store', async () => {
    const policy = earlyStopPolicy({ method: 'asha', min_epochs: 1, reduction_factor: 2 });
    const redis = new RedisRungStore(await client(), 'asha');
    const memory = new MemoryRungStore();
    const record = (epoch: number, valid_loss: number): EpochRecord => ({ epoch, valid_loss, train_loss: valid_loss, valid_accuracy: 0.5, train_accuracy: 0.5, seconds: 1, best: true });
    const losses = [0.7, 0.6, 0.9, 0.65, 0.5, 0.8, 0.66];
    let stops = 0;
    for (const [i, loss] of losses.entries()) {
      for (const epoch of [1, 2, 4]) {
        const r = record(epoch, loss + epoch / 100);
        const verdict = await ashaVerdict(policy, redis, `t${i}`, r, 8);
        expect(verdict).to.deep.equal(await ashaVerdict(policy, memory, `t${i}`, r, 8));
        if (verdict.stop) stops++;
      }
    }
    expect(stops, 'the sequence stops some trials').to.be.greaterThan(0);
  });
});

describe('runner/queue: URLs, Redis probe, refusing jobs, cache id', () => {
  it('parses redis URLs and names a bad one', () => {
    expect(parseRedisUrl('redis://10.0.0.5:6380/2').options).to.include({ host: '10.0.0.5', port: 6380, db: 2 });
    expect(parseRedisUrl('redis://queue-host').options).to.include({ host: 'queue-host', port: 6379, db: 0 });
    const secret = parseRedisUrl('redis://:s%40cret@h:1');
    expect(secret.options).to.include({ password: 's@cret' });
    expect(secret.display).to.equal('redis://h:1');
    for (const bad of ['http://h:1', 'redis://h:99999', 'redis://h:1/x', 'localhost:6379', 'redis://']) {
      const e = thrownBy(() => parseRedisUrl(bad));
      expect(e, bad).to.be.instanceOf(UserError);
      expect((e as Error).message, bad).to.contain(`--queue ${bad}:`);
    }
  });

  it('fails fast, naming the URL and the reason, when nothing listens there', async () => {
    const port = await freePort();
    const url = `redis://127.0.0.1:${port}`;
    const e = await probeRedis(parseRedisUrl(url)).then(
      () => expect.fail('it should not reach Redis'),
      (err: unknown) => err,
    );
    expect(e).to.be.instanceOf(UserError);
    expect((e as Error).message).to.equal(`cannot reach Redis at ${url} (ECONNREFUSED)`);
  });

  it('refuses a job of another version or another cache, naming both values', () => {
    const worker = { version: '0.1.0/p1', cache: { dir: '/x', id: 'aaa' } };
    expect(refusal({ version: '0.1.0/p1', cacheId: 'aaa' }, worker)).to.equal(undefined);
    expect(refusal({ version: '0.2.0/p1', cacheId: 'aaa' }, worker)).to.equal('worker 0.1.0/p1 cannot run a job of sweep version 0.2.0/p1: run the same sentiment version on every machine');
    expect(refusal({ version: '0.1.0/p1', cacheId: 'bbb' }, worker)).to.equal("this worker's cache /x is not the sweep's cache (id aaa≠bbb): mount the same cache folder on every machine");
  });

  it("names its version after package.json's", async () => {
    const pkg = JSON.parse(await readFile(path.resolve(import.meta.dirname, '../../package.json'), 'utf8'));
    expect(queueVersion()).to.match(new RegExp(`^${pkg.version.replace(/\./g, '\\.')}/p\\d+$`));
  });

  it('gives a cache folder one id, also to processes racing to create it, and another folder another', async () => {
    const dir = await tempDir();
    const a = path.join(dir, 'a');
    const ids = await Promise.all(Array.from({ length: 8 }, () => cacheId(a)));
    expect(new Set(ids).size).to.equal(1);
    expect(ids[0]).to.match(/^[0-9a-f-]{36}$/);
    expect(await cacheId(a)).to.equal(ids[0]);
    expect(await cacheId(path.join(dir, 'b'))).to.not.equal(ids[0]);
  });

  it("names a trial's job by its stages' keys: not by the file's text, but by every setting a stage reads; with early stopping, per sweep", async () => {
    const dir = await tempDir();
    const quickstart = path.join(REPO, 'experiments/quickstart.yaml');
    // A copy elsewhere, with a comment: its relative paths given absolute (a path is in no key, only the files' content).
    const copy = path.join(dir, 'copy.yaml');
    await writeText(copy, `# a comment changes no key\n${await readFile(quickstart, 'utf8')}`);
    const paths = [`MODEL=${path.join(REPO, 'examples/tiny-bert')}`, `DATASET=${path.join(REPO, 'examples/reviews')}`];
    const job = (experimentFile: string, sets: string[]) => ({ id: 't1', name: 's/t1', experimentFile, sets, cacheDir: path.join(dir, 'cache'), runsDir: path.join(dir, 'runs') });
    const base = await trialJobId(job(quickstart, ['HIDDEN_DIM=4']), STAGES, 'sweep1');
    expect(base).to.match(/^trial-[0-9a-f]{64}$/);
    expect(await trialJobId(job(copy, ['HIDDEN_DIM=4', ...paths]), STAGES, 'sweep2')).to.equal(base);
    expect(await trialJobId(job(quickstart, ['HIDDEN_DIM=8']), STAGES, 'sweep1')).to.not.equal(base);
    expect(await trialJobId(job(quickstart, ['HIDDEN_DIM=4', 'TEXT="another text"']), STAGES, 'sweep1')).to.not.equal(base);
    expect(await trialJobId(job(quickstart, ['HIDDEN_DIM=4']), STAGES, 'sweep1', { method: 'asha' })).to.equal(`${base}-sweep1`);
  });
});
