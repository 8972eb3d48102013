import { UserError } from './errors.js';

/** What the operating system said, in words a user acts on; the errno code stays in the message. */
const EXPLAINED: Record<string, string> = {
  ENOSPC: 'no space left on the device',
  EDQUOT: 'disk quota exceeded',
  EACCES: 'permission denied',
  EPERM: 'operation not permitted',
  EROFS: 'read-only file system',
  EMFILE: 'too many open files',
  ENFILE: 'too many open files in the system',
  EISDIR: 'is a folder, not a file',
  ENOTDIR: 'a part of the path is not a folder',
  ENOENT: 'no such file or folder',
  EEXIST: 'already exists',
  EIO: 'input/output error (failing disk or network file system)',
};

/** Advice for the codes where there is something to do besides reading the path. */
const ADVICE: Record<string, string> = {
  ENOSPC: 'free some space (sentiment cache verify --repair and removing old entries help), or point --cache-dir / SENTIMENT_CACHE_DIR at a larger disk',
  EDQUOT: 'free some space, or point --cache-dir / SENTIMENT_CACHE_DIR elsewhere',
  EACCES: 'check the permissions of that path, or choose another --cache-dir / --runs-dir',
  EPERM: 'check the permissions of that path, or choose another --cache-dir / --runs-dir',
  EROFS: 'choose a writable --cache-dir / --runs-dir',
  EMFILE: 'raise the open-file limit (ulimit -n)',
};

interface SystemError extends Error {
  code: string;
  path?: string;
  dest?: string;
  syscall?: string;
}

export function isSystemError(e: unknown): e is SystemError {
  return e instanceof Error && typeof (e as SystemError).code === 'string' && (e as SystemError).code in EXPLAINED && typeof (e as SystemError).syscall === 'string';
}

/**
 * A file-system error from Node (ENOSPC, EACCES, ...) as a UserError naming what was being done
 * (`during`, e.g. "stage encode") and the path, with advice; anything else is returned as it is. Errors
 * of a write to an open stream carry no path: `folder` then names where the writing happened.
 */
export function explainSystemError(e: unknown, during?: string, folder?: string): unknown {
  if (!isSystemError(e)) return e;
  const where = e.path ? `${e.path}${e.dest ? ` → ${e.dest}` : ''}` : folder ? `writing in ${folder}` : 'a file';
  const what = `${EXPLAINED[e.code]} (${e.code}${e.syscall ? `, ${e.syscall}` : ''})`;
  const advice = ADVICE[e.code];
  return new UserError(`${during ? `${during}: ` : ''}${where}: ${what}`, advice ? [advice] : [], { cause: e });
}

/** A folder option (--cache-dir, --runs-dir) must name a folder or nothing yet, never a file. */
export async function checkFolderOption(flag: string, dir: string): Promise<void> {
  const { stat } = await import('node:fs/promises');
  const info = await stat(dir).catch(() => undefined);
  if (info && !info.isDirectory()) throw new UserError(`${flag} ${dir}: is a file, not a folder`);
}
