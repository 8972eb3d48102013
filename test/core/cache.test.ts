import { expect } from 'chai';
import { spawn, type ChildProcess } from 'node:child_process';
import { existsSync } from 'node:fs';
import { mkdir, open, readdir, readFile, stat, truncate, unlink, utimes, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { Cache, LOCK_STALE_MS, stageKey, type KeyMaterial, type LockEvent } from '../../src/core/cache.js';
import { fingerprintFiles } from '../../src/core/fingerprint.js';
import { tempDir } from '../helpers.js';

const material = (config: Record<string, unknown>): KeyMaterial => ({ stage: 'data', version: 1, config, upstream: {}, inputs: {} });

describe('core/cache', () => {
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

  it('manifest.json lists every file (nested ones too) with size, mtime and SHA-256', async () => {
    const cache = new Cache(await tempDir());
    const entry = await writeEntry(cache, material({ list: 1 }));
    expect(entry.manifest.format).to.equal(2);
    expect(entry.manifest.files.map((f) => [f.path, f.size])).to.deep.equal([
      ['out.bin', 4096],
      ['sub/note.txt', 5],
    ]);
    const note = entry.manifest.files[1];
    expect(note.sha256).to.equal('2cf24dba5fb0a30e26e83b2ac5b9e29e1b161e5c1fa7425e73043362938b9824'); // sha256("hello")
    expect(note.mtimeMs).to.equal((await stat(path.join(entry.dir, 'sub', 'note.txt'))).mtimeMs);
  });

  describe('a damaged entry is moved aside with a warning, and the next compute succeeds', () => {
    const cases: [string, (dir: string) => Promise<void>, RegExp][] = [
      [
        'bytes overwritten in place, same size (the mtime changes, as with dd conv=notrunc)',
        async (dir) => {
          await overwrite(path.join(dir, 'out.bin'), 1000, Buffer.alloc(64, 0xff));
          await utimes(path.join(dir, 'out.bin'), new Date(), new Date(Date.now() + 5000)); // even on coarse timestamps
        },
        /out\.bin was modified: its content's SHA-256 differs/,
      ],
      ['a truncated file', (dir) => truncate(path.join(dir, 'out.bin'), 1024), /out\.bin is 1,024 bytes, manifest\.json says 4,096/],
      ['manifest.json deleted', (dir) => unlink(path.join(dir, 'manifest.json')), /manifest\.json is missing/],
      ['manifest.json truncated', async (dir) => truncate(path.join(dir, 'manifest.json'), 40), /manifest\.json is not valid JSON/],
      ['manifest.json of the older format (no file list)', (dir) => rewriteManifest(dir, (m) => ({ ...m, format: undefined, files: undefined })), /no list of files \(written by an older version/],
      ['manifest.json of another entry', (dir) => rewriteManifest(dir, (m) => ({ ...m, key: 'f'.repeat(64) })), /manifest\.json is for data\/ffffffffffff/],
      ['an extra file', (dir) => writeFile(path.join(dir, 'stray.txt'), 'x'), /stray\.txt is not listed in manifest\.json/],
      ['a missing file', (dir) => unlink(path.join(dir, 'sub', 'note.txt')), /sub\/note\.txt is missing/],
    ];
    for (const [name, damage, reason] of cases) {
      it(name, async () => {
        const root = await tempDir();
        const warnings: string[] = [];
        const cache = new Cache(root, { warn: (m) => warnings.push(m) });
        const m = material({ damaged: name });
        const entry = await writeEntry(cache, m);
        await damage(entry.dir);
        expect(await cache.lookup('data', stageKey(m))).to.equal(undefined);
        expect(warnings).to.have.length(1);
        expect(warnings[0]).to.match(reason);
        const aside = (await readdir(path.join(root, 'data'))).filter((n) => n.startsWith('.damaged-'));
        expect(aside).to.have.length(1);
        expect(aside[0]).to.match(new RegExp(`^\\.damaged-${stageKey(m).slice(0, 12)}-\\d{8}T\\d{6}-`));
        expect(warnings[0]).to.contain(`cache entry data/${stageKey(m).slice(0, 12)}`).and.contain(path.join(root, 'data', aside[0]));
        expect(existsSync(entry.dir)).to.equal(false);
        const again = await writeEntry(cache, m);
        expect(again.produced).to.equal(true);
        expect((await cache.lookup('data', stageKey(m)))?.manifest.createdAt).to.equal(again.manifest.createdAt);
        expect(warnings).to.have.length(1);
      });
    }
  });

  it('compute never fails on a folder without a valid manifest in its place (no ENOTEMPTY)', async () => {
    const root = await tempDir();
    const warnings: string[] = [];
    const cache = new Cache(root, { warn: (m) => warnings.push(m) });
    const m = material({ leftover: 1 });
    await mkdir(path.join(root, 'data', stageKey(m)), { recursive: true });
    await writeFile(path.join(root, 'data', stageKey(m), 'features.arrow'), 'half');
    const entry = await writeEntry(cache, m);
    expect(entry.produced).to.equal(true);
    expect(warnings.join('\n')).to.match(/manifest\.json is missing; moved aside to .*\.damaged-/);
  });

  it('a file whose mtime changed but not its content is accepted, and its new mtime recorded', async () => {
    const root = await tempDir();
    const warnings: string[] = [];
    const cache = new Cache(root, { warn: (m) => warnings.push(m) });
    const m = material({ touched: 1 });
    const entry = await writeEntry(cache, m);
    const later = new Date(Date.now() + 60_000);
    await utimes(path.join(entry.dir, 'out.bin'), later, later);
    const found = await cache.lookup('data', stageKey(m));
    expect(found?.dir).to.equal(entry.dir);
    expect(warnings).to.deep.equal([]);
    const recorded = JSON.parse(await readFile(path.join(entry.dir, 'manifest.json'), 'utf8')).files[0];
    expect(recorded.mtimeMs).to.equal((await stat(path.join(entry.dir, 'out.bin'))).mtimeMs);
  });

  it('loads trust an unchanged mtime (no re-hash); verify hashes everything and finds the overwrite', async () => {
    const root = await tempDir();
    const warnings: string[] = [];
    const cache = new Cache(root, { warn: (m) => warnings.push(m) });
    const good = await writeEntry(cache, material({ v: 1 }));
    const bad = await writeEntry(cache, material({ v: 2 }));
    const file = path.join(bad.dir, 'out.bin');
    const before = await stat(file);
    await overwrite(file, 0, Buffer.alloc(16, 0xee));
    await utimes(file, before.atime, before.mtime);
    expect((await cache.lookup('data', bad.manifest.key))?.dir).to.equal(bad.dir);
    const report = await cache.verify();
    expect([report.entries, report.ok]).to.deep.equal([2, 1]);
    expect(report.damaged.map((d) => [d.key, d.reason])).to.deep.equal([[bad.manifest.key, "out.bin was modified: its content's SHA-256 differs from manifest.json's"]]);
    expect(existsSync(bad.dir)).to.equal(true);
    const repaired = await cache.verify({ repair: true });
    expect(repaired.damaged[0].removed).to.equal(true);
    expect(existsSync(bad.dir)).to.equal(false);
    expect(existsSync(good.dir)).to.equal(true);
    expect(await cache.verify()).to.deep.include({ entries: 1, ok: 1, damaged: [] });
    expect(warnings).to.deep.equal([]);
  });

  it('takes over the lock of a holder killed with kill -9 at once, saying so', async function () {
    const root = await tempDir();
    const m = material({ killed: 1 });
    const child = holdLock(root, m, 'forever');
    try {
      await child.locked;
      child.process.kill('SIGKILL');
      await child.exited;
      expect(existsSync(path.join(root, 'data', `${stageKey(m)}.lock`, 'owner.json'))).to.equal(true);
      const events: LockEvent[] = [];
      const entry = await new Cache(root).compute(m, async (dir) => {
        await writeFile(path.join(dir, 'out.txt'), 'mine');
        return {};
      }, { onLock: (e) => events.push(e) });
      expect(entry.produced).to.equal(true);
      // Taken over because the pid is gone, not because the lock went stale: no waiting was reported.
      expect(events.map((e) => [e.kind, e.owner?.pid])).to.deep.equal([['takeover', child.process.pid]]);
      expect(events[0].message).to.match(new RegExp(`pid ${child.process.pid} on .* is gone: took the lock over`));
      expect(LOCK_STALE_MS).to.be.greaterThan(5000); // so the takeover above cannot have been proper-lockfile's stale fallback
      const leftovers = (await readdir(path.join(root, 'data'))).filter((n) => n.startsWith('.tmp-'));
      expect(leftovers).to.have.length(1); // the dead child's
      await new Cache(root).sweepTemporary('data');
      expect((await readdir(path.join(root, 'data'))).filter((n) => n.startsWith('.tmp-'))).to.deep.equal([]);
    } finally {
      child.process.kill('SIGKILL');
    }
  });

  it('waits for a live holder, naming it, and reports the entry it made as found after waiting', async () => {
    const root = await tempDir();
    const m = material({ live: 1 });
    const child = holdLock(root, m, 'until-go');
    try {
      await child.locked;
      const events: LockEvent[] = [];
      const result = await new Cache(root).compute(
        m,
        async () => {
          throw new Error('produce must not run: the other process made the entry');
        },
        {
          onLock: (e) => {
            events.push(e);
            if (e.kind === 'waiting' && e.owner?.pid === child.process.pid) void writeFile(path.join(root, 'go'), '');
          },
        },
      );
      expect(events[0].kind).to.equal('waiting');
      expect(events[0].owner?.pid).to.equal(child.process.pid);
      expect(events[0].message).to.match(new RegExp(`^waiting for pid ${child.process.pid} on .+ \\(since \\d\\d:\\d\\d:\\d\\d\\), which is computing this entry$`));
      expect(result.produced).to.equal(false);
      expect(result.waitedFor?.pid).to.equal(child.process.pid);
      expect(result.waited).to.be.greaterThan(0);
      expect(await readFile(path.join(result.dir, 'out.txt'), 'utf8')).to.equal('theirs');
      expect(await child.exited).to.equal(0);
    } finally {
      child.process.kill('SIGKILL');
    }
  });

  it('removes temporary folders of dead processes, and folders moved aside only once old', async () => {
    const root = await tempDir();
    const cache = new Cache(root);
    await mkdir(path.join(root, 'data', '.damaged-0123456789ab-20000101T000000-000Z-abcd'), { recursive: true });
    const fresh = path.join(root, 'data', `.damaged-0123456789ab-${new Date().toISOString().replace(/[-:]/g, '').replace('.', '-')}-abcd`);
    await mkdir(fresh);
    const removed = await cache.sweepTemporary('data');
    expect(removed.map((d) => path.basename(d))).to.deep.equal(['.damaged-0123456789ab-20000101T000000-000Z-abcd']);
    expect(existsSync(fresh)).to.equal(true);
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

/** An entry with a 4 KiB file and a nested one. */
function writeEntry(cache: Cache, m: KeyMaterial) {
  return cache.compute(m, async (dir) => {
    await writeFile(path.join(dir, 'out.bin'), Buffer.alloc(4096, 7));
    // A whole-second mtime, so that a test can put it back exactly after damaging the file.
    const t = new Date(Math.floor(Date.now() / 1000) * 1000 - 60_000);
    await utimes(path.join(dir, 'out.bin'), t, t);
    await mkdir(path.join(dir, 'sub'));
    await writeFile(path.join(dir, 'sub', 'note.txt'), 'hello');
    return { rows: 1 };
  });
}

/** Overwrites bytes in place without changing the size (as dd conv=notrunc). */
async function overwrite(file: string, at: number, bytes: Buffer): Promise<void> {
  const h = await open(file, 'r+');
  try {
    await h.write(bytes, 0, bytes.length, at);
  } finally {
    await h.close();
  }
}

async function rewriteManifest(dir: string, change: (m: Record<string, unknown>) => Record<string, unknown>): Promise<void> {
  const file = path.join(dir, 'manifest.json');
  await writeFile(file, JSON.stringify(change(JSON.parse(await readFile(file, 'utf8')))));
}

const CACHE_MODULE = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../../src/core/cache.ts');

/**
 * A real child process that takes the entry's lock through Cache.compute and prints "locked";
 * 'forever': holds it until killed; 'until-go': writes the entry once <root>/go exists, then exits.
 */
function holdLock(root: string, m: KeyMaterial, mode: 'forever' | 'until-go'): { process: ChildProcess; locked: Promise<void>; exited: Promise<number | null> } {
  const code = `
    import { existsSync } from 'node:fs';
    import { writeFile } from 'node:fs/promises';
    import path from 'node:path';
    const { Cache } = await import(${JSON.stringify(CACHE_MODULE)});
    const [root, material, mode] = [process.argv[1], JSON.parse(process.argv[2]), process.argv[3]];
    await new Cache(root).compute(material, async (dir) => {
      console.log('locked');
      if (mode === 'forever') await new Promise(() => setInterval(() => {}, 1000));
      while (!existsSync(path.join(root, 'go'))) await new Promise((r) => setTimeout(r, 50));
      await writeFile(path.join(dir, 'out.txt'), 'theirs');
      return {};
    });
  `;
  const child = spawn(process.execPath, ['--import', 'tsx', '--input-type=module', '-e', code, root, JSON.stringify(m), mode], { stdio: ['ignore', 'pipe', 'inherit'] });
  const exited = new Promise<number | null>((resolve) => child.on('exit', (c) => resolve(c)));
  const locked = new Promise<void>((resolve, reject) => {
    let out = '';
    child.stdout!.on('data', (d) => {
      out += String(d);
      if (out.includes('locked')) resolve();
    });
    child.on('exit', (c) => reject(new Error(`the lock holder exited (${c}) before taking the lock`)));
  });
  return { process: child, locked, exited };
}
