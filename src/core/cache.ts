import { createHash, randomBytes, randomUUID } from 'node:crypto';
import { createReadStream } from 'node:fs';
import { link, mkdir, readdir, readFile, rename, rm, rmdir, stat, unlink, utimes, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import canonicalize from 'canonicalize';
import lockfile from 'proper-lockfile';
import { DamagedEntryError, messageOf } from './errors.js';
import { formatCount } from './format.js';

/** Everything a stage's output depends on; its canonical JSON's SHA-256 is the stage's key. */
export interface KeyMaterial {
  stage: string;
  /** Bumped when the stage's implementation changes what it writes. */
  version: number;
  /** The exact config values the stage reads. */
  config: Record<string, unknown>;
  /** Keys of the upstream stages' entries. */
  upstream: Record<string, string>;
  /** Fingerprints of external inputs (dataset and model files' content, ...). */
  inputs: Record<string, unknown>;
}

export const MANIFEST_FILE = 'manifest.json';
/**
 * 2: the manifest lists every file of the entry with its size, mtime and SHA-256. Entries with any
 * other format (older ones have no file list, so nothing about them can be checked) count as damaged:
 * they are moved aside and recomputed.
 */
export const MANIFEST_FORMAT = 2;

/** One file of an entry, as the manifest records it. */
export interface ManifestFile {
  /** Relative to the entry folder, with `/` separators. */
  path: string;
  size: number;
  /** fs.Stats.mtimeMs when the entry was written (or last found unchanged by a re-hash). */
  mtimeMs: number;
  sha256: string;
}

export interface Manifest<I extends object = object> {
  format: typeof MANIFEST_FORMAT;
  stage: string;
  key: string;
  material: KeyMaterial;
  createdAt: string;
  /** Seconds the stage took to compute (its `produce`, not waiting for a lock, not hashing). */
  seconds: number;
  /** What the stage reports about its output (row counts, files, dtype, ...). */
  info: I;
  /** Every file of the entry but manifest.json, sorted by path. */
  files: ManifestFile[];
}

export interface CacheEntry<I extends object = object> {
  dir: string;
  manifest: Manifest<I>;
}

export type StageKey = string;

/** Who holds an entry's lock: written into the lock folder right after taking it. */
export interface LockOwner {
  pid: number;
  host: string;
  /** ISO time the lock was taken. */
  started: string;
  command?: string;
}

/** What happens while `compute` takes an entry's lock (for a progress line). */
export type LockEvent =
  /** Another live process holds the lock (reported when first seen and whenever the holder changes). */
  | { kind: 'waiting'; owner?: LockOwner; message: string }
  /** The holder is gone (dead pid on this host, or a lock not refreshed for LOCK_STALE_MS): taken over. */
  | { kind: 'takeover'; owner?: LockOwner; message: string };

export interface ComputeResult extends CacheEntry {
  /** true: this call ran `produce`; false: the entry was found complete once the lock was ours (another process made it). */
  produced: boolean;
  /** Seconds spent waiting for another live process's lock (0 when it was free). */
  waited: number;
  /** The last holder seen while waiting. */
  waitedFor?: LockOwner;
}

export interface CacheOptions {
  /** Warnings (an entry moved aside, a lock compromised); default: `warning: …` lines on stderr. */
  warn?: (message: string) => void;
  /** Recorded in lock owner files; default: this process's command line. */
  command?: string;
}

/** One damaged entry found by `verify`. */
export interface VerifyProblem {
  stage: string;
  key: string;
  dir: string;
  reason: string;
  /** With `repair`: whether the entry was removed (false: another process held its lock). */
  removed?: boolean;
}

export interface VerifyReport {
  entries: number;
  ok: number;
  damaged: VerifyProblem[];
  /** With `repair`: folders removed besides damaged entries (moved-aside entries, temporary folders of dead processes). */
  cleaned: string[];
}

/** One complete-looking entry folder (`<stage>/<64 hex>`), as `contents` finds it. */
export interface EntryUsage {
  stage: string;
  key: StageKey;
  dir: string;
  /** Bytes of its files (manifest.json included). */
  bytes: number;
  /** From the manifest (else the folder's modification time, for a folder without a valid manifest). */
  createdAt: string;
  /** Keys of the entries it was computed from (its manifest's material.upstream), by stage. */
  upstream: Record<string, StageKey>;
  /** false: the folder has no valid manifest.json (it would be moved aside when next loaded). */
  valid: boolean;
}

/** A folder of a stage that is not an entry: moved aside, temporary, a resume folder, a lock. */
export interface OtherUsage {
  stage: string;
  name: string;
  dir: string;
  bytes: number;
  kind: 'damaged' | 'tmp' | 'resume' | 'lock' | 'other';
  /** For tmp: whether the process that writes it is gone (this host: its pid; other hosts: older than a week). */
  dead?: boolean;
  /** For resume: the entry it belongs to. */
  key?: StageKey;
}

export interface StageUsage {
  stage: string;
  entries: EntryUsage[];
  other: OtherUsage[];
}

/**
 * Locks: proper-lockfile's lock is the folder `<stage>/<key>.lock`, whose mtime its holder refreshes
 * every LOCK_UPDATE_MS; a lock not refreshed for LOCK_STALE_MS is taken over (the fallback for holders
 * on other hosts, whose pid cannot be checked). A holder on this host whose pid is gone is taken over
 * at once. Waiters poll every LOCK_POLL_MS.
 */
export const LOCK_STALE_MS = 30_000;
export const LOCK_UPDATE_MS = 5_000;
export const LOCK_POLL_MS = 250;
const OWNER_FILE = 'owner.json';
/** A takeover's own guard folder older than this was left by a process killed mid-takeover. */
const TAKEOVER_STALE_MS = 10_000;
/** `.damaged-*` folders and other hosts' `.tmp-*` folders older than this are removed by the sweep. */
const ASIDE_MAX_AGE_MS = 7 * 24 * 3600 * 1000;

const ENTRY_NAME = /^[0-9a-f]{64}$/;
/** Folders of the cache root that are not stages. */
const NOT_STAGES = new Set(['models', 'downloads', 'index']);

export function stageKey(material: KeyMaterial): StageKey {
  return createHash('sha256').update(canonicalize(material) ?? '').digest('hex');
}

/** The file at a cache's root naming it (see cacheId). */
export const CACHE_ID_FILE = 'cache-id';

/**
 * The cache folder's identity: a random UUID kept in `<root>/cache-id`, made on first use. Two machines
 * that mount the same folder (at any path) read the same id; a different folder has another. Created
 * by a hard link of a complete temporary file, which fails when the id exists (atomic, NFS included),
 * so processes that race agree on the first one.
 */
export async function cacheId(root: string): Promise<string> {
  const file = path.join(root, CACHE_ID_FILE);
  const read = async () => (await readFile(file, 'utf8')).trim();
  try {
    return await read();
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code !== 'ENOENT') throw e;
  }
  await mkdir(root, { recursive: true });
  const tmp = path.join(root, `.${CACHE_ID_FILE}.${process.pid}.${randomBytes(4).toString('hex')}`);
  await writeFile(tmp, `${randomUUID()}\n`);
  try {
    await link(tmp, file);
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code !== 'EEXIST') throw e;
  } finally {
    await unlink(tmp).catch(() => {});
  }
  return read();
}

