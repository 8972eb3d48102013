import { expect } from 'chai';
import { existsSync } from 'node:fs';
import { open, readdir, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { Cache, type KeyMaterial } from '../../src/core/cache.js';
import { sentiment, tempDir } from '../helpers.js';

const material = (x: number): KeyMaterial => ({ stage: 'data', version: 1, config: { x }, upstream: {}, inputs: {} });

describe('sentiment cache verify', () => {
  async function twoEntries() {
    const root = await tempDir();
    const cache = new Cache(root);
    const entries = [];
    for (const x of [1, 2]) entries.push(await cache.compute(material(x), async (dir) => (await writeFile(path.join(dir, 'data.arrow'), Buffer.alloc(8192, x)), {})));
    return { root, entries };
  }

  it('exits 0 on a clean cache, with a summary', async () => {
    const { root } = await twoEntries();
    const r = await sentiment(['cache', 'verify', '--cache-dir', root]);
    expect(r.code, r.stderr).to.equal(0);
    expect(r.stdout).to.contain('2 entries, 2 ok, 0 damaged');
  });

  it('exits 1 naming a damaged entry and why; --repair removes it and exits 0', async () => {
    const { root, entries } = await twoEntries();
    const bad = entries[1];
    const h = await open(path.join(bad.dir, 'data.arrow'), 'r+');
    await h.write(Buffer.alloc(100, 0xff), 0, 100, 4000);
    await h.close();
    const r = await sentiment(['cache', 'verify', '--cache-dir', root]);
    expect(r.code).to.equal(1);
    expect(r.stdout).to.contain(`damaged  data/${bad.manifest.key}: data.arrow was modified`);
    expect(r.stdout).to.contain('2 entries, 1 ok, 1 damaged');
    expect(r.stderr).to.match(/Error: 1 damaged cache entry in .*; `sentiment cache verify --repair` removes them/);
    expect(r.stderr).to.not.match(/\n\s+at /);
    expect(existsSync(bad.dir)).to.equal(true);

    const json = await sentiment(['cache', 'verify', '--cache-dir', root, '--json']);
    expect(json.code).to.equal(1);
    expect(JSON.parse(json.stdout)).to.deep.include({ entries: 2, ok: 1 });

    const repaired = await sentiment(['cache', 'verify', '--cache-dir', root, '--repair']);
    expect(repaired.code, repaired.stderr).to.equal(0);
    expect(repaired.stdout).to.contain(`damaged  data/${bad.manifest.key}: data.arrow was modified`).and.contain('(removed)');
    expect(existsSync(bad.dir)).to.equal(false);
    expect(existsSync(entries[0].dir)).to.equal(true);
    const after = await sentiment(['cache', 'verify', '--cache-dir', root]);
    expect(after.code, after.stderr).to.equal(0);
    expect(after.stdout).to.contain('1 entries, 1 ok, 0 damaged');
  });

  it('--repair also removes entries moved aside earlier', async () => {
    const { root, entries } = await twoEntries();
    await writeFile(path.join(entries[0].dir, 'stray.txt'), 'x');
    expect(await new Cache(root, { warn: () => {} }).lookup('data', entries[0].manifest.key)).to.equal(undefined);
    expect((await readdir(path.join(root, 'data'))).filter((n) => n.startsWith('.damaged-'))).to.have.length(1);
    const r = await sentiment(['cache', 'verify', '--cache-dir', root, '--repair']);
    expect(r.code, r.stderr).to.equal(0);
    expect(r.stdout).to.match(/removed  .*\.damaged-/);
    expect((await readdir(path.join(root, 'data'))).filter((n) => n.startsWith('.damaged-'))).to.deep.equal([]);
  });
});
