import { createHash, randomBytes } from 'node:crypto';
import { mkdir, readdir, readFile, rename, rm, writeFile } from 'node:fs/promises';
import path from 'node:path';
import canonicalize from 'canonicalize';
import lockfile from 'proper-lockfile';

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

export interface Manifest {
  stage: string;
  key: string;
  material: KeyMaterial;
  createdAt: string;
  /** Seconds the stage took to compute. */
  seconds: number;
  /** What the stage reports about its output (row counts, files, dtype, ...). */
  info: Record<string, unknown>;
}

export interface CacheEntry {
  dir: string;
  manifest: Manifest;
}

export type StageKey = string;

export function stageKey(material: KeyMaterial): StageKey {
  return createHash('sha256').update(canonicalize(material) ?? '').digest('hex');
}

/**
 * Content-addressed store of stage outputs: `<root>/<stage>/<key>/` with manifest.json written last.
 * An entry is built in a temporary folder and renamed into place, so a reader never sees a partial
 * one and an interrupted stage leaves only a temporary folder that the next writer ignores.
 */
export class Cache {
  constructor(readonly root: string) {}

  entryDir(stage: string, key: StageKey): string {
    return path.join(this.root, stage, key);
  }

  async lookup(stage: string, key: StageKey): Promise<CacheEntry | undefined> {
    const dir = this.entryDir(stage, key);
    try {
      const manifest = JSON.parse(await readFile(path.join(dir, 'manifest.json'), 'utf8')) as Manifest;
      return { dir, manifest };
    } catch {
      return undefined;
    }
  }

  /** Complete entries of a stage, newest first (for explaining a miss). */
  async entries(stage: string): Promise<CacheEntry[]> {
    let names: string[];
    try {
      names = await readdir(path.join(this.root, stage));
    } catch {
      return [];
    }
    const found = await Promise.all(names.filter((n) => /^[0-9a-f]{64}$/.test(n)).map((n) => this.lookup(stage, n)));
    return found.filter((e): e is CacheEntry => e !== undefined).sort((a, b) => b.manifest.createdAt.localeCompare(a.manifest.createdAt));
  }

  /**
   * Computes an entry under a lock, so two processes never compute the same entry at once: the second
   * waits and then finds the first one's result. `force` replaces an existing entry.
   */
  async compute(
    material: KeyMaterial,
    produce: (tmpDir: string) => Promise<Record<string, unknown>>,
    options: { force?: boolean } = {},
  ): Promise<CacheEntry> {
    const key = stageKey(material);
    const stageDir = path.join(this.root, material.stage);
    await mkdir(stageDir, { recursive: true });
    const release = await lockfile.lock(stageDir, {
      lockfilePath: path.join(stageDir, `${key}.lock`),
      realpath: false,
      stale: 60_000,
      update: 10_000,
      retries: { retries: 1_000_000, factor: 1, minTimeout: 200, maxTimeout: 1000 },
    });
    try {
      if (!options.force) {
        const existing = await this.lookup(material.stage, key);
        if (existing) return existing;
      }
      const tmpDir = path.join(stageDir, `.tmp-${key.slice(0, 12)}-${process.pid}-${randomBytes(4).toString('hex')}`);
      await mkdir(tmpDir, { recursive: true });
      try {
        const started = performance.now();
        const info = await produce(tmpDir);
        const manifest: Manifest = {
          stage: material.stage,
          key,
          material,
          createdAt: new Date().toISOString(),
          seconds: (performance.now() - started) / 1000,
          info,
        };
        await writeFile(path.join(tmpDir, 'manifest.json'), JSON.stringify(manifest, null, 2));
        const dir = this.entryDir(material.stage, key);
        if (options.force) await rm(dir, { recursive: true, force: true });
        await rename(tmpDir, dir);
        return { dir, manifest };
      } catch (e) {
        await rm(tmpDir, { recursive: true, force: true });
        throw e;
      }
    } finally {
      await release();
    }
  }

  /** Removes temporary folders left by interrupted runs that no live process holds. */
  async sweepTemporary(stage: string): Promise<void> {
    let names: string[];
    try {
      names = await readdir(path.join(this.root, stage));
    } catch {
      return;
    }
    await Promise.all(
      names
        .filter((n) => n.startsWith('.tmp-'))
        .filter((n) => !isAlive(Number(n.split('-')[2])))
        .map((n) => rm(path.join(this.root, stage, n), { recursive: true, force: true })),
    );
  }
}

function isAlive(pid: number): boolean {
  if (!Number.isInteger(pid) || pid <= 0) return false;
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
}