/**
 * SHA-256 of a file's content, streamed in 1 MiB chunks.
 *
 * Why SHA-256 from node:crypto rather than a faster non-cryptographic hash (xxh3 via hash-wasm): it needs
 * no new dependency, it is the hash the rest of the cache already uses (keys, fingerprints), and with the
 * CPU's SHA extensions OpenSSL runs it at about 1.5 GB/s (measured on the dev machine), which is about
 * what a disk delivers anyway. A 20 GB features file costs ~15 s of hashing once, after an encode that
 * takes hours; loads re-hash only files whose mtime changed, and only `cache verify` hashes everything.
 */
export async function hashFile(file: string): Promise<string> {
  const hash = createHash('sha256');
  for await (const chunk of createReadStream(file, { highWaterMark: 1 << 20 })) hash.update(chunk as Buffer);
  return hash.digest('hex');
}

/**
 * Reads a JSON file a stage wrote (head.json, history.json, metrics.json, ...): a file that does not
 * parse is a DamagedEntryError naming it, so the pipeline can recompute the entry holding it.
 */
export async function readEntryJson<T>(file: string): Promise<T> {
  let text: string;
  try {
    text = await readFile(file, 'utf8');
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === 'ENOENT') throw new DamagedEntryError(file, 'is missing', { cause: e });
    throw e;
  }
  try {
    return JSON.parse(text) as T;
  } catch (e) {
    throw new DamagedEntryError(file, `is not valid JSON (${messageOf(e)})`, { cause: e });
  }
}

type Checked = { state: 'ok'; manifest: Manifest; touched: ManifestFile[] } | { state: 'absent' } | { state: 'damaged'; reason: string };

interface HeldLock {
  release(): Promise<void>;
  waited: number;
  waitedFor?: LockOwner;
}

