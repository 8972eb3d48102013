import { createHash } from 'node:crypto';
import { createReadStream } from 'node:fs';
import { mkdir, readFile, stat } from 'node:fs/promises';
import path from 'node:path';
import { pipeline } from 'node:stream/promises';
import writeFileAtomic from 'write-file-atomic';

/** SHA-256 (hex) of a file's content, streamed. */
export async function sha256File(file: string, signal?: AbortSignal): Promise<string> {
  const hash = createHash('sha256');
  await pipeline(createReadStream(file), hash, { signal });
  return hash.digest('hex');
}

type Memo = Record<string, { size: number; mtimeMs: number; ino: number; sha256: string }>;

/**
 * SHA-256 of files' content, keyed by their path relative to `root` (so moving a dataset folder keeps
 * its cache). Hashes are remembered by (path, size, mtime, inode) in `memoFile`, so unchanged files
 * are not re-read on every run.
 */
export async function fingerprintFiles(files: string[], root: string, memoFile: string): Promise<Record<string, string>> {
  let memo: Memo = {};
  try {
    memo = JSON.parse(await readFile(memoFile, 'utf8')) as Memo;
  } catch {
    memo = {};
  }
  let changed = false;
  const out: Record<string, string> = {};
  for (const file of [...files].sort()) {
    const abs = path.resolve(file);
    const st = await stat(abs);
    const seen = memo[abs];
    let sha256: string;
    if (seen && seen.size === st.size && seen.mtimeMs === st.mtimeMs && seen.ino === st.ino) {
      sha256 = seen.sha256;
    } else {
      sha256 = await sha256File(abs);
      memo[abs] = { size: st.size, mtimeMs: st.mtimeMs, ino: st.ino, sha256 };
      changed = true;
    }
    out[path.relative(root, abs).split(path.sep).join('/') || path.basename(abs)] = sha256;
  }
  if (changed) {
    await mkdir(path.dirname(memoFile), { recursive: true });
    await writeFileAtomic(memoFile, JSON.stringify(memo));
  }
  return out;
}

/** The folder that contains all of `files`, for naming them relative to it. */
export function commonDir(files: string[]): string {
  if (files.length === 0) return process.cwd();
  const parts = files.map((f) => path.resolve(path.dirname(f)).split(path.sep));
  const first = parts[0];
  let n = first.length;
  for (const p of parts) {
    let i = 0;
    while (i < n && i < p.length && p[i] === first[i]) i++;
    n = i;
  }
  return first.slice(0, n).join(path.sep) || path.sep;
}
