import { expect } from 'chai';
import { existsSync } from 'node:fs';
import { readdir, readFile, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { Cache, stageKey, type KeyMaterial } from '../../src/runner/cache.js';
import { fingerprintFiles } from '../../src/runner/fingerprint.js';
import { tempDir } from '../helpers.js';

const material = (config: Record<string, unknown>): KeyMaterial => ({ stage: 'data', version: 1, config, upstream: {}, inputs: {} });

describe('runner/cache', () => {
  it('keys are SHA-256 of canonical material: key order does not matter, values do', () => {
    expect(stageKey(material({ a: 1, b: 2 }))).to.match(/^[0-9a-f]{64}$/);
    expect(stageKey(material({ a: 1, b: 2 }))).to.equal(stageKey(material({ b: 2, a: 1 })));
    expect(stageKey(material({ a: 1, b: 2 }))).to.not.equal(stageKey(material({ a: 1, b: 3 })));
    expect(stageKey(material({ a: 1 }))).to.not.equal(stageKey({ ...material({ a: 1 }), version: 2 }));
  });

  it('commits an entry with manifest.json only once the stage succeeded', async () => {
    const cache = new Cache(await tempDir());
    const entry = await cache.compute(material({ x: 1 }), async (dir) => {
      await writeFile(path.join(dir, 'out.txt'), 'hello');
      return { rows: 1 };
    });
    expect(await readFile(path.join(entry.dir, 'out.txt'), 'utf8')).to.equal('hello');
    expect(entry.manifest.info).to.deep.equal({ rows: 1 });
    expect((await cache.lookup('data', entry.manifest.key))?.manifest.key).to.equal(entry.manifest.key);
  });

  it('leaves nothing that looks complete when the stage fails', async () => {
    const root = await tempDir();
    const cache = new Cache(root);
    const m = material({ x: 2 });
    await cache
      .compute(m, async (dir) => {
        await writeFile(path.join(dir, 'half.txt'), 'half');
        throw new Error('boom');
      })
      .then(() => expect.fail('should throw'), (e) => expect(e.message).to.equal('boom'));
    expect(await cache.lookup('data', stageKey(m))).to.equal(undefined);
    expect((await readdir(path.join(root, 'data'))).filter((n) => !n.endsWith('.lock'))).to.deep.equal([]);
  });

  it('two concurrent computations of one key run the stage once', async () => {
    const cache = new Cache(await tempDir());
    let runs = 0;
    const produce = async () => {
      runs++;
      await new Promise((r) => setTimeout(r, 300));
      return {};
    };
    const [a, b] = await Promise.all([cache.compute(material({ y: 1 }), produce), cache.compute(material({ y: 1 }), produce)]);
    expect(runs).to.equal(1);
    expect(a.dir).to.equal(b.dir);
  });

  it('removes temporary folders of dead processes', async () => {
    const root = await tempDir();
    const cache = new Cache(root);
    await cache.compute(material({ z: 1 }), async () => ({}));
    const stale = path.join(root, 'data', '.tmp-abc-999999999-beef');
    await import('node:fs/promises').then((fs) => fs.mkdir(stale));
    await cache.sweepTemporary('data');
    expect(existsSync(stale)).to.equal(false);
  });

  it('fingerprints files by content, names relative to a root, and remembers them', async () => {
    const dir = await tempDir();
    const memo = path.join(dir, 'memo.json');
    const f = path.join(dir, 'a.txt');
    await writeFile(f, 'one');
    const first = await fingerprintFiles([f], dir, memo);
    expect(Object.keys(first)).to.deep.equal(['a.txt']);
    expect(first['a.txt']).to.equal('7692c3ad3540bb803c020b3aee66cd8887123234ea0c6e7143c0add73ff431ed');
    expect(JSON.parse(await readFile(memo, 'utf8'))[f].sha256).to.equal(first['a.txt']);
    await writeFile(f, 'two!');
    expect((await fingerprintFiles([f], dir, memo))['a.txt']).to.not.equal(first['a.txt']);
  });
});