/**
 * Content-addressed store of stage outputs: `<root>/<stage>/<key>/` with manifest.json written last.
 * An entry is built in a temporary folder and renamed into place, so a reader never sees a partial
 * one and an interrupted stage leaves only a temporary folder that the next writer ignores.
 *
 * Every load checks the entry against its manifest: manifest.json parses, is of this format and is for
 * this stage and key; every listed file exists with the listed size and no other file is there; a file
 * whose mtime differs from the recorded one is re-hashed and must still match its SHA-256 (an in-place
 * overwrite changes the mtime, so it is caught without hashing gigabytes on every run; a re-hash that
 * matches records the new mtime). An entry that fails is moved aside to `<stage>/.damaged-<key12>-<time>/`
 * with a warning, and counts as a miss; `verify` hashes every file of every entry.
 */
export class Cache {
  private readonly warn: (message: string) => void;
  private readonly command: string;

  constructor(
    readonly root: string,
    options: CacheOptions = {},
  ) {
    this.warn = options.warn ?? ((message) => process.stderr.write(`warning: ${message}\n`));
    this.command = options.command ?? [path.basename(process.argv[1] ?? 'node'), ...process.argv.slice(2)].join(' ').slice(0, 300);
  }

  /** Where a stage computing this entry keeps what lets an interrupted run go on (see compute). */
  resumeDir(stage: string, key: StageKey): string {
    return path.join(this.root, stage, `.resume-${key}`);
  }

  entryDir(stage: string, key: StageKey): string {
    return path.join(this.root, stage, key);
  }

  /**
   * The entry, when present and intact. A damaged one is moved aside (with a warning) under the entry's
   * lock; when another process holds that lock it is left to that process, and this is a miss.
   */
  async lookup(stage: string, key: StageKey): Promise<CacheEntry | undefined> {
    const checked = await this.check(stage, key, 'load');
    if (checked.state === 'ok') return this.accept(stage, key, checked);
    if (checked.state === 'absent') return undefined;
    const held = await this.acquire(stage, key, { wait: false });
    if (!held) return undefined;
    try {
      return await this.lookupLocked(stage, key);
    } finally {
      await held.release();
    }
  }

  /** lookup, holding the entry's lock: checks again and moves a damaged entry aside. */
  private async lookupLocked(stage: string, key: StageKey): Promise<CacheEntry | undefined> {
    const checked = await this.check(stage, key, 'load');
    if (checked.state === 'ok') return this.accept(stage, key, checked);
    if (checked.state === 'damaged') await this.moveAside(stage, key, checked.reason);
    return undefined;
  }

  /** An intact entry; files found unchanged by a re-hash get their new mtime recorded (best effort). */
  private async accept(stage: string, key: StageKey, checked: Extract<Checked, { state: 'ok' }>): Promise<CacheEntry> {
    const dir = this.entryDir(stage, key);
    if (checked.touched.length > 0) {
      const tmp = path.join(dir, `.${MANIFEST_FILE}.${process.pid}.${randomBytes(4).toString('hex')}`);
      try {
        await writeFile(tmp, JSON.stringify(checked.manifest, null, 2));
        await rename(tmp, path.join(dir, MANIFEST_FILE));
      } catch {
        await rm(tmp, { force: true }).catch(() => {});
      }
    }
    return { dir, manifest: checked.manifest };
  }

  /**
   * Checks an entry against its manifest. 'load': sizes always, content only of files whose mtime
   * changed; 'full': the content of every file.
   */
  private async check(stage: string, key: StageKey, mode: 'load' | 'full'): Promise<Checked> {
    const dir = this.entryDir(stage, key);
    let text: string;
    try {
      text = await readFile(path.join(dir, MANIFEST_FILE), 'utf8');
    } catch (e) {
      const code = (e as NodeJS.ErrnoException).code;
      if (code !== 'ENOENT' && code !== 'ENOTDIR') throw e;
      const exists = await stat(dir).then(
        () => true,
        () => false,
      );
      return exists ? { state: 'damaged', reason: `${MANIFEST_FILE} is missing` } : { state: 'absent' };
    }
    let manifest: Manifest;
    try {
      manifest = JSON.parse(text) as Manifest;
    } catch (e) {
      return { state: 'damaged', reason: `${MANIFEST_FILE} is not valid JSON (${messageOf(e)})` };
    }
    const shape = manifestProblem(manifest, stage, key);
    if (shape) return { state: 'damaged', reason: shape };
    const listed = new Set(manifest.files.map((f) => f.path));
    let present: string[];
    try {
      present = await listFiles(dir);
    } catch (e) {
      // Moved aside or replaced by another process meanwhile.
      if ((e as NodeJS.ErrnoException).code === 'ENOENT') return { state: 'absent' };
      throw e;
    }
    for (const found of present) {
      if (found !== MANIFEST_FILE && !listed.has(found) && !found.startsWith(`.${MANIFEST_FILE}.`)) return { state: 'damaged', reason: `${found} is not listed in ${MANIFEST_FILE}` };
    }
    const touched: ManifestFile[] = [];
    for (const f of manifest.files) {
      const file = path.join(dir, ...f.path.split('/'));
      let s;
      try {
        s = await stat(file);
      } catch {
        return { state: 'damaged', reason: `${f.path} is missing` };
      }
      if (!s.isFile()) return { state: 'damaged', reason: `${f.path} is not a file` };
      if (s.size !== f.size) return { state: 'damaged', reason: `${f.path} is ${formatCount(s.size)} bytes, ${MANIFEST_FILE} says ${formatCount(f.size)}` };
      const modified = s.mtimeMs !== f.mtimeMs;
      if (mode === 'full' || modified) {
        if ((await hashFile(file)) !== f.sha256) {
          return { state: 'damaged', reason: `${f.path} was modified: its content's SHA-256 differs from ${MANIFEST_FILE}'s${modified ? ` (mtime ${new Date(s.mtimeMs).toISOString()}, written ${new Date(f.mtimeMs).toISOString()})` : ''}` };
        }
        if (modified) {
          f.mtimeMs = s.mtimeMs;
          touched.push(f);
        }
      }
    }
    return { state: 'ok', manifest, touched };
  }

