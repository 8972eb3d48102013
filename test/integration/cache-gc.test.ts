import { expect } from 'chai';
import { existsSync } from 'node:fs';
import { mkdir, readFile, rename, rm, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { Cache } from '../../src/core/cache.js';
import { collectGarbage } from '../../src/runner/gc.js';
import { sentiment, tempDir, locationEnv } from '../helpers.js';

interface RunDoc {
  run_dir: string;
  stages: { name: string; path: string }[];
}

describe('sentiment cache and cache gc', function () {
  this.timeout(300_000);
  let dir: string;
  let env: Record<string, string>;
  /** The run folder test 2 moved into the future. */
  let future = '';
  const run = async (...args: string[]): Promise<RunDoc> => {
    const r = await sentiment(['run', 'experiments/quickstart.yaml', '--json', ...args], env);
    expect(r.code, r.stderr).to.equal(0);
    return JSON.parse(r.stdout) as RunDoc;
  };
  const DAY = 24 * 3600 * 1000;
  /** makeRunDir's folder name for a time. */
  const stamp = (ms: number) => new Date(ms).toISOString().replace(/\.\d+Z$/, 'Z').replace(/:/g, '-');

  before(async () => {
    dir = await tempDir();
    env = locationEnv(dir);
  });

  it('sentiment cache shows entries and size per stage', async () => {
    await run('--until', 'tokenize');
    const r = await sentiment(['cache', '--json'], env);
    expect(r.code, r.stderr).to.equal(0);
    const doc = JSON.parse(r.stdout);
    expect(doc.stages.map((s: { stage: string; entries: number }) => [s.stage, s.entries])).to.deep.equal([['data', 1], ['tokenize', 1]]);
    expect(doc.stages[0].bytes).to.be.greaterThan(0);
    const table = await sentiment(['cache'], env);
    expect(table.stdout).to.match(/data\s+1 entry/).and.match(/tokenize\s+1 entry/).and.match(/total\s+2 entries/);
  });

  it('gc keeps what recent runs used (and its upstream) and what is new, and removes the rest', async () => {
    const later = Date.now() + 40 * DAY;
    // r1 (recent, 39 days on): data D1 + tokenize T1, with only T1 named; D1 is upstream of it.
    const r1 = await run('--until', 'tokenize', '--record');
    const recent = path.join(path.dirname(r1.run_dir), stamp(later - DAY));
    await rename(r1.run_dir, recent);
    future = recent;
    const t1 = r1.stages.find((s) => s.name === 'tokenize')!.path;
    const d1 = r1.stages.find((s) => s.name === 'data')!.path;
    await writeFile(path.join(recent, 'run.json'), JSON.stringify({ stages: [{ name: 'tokenize', path: t1 }] }));
    await writeFile(path.join(recent, 'log.txt'), (await readFile(path.join(recent, 'log.txt'), 'utf8')).split('\n')[0] + '\n');
    // r2 (old by then): another data entry D2 and tokenize T2 on D1.
    const d2 = (await run('--until', 'data', '--set', 'SEED=3')).stages[0].path;
    const t2 = (await run('--until', 'tokenize', '--set', 'MAX_LENGTH=16')).stages[1].path;
    // Leftovers: moved aside, a dead process's temporary folder, resume folders.
    const data = path.join(dir, 'cache', 'data');
    await mkdir(path.join(data, '.damaged-0123456789ab-20200101T000000-000Z-abcd'));
    await mkdir(path.join(data, '.tmp-0123456789ab-2147483646-abcd'));
    await mkdir(path.join(data, `.resume-${path.basename(d2)}`));
    const pending = path.join(data, `.resume-${'f'.repeat(64)}`);
    await mkdir(pending);

    const cache = new Cache(path.join(dir, 'cache'));
    const dry = await collectGarbage(cache, env.SENTIMENT_RUNS_DIR, { now: later, dryRun: true });
    const removed = dry.removed.map((i) => path.relative(cache.root, i.dir)).sort();
    expect(removed).to.deep.equal(
      [
        path.relative(cache.root, d2),
        path.relative(cache.root, t2),
        'data/.damaged-0123456789ab-20200101T000000-000Z-abcd',
        `data/.resume-${path.basename(d2)}`,
        'data/.tmp-0123456789ab-2147483646-abcd',
      ].sort(),
    );
    expect(dry.kept).to.equal(2);
    for (const i of dry.removed) expect(existsSync(i.dir), i.dir).to.equal(true);

    const done = await collectGarbage(cache, env.SENTIMENT_RUNS_DIR, { now: later });
    expect(done.removed).to.have.length(5);
    for (const i of done.removed) expect(existsSync(i.dir), i.dir).to.equal(false);
    for (const kept of [d1, t1, pending]) expect(existsSync(kept), kept).to.equal(true);
  });

  it('the command: --dry-run lists, --keep-days 0 removes entries no run of today used', async () => {
    const before = JSON.parse((await sentiment(['cache', '--json'], env)).stdout).total.entries;
    expect(before).to.equal(2);
    const kept = await sentiment(['cache', 'gc'], env);
    expect(kept.code, kept.stderr).to.equal(0);
    expect(kept.stdout).to.match(/2 entries kept; removed 0 folders/);
    // No run folder of the future any more: with --keep-days 0, nothing is recent.
    await rm(future, { recursive: true });
    const dry = await sentiment(['cache', 'gc', '--keep-days', '0', '--dry-run'], env);
    expect(dry.stdout).to.match(/would remove {2}data\//).and.match(/dry run: nothing removed/);
    expect(JSON.parse((await sentiment(['cache', '--json'], env)).stdout).total.entries).to.equal(2);
    const gone = await sentiment(['cache', 'gc', '--keep-days', '0', '--json'], env);
    expect(gone.code, gone.stderr).to.equal(0);
    expect(JSON.parse(gone.stdout).removed).to.have.length(2);
    expect(JSON.parse((await sentiment(['cache', '--json'], env)).stdout).total.entries).to.equal(0);
  });
});