  /**
   * Renames a damaged entry to `<stage>/.damaged-<key12>-<time>-<rand>/` (kept for inspection; the sweep
   * and `cache verify --repair` remove such folders) and warns, naming the folder and the reason.
   * Returns the new folder, or undefined when the entry was already gone.
   */
  async moveAside(stage: string, key: StageKey, reason: string, then = 'recomputing'): Promise<string | undefined> {
    const dir = this.entryDir(stage, key);
    const stamp = new Date().toISOString().replace(/[-:]/g, '').replace('.', '-');
    const aside = path.join(this.root, stage, `.damaged-${key.slice(0, 12)}-${stamp}-${randomBytes(2).toString('hex')}`);
    try {
      await rename(dir, aside);
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
      throw e;
    }
    this.warn(`cache entry ${stage}/${key.slice(0, 12)}…: ${reason}; moved aside to ${aside}${then ? `, ${then}` : ''}`);
    return aside;
  }

  /** The entry holding `file`, among this cache's entries (for a DamagedEntryError). */
  entryOf(file: string): { stage: string; key: StageKey } | undefined {
    const relative = path.relative(path.resolve(this.root), path.resolve(file));
    const [stage, key, ...rest] = relative.split(path.sep);
    if (relative.startsWith('..') || path.isAbsolute(relative) || !stage || !key || rest.length === 0 || !ENTRY_NAME.test(key)) return undefined;
    return { stage, key };
  }

  /** Complete entries of a stage, newest first (for explaining a miss): only their manifests are read. */
  async entries(stage: string): Promise<CacheEntry[]> {
    let names: string[];
    try {
      names = await readdir(path.join(this.root, stage));
    } catch {
      return [];
    }
    const found = await Promise.all(
      names
        .filter((n) => ENTRY_NAME.test(n))
        .map(async (n) => {
          const dir = this.entryDir(stage, n);
          try {
            const manifest = JSON.parse(await readFile(path.join(dir, MANIFEST_FILE), 'utf8')) as Manifest;
            return manifestProblem(manifest, stage, n) ? undefined : { dir, manifest };
          } catch {
            return undefined;
          }
        }),
    );
    return found.filter((e): e is CacheEntry => e !== undefined).sort((a, b) => b.manifest.createdAt.localeCompare(a.manifest.createdAt));
  }

  /**
   * Computes an entry under its lock, so two processes never compute the same entry at once: the second
   * waits (reporting the holder through `onLock`) and then finds the first one's result (`produced:
   * false`). `force` replaces an existing entry. A folder in the entry's place that is not a valid entry
   * is moved aside first, so it never makes this fail. `produce` also gets a resume folder, the same for
   * this key across processes and interruptions (only the lock holder uses it; created by the stage when it
   * needs it): a stage keeps checkpoints there to go on where an interrupted run stopped. It is removed once the entry is complete (and by `force`).
   */
  async compute(
    material: KeyMaterial,
    produce: (tmpDir: string, resumeDir: string) => Promise<object>,
    options: { force?: boolean; onLock?: (event: LockEvent) => void } = {},
  ): Promise<ComputeResult> {
    const key = stageKey(material);
    const stage = material.stage;
    const held = (await this.acquire(stage, key, { wait: true, onLock: options.onLock }))!;
    const lockInfo = { waited: held.waited, ...(held.waitedFor && { waitedFor: held.waitedFor }) };
    try {
      if (!options.force) {
        const existing = await this.lookupLocked(stage, key);
        if (existing) return { ...existing, produced: false, ...lockInfo };
      }
      const stageDir = path.join(this.root, stage);
      const tmpDir = path.join(stageDir, `.tmp-${key.slice(0, 12)}-${process.pid}-${HOST_TAG}-${randomBytes(4).toString('hex')}`);
      const resumeDir = this.resumeDir(stage, key);
      if (options.force) await rm(resumeDir, { recursive: true, force: true });
      await mkdir(tmpDir, { recursive: true });
      try {
        const started = performance.now();
        const info = await produce(tmpDir, resumeDir);
        const seconds = (performance.now() - started) / 1000;
        const files: ManifestFile[] = [];
        for (const relative of await listFiles(tmpDir)) {
          if (relative === MANIFEST_FILE) continue;
          const file = path.join(tmpDir, ...relative.split('/'));
          const s = await stat(file);
          files.push({ path: relative, size: s.size, mtimeMs: s.mtimeMs, sha256: await hashFile(file) });
        }
        const manifest: Manifest = { format: MANIFEST_FORMAT, stage, key, material, createdAt: new Date().toISOString(), seconds, info, files };
        await writeFile(path.join(tmpDir, MANIFEST_FILE), JSON.stringify(manifest, null, 2));
        const dir = this.entryDir(stage, key);
        if (options.force) await rm(dir, { recursive: true, force: true });
        try {
          await rename(tmpDir, dir);
        } catch (e) {
          const code = (e as NodeJS.ErrnoException).code;
          if (code !== 'ENOTEMPTY' && code !== 'EEXIST') throw e;
          // Only when the lock was lost (see onCompromised) can a folder have appeared here meanwhile.
          await this.moveAside(stage, key, 'the folder was in the way of a new entry', 'replacing it');
          await rename(tmpDir, dir);
        }
        await rm(resumeDir, { recursive: true, force: true });
        return { dir, manifest, produced: true, ...lockInfo };
      } catch (e) {
        await rm(tmpDir, { recursive: true, force: true });
        throw e;
      }
    } finally {
      await held.release();
    }
  }

  /**
   * Takes the entry's lock and records its owner in it. A holder that is gone is taken over at once (a
   * dead pid on this host) or after LOCK_STALE_MS without refresh (other hosts); a live holder is waited
   * for, polling every LOCK_POLL_MS (or, without `wait`, undefined is returned).
   */
  private async acquire(stage: string, key: StageKey, options: { wait: boolean; onLock?: (event: LockEvent) => void }): Promise<HeldLock | undefined> {
    const stageDir = path.join(this.root, stage);
    await mkdir(stageDir, { recursive: true });
    const lockDir = path.join(stageDir, `${key}.lock`);
    const startedWaiting = performance.now();
    let waiting = false;
    let waitedFor: LockOwner | undefined;
    let reported = '';
    for (;;) {
      let release: () => Promise<void>;
      try {
        // The locked "file" is the entry's path (it need not exist): proper-lockfile keeps one lock per path.
        release = await lockfile.lock(path.join(stageDir, key), {
          lockfilePath: lockDir,
          realpath: false,
          stale: LOCK_STALE_MS,
          update: LOCK_UPDATE_MS,
          retries: 0,
          onCompromised: (err) => this.warn(`the lock of cache entry ${stage}/${key.slice(0, 12)}… was lost (${err.message}); another process may compute it too`),
        });
      } catch (e) {
        const code = (e as NodeJS.ErrnoException).code;
        // ENOTEMPTY: proper-lockfile found the lock stale but cannot remove it because of the owner file.
        if (code !== 'ELOCKED' && code !== 'ENOTEMPTY') throw e;
        const owner = await readOwner(lockDir);
        const gone = owner && owner.host === os.hostname() && !isAlive(owner.pid);
        if (gone || code === 'ENOTEMPTY') {
          const still = gone ? async () => sameOwner(await readOwner(lockDir), owner) : async () => isStaleLock(lockDir);
          if (await takeOver(lockDir, still)) {
            const who = owner ? `pid ${owner.pid} on ${owner.host} (since ${clock(owner.started)})` : 'a process';
            const why = gone ? 'is gone' : `has not refreshed its lock for ${LOCK_STALE_MS / 1000} s`;
            options.onLock?.({ kind: 'takeover', owner, message: `${who}, which held the lock of this entry, ${why}: took the lock over` });
          } else {
            await sleep(50);
          }
          continue;
        }
        if (!options.wait) return undefined;
        waiting = true;
        if (owner) waitedFor = owner;
        const message = owner
          ? `waiting for pid ${owner.pid} on ${owner.host} (since ${clock(owner.started)}), which is computing this entry`
          : 'waiting for another process, which is computing this entry';
        if (message !== reported) {
          reported = message;
          options.onLock?.({ kind: 'waiting', owner, message });
        }
        await sleep(LOCK_POLL_MS);
        continue;
      }
      const owner: LockOwner = { pid: process.pid, host: os.hostname(), started: new Date().toISOString(), command: this.command };
      try {
        await writeOwner(lockDir, owner);
      } catch (e) {
        await release().catch(() => {});
        throw e;
      }
      return {
        waited: waiting ? (performance.now() - startedWaiting) / 1000 : 0,
        waitedFor,
        release: async () => {
          // The owner file goes first: proper-lockfile removes the lock folder with rmdir.
          await rm(path.join(lockDir, OWNER_FILE), { force: true });
          await release().catch(() => {});
        },
      };
    }
  }

  /**
   * Removes temporary folders left by interrupted runs whose process is gone (on this host; other
   * hosts' after ASIDE_MAX_AGE_MS), and `.damaged-*` folders older than that (all of them with
   * `maxAgeMs: 0`). Returns the removed folders.
   */
  async sweepTemporary(stage: string, options: { maxAgeMs?: number } = {}): Promise<string[]> {
    const maxAge = options.maxAgeMs ?? ASIDE_MAX_AGE_MS;
    const stageDir = path.join(this.root, stage);
    let names: string[];
    try {
      names = await readdir(stageDir);
    } catch {
      return [];
    }
    const removed: string[] = [];
    await Promise.all(
      names.map(async (n) => {
        const dir = path.join(stageDir, n);
        let remove = false;
        if (n.startsWith('.tmp-')) {
          // .tmp-<key12>-<pid>-<host tag>-<rand> (older: .tmp-<key12>-<pid>-<rand>)
          const parts = n.slice('.tmp-'.length).split('-');
          const thisHost = parts.length < 4 || parts[2] === HOST_TAG;
          remove = thisHost ? !isAlive(Number(parts[1])) : await olderThan(dir, maxAge);
        } else if (n.startsWith('.damaged-')) {
          const at = asideTime(n);
          remove = at === undefined ? await olderThan(dir, maxAge) : at <= Date.now() - maxAge;
        }
        if (remove) {
          await rm(dir, { recursive: true, force: true });
          removed.push(dir);
        }
      }),
    );
    return removed.sort();
  }

  /**
   * Checks every file of every entry against its manifest (full hashes). With `repair`, damaged entries
   * are removed (under their lock; one another process is computing is left to it), and so are
   * moved-aside entries and temporary folders of dead processes.
   */
  async verify(options: { repair?: boolean; onProgress?: (done: number, total: number, entry: string) => void } = {}): Promise<VerifyReport> {
    let stages: string[];
    try {
      stages = (await readdir(this.root, { withFileTypes: true })).filter((d) => d.isDirectory() && !d.name.startsWith('.') && !NOT_STAGES.has(d.name)).map((d) => d.name).sort();
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code === 'ENOENT') return { entries: 0, ok: 0, damaged: [], cleaned: [] };
      throw e;
    }
    const all: { stage: string; key: string }[] = [];
    for (const stage of stages) {
      const found = await readdir(path.join(this.root, stage), { withFileTypes: true });
      for (const d of found) if (d.isDirectory() && ENTRY_NAME.test(d.name)) all.push({ stage, key: d.name });
    }
    all.sort((a, b) => a.stage.localeCompare(b.stage) || a.key.localeCompare(b.key));
    const report: VerifyReport = { entries: all.length, ok: 0, damaged: [], cleaned: [] };
    for (const [i, { stage, key }] of all.entries()) {
      options.onProgress?.(i, all.length, `${stage}/${key.slice(0, 12)}`);
      const checked = await this.check(stage, key, 'full');
      if (checked.state !== 'damaged') {
        if (checked.state === 'ok') report.ok++;
        else report.entries--;
        continue;
      }
      const problem: VerifyProblem = { stage, key, dir: this.entryDir(stage, key), reason: checked.reason };
      if (options.repair) {
        const held = await this.acquire(stage, key, { wait: false });
        problem.removed = false;
        if (held) {
          try {
            if ((await this.check(stage, key, 'full')).state === 'damaged') {
              await rm(problem.dir, { recursive: true, force: true });
              problem.removed = true;
            }
          } finally {
            await held.release();
          }
        }
      }
      report.damaged.push(problem);
    }
    if (options.repair) for (const stage of stages) report.cleaned.push(...(await this.sweepTemporary(stage, { maxAgeMs: 0 })));
    return report;
  }

  /** Stage folders of the cache (not models/, downloads/, index/), sorted. */
  async stages(): Promise<string[]> {
    try {
      return (await readdir(this.root, { withFileTypes: true })).filter((d) => d.isDirectory() && !d.name.startsWith('.') && !NOT_STAGES.has(d.name)).map((d) => d.name).sort();
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code === 'ENOENT') return [];
      throw e;
    }
  }

  /** What each stage folder holds: its entries (sizes from the disk) and everything else in it. */
  async contents(): Promise<StageUsage[]> {
    const out: StageUsage[] = [];
    for (const stage of await this.stages()) {
      const usage: StageUsage = { stage, entries: [], other: [] };
      const stageDir = path.join(this.root, stage);
      let found;
      try {
        found = await readdir(stageDir, { withFileTypes: true });
      } catch {
        continue;
      }
      for (const d of found.sort((a, b) => a.name.localeCompare(b.name))) {
        const dir = path.join(stageDir, d.name);
        const bytes = await diskBytes(dir);
        if (d.isDirectory() && ENTRY_NAME.test(d.name)) {
          let manifest: Manifest | undefined;
          try {
            manifest = JSON.parse(await readFile(path.join(dir, MANIFEST_FILE), 'utf8')) as Manifest;
            if (manifestProblem(manifest, stage, d.name)) manifest = undefined;
          } catch {
            manifest = undefined;
          }
          const createdAt = manifest?.createdAt ?? new Date((await stat(dir).catch(() => undefined))?.mtimeMs ?? 0).toISOString();
          usage.entries.push({ stage, key: d.name, dir, bytes, createdAt, upstream: manifest ? { ...manifest.material.upstream } : {}, valid: manifest !== undefined });
        } else if (d.name.startsWith('.damaged-')) usage.other.push({ stage, name: d.name, dir, bytes, kind: 'damaged' });
        else if (d.name.startsWith('.tmp-')) usage.other.push({ stage, name: d.name, dir, bytes, kind: 'tmp', dead: await deadTemporary(d.name, dir) });
        else if (d.name.startsWith('.resume-')) usage.other.push({ stage, name: d.name, dir, bytes, kind: 'resume', key: d.name.slice('.resume-'.length) });
        else if (d.name.endsWith('.lock') || d.name.endsWith('.lock.takeover')) usage.other.push({ stage, name: d.name, dir, bytes, kind: 'lock' });
        else usage.other.push({ stage, name: d.name, dir, bytes, kind: 'other' });
      }
      out.push(usage);
    }
    return out;
  }

  /**
   * Removes an entry under its lock. false: another process holds the lock (it is computing or reading
   * the entry), so it was left alone.
   */
  async removeEntry(stage: string, key: StageKey): Promise<boolean> {
    const held = await this.acquire(stage, key, { wait: false });
    if (!held) return false;
    try {
      await rm(this.entryDir(stage, key), { recursive: true, force: true });
      return true;
    } finally {
      await held.release();
    }
  }
}

/** Bytes of the files under `p` (a file or a folder), 0 when it is gone. */
async function diskBytes(p: string): Promise<number> {
  let s;
  try {
    s = await stat(p);
  } catch {
    return 0;
  }
  if (!s.isDirectory()) return s.size;
  let total = 0;
  let names: string[];
  try {
    names = await readdir(p);
  } catch {
    return 0;
  }
  for (const n of names) total += await diskBytes(path.join(p, n));
  return total;
}

/** Whether a `.tmp-*` folder's writer is gone: this host's by its pid, other hosts' after ASIDE_MAX_AGE_MS. */
async function deadTemporary(name: string, dir: string): Promise<boolean> {
  // .tmp-<key12>-<pid>-<host tag>-<rand> (older: .tmp-<key12>-<pid>-<rand>)
  const parts = name.slice('.tmp-'.length).split('-');
  const thisHost = parts.length < 4 || parts[2] === HOST_TAG;
  return thisHost ? !isAlive(Number(parts[1])) : olderThan(dir, ASIDE_MAX_AGE_MS);
}

/** Why a parsed manifest.json is not a valid manifest of this entry, or undefined. */
function manifestProblem(m: Manifest, stage: string, key: StageKey): string | undefined {
  if (typeof m !== 'object' || m === null || Array.isArray(m)) return `${MANIFEST_FILE} is not an object`;
  if (m.format !== MANIFEST_FORMAT) {
    return m.format === undefined
      ? `${MANIFEST_FILE} has no list of files (written by an older version of sentiment)`
      : `${MANIFEST_FILE} is of format ${JSON.stringify(m.format)}, this version reads format ${MANIFEST_FORMAT}`;
  }
  if (m.stage !== stage || m.key !== key) return `${MANIFEST_FILE} is for ${String(m.stage)}/${String(m.key).slice(0, 12)}…`;
  if (typeof m.material !== 'object' || m.material === null || stageKey(m.material) !== key) return `${MANIFEST_FILE}'s key material does not hash to its key`;
  if (typeof m.createdAt !== 'string' || typeof m.seconds !== 'number' || typeof m.info !== 'object' || m.info === null) return `${MANIFEST_FILE} lacks createdAt, seconds or info`;
  if (!Array.isArray(m.files)) return `${MANIFEST_FILE} has no list of files`;
  for (const f of m.files) {
    const ok =
      typeof f === 'object' &&
      f !== null &&
      typeof f.path === 'string' &&
      f.path !== '' &&
      f.path !== MANIFEST_FILE &&
      !f.path.split('/').some((p) => p === '' || p === '.' || p === '..') &&
      Number.isInteger(f.size) &&
      f.size >= 0 &&
      typeof f.mtimeMs === 'number' &&
      typeof f.sha256 === 'string' &&
      /^[0-9a-f]{64}$/.test(f.sha256);
    if (!ok) return `${MANIFEST_FILE} lists a file it does not describe properly (${JSON.stringify(f).slice(0, 120)})`;
  }
  return undefined;
}

/** Every file under `dir` (recursively), relative with `/` separators, sorted. */
async function listFiles(dir: string, prefix = ''): Promise<string[]> {
  const out: string[] = [];
  for (const d of await readdir(dir, { withFileTypes: true })) {
    const relative = prefix ? `${prefix}/${d.name}` : d.name;
    if (d.isDirectory()) out.push(...(await listFiles(path.join(dir, d.name), relative)));
    else out.push(relative);
  }
  return out.sort();
}

/** Names this host in temporary folder names (hostnames may hold dashes). */
const HOST_TAG = createHash('sha256').update(os.hostname()).digest('hex').slice(0, 8);

async function readOwner(lockDir: string): Promise<LockOwner | undefined> {
  try {
    const o = JSON.parse(await readFile(path.join(lockDir, OWNER_FILE), 'utf8')) as LockOwner;
    return Number.isInteger(o.pid) && typeof o.host === 'string' && typeof o.started === 'string' ? o : undefined;
  } catch {
    // Absent (the holder has just taken the lock, or died before writing it) or half-written.
    return undefined;
  }
}

/**
 * Writes owner.json into the lock folder and gives the folder back its mtime: proper-lockfile checks at
 * each refresh that the mtime is the one it set, and adding a file changes a folder's mtime.
 */
async function writeOwner(lockDir: string, owner: LockOwner): Promise<void> {
  const before = await stat(lockDir);
  await writeFile(path.join(lockDir, OWNER_FILE), JSON.stringify(owner));
  await utimes(lockDir, before.atime, before.mtime);
}

function sameOwner(a: LockOwner | undefined, b: LockOwner | undefined): boolean {
  return a !== undefined && b !== undefined && a.pid === b.pid && a.host === b.host && a.started === b.started;
}

async function isStaleLock(lockDir: string): Promise<boolean> {
  try {
    return (await stat(lockDir)).mtimeMs < Date.now() - LOCK_STALE_MS;
  } catch {
    return false;
  }
}

/**
 * Removes a lock whose holder is gone, when `stillGone` confirms it under a guard folder (mkdir is atomic),
 * so two waiters never both remove a lock and the second one remove the first one's new lock.
 */
async function takeOver(lockDir: string, stillGone: () => Promise<boolean>): Promise<boolean> {
  const guard = `${lockDir}.takeover`;
  try {
    await mkdir(guard);
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code !== 'EEXIST') throw e;
    if (await olderThan(guard, TAKEOVER_STALE_MS)) await rmdir(guard).catch(() => {});
    return false;
  }
  try {
    if (!(await stillGone())) return false;
    await rm(lockDir, { recursive: true, force: true });
    return true;
  } finally {
    await rmdir(guard).catch(() => {});
  }
}

/** When a `.damaged-<key12>-<YYYYMMDDTHHMMSS>-<mmm>Z-<rand>` folder was moved aside (renaming keeps its mtime). */
function asideTime(name: string): number | undefined {
  const m = /^\.damaged-[0-9a-f]{12}-(\d{4})(\d{2})(\d{2})T(\d{2})(\d{2})(\d{2})-(\d{3})Z/.exec(name);
  return m ? Date.UTC(+m[1], +m[2] - 1, +m[3], +m[4], +m[5], +m[6], +m[7]) : undefined;
}

async function olderThan(p: string, ms: number): Promise<boolean> {
  try {
    return (await stat(p)).mtimeMs <= Date.now() - ms;
  } catch {
    return false;
  }
}

function clock(iso: string): string {
  const d = new Date(iso);
  return Number.isNaN(d.getTime()) ? iso : d.toTimeString().slice(0, 8);
}

function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}

function isAlive(pid: number): boolean {
  if (!Number.isInteger(pid) || pid <= 0) return false;
  try {
    process.kill(pid, 0);
    return true;
  } catch (e) {
    // EPERM: the process exists but belongs to someone else.
    return (e as NodeJS.ErrnoException).code === 'EPERM';
  }
}
