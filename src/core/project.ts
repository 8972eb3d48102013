import { existsSync, statSync } from 'node:fs';
import path from 'node:path';

/** The folder in a project root that holds sentiment's own files (the cache by default). */
export const PROJECT_DIR = '.sentiment';

function isDir(p: string): boolean {
  try {
    return statSync(p).isDirectory();
  } catch {
    return false;
  }
}

/**
 * The project root the cache and runs folders are found from: the nearest folder up from `cwd` that
 * holds a `.sentiment/` folder; else the nearest holding a `package.json` or `.git`; else `cwd` itself.
 */
export function projectRoot(cwd: string = process.cwd()): string {
  const start = path.resolve(cwd);
  const up: string[] = [];
  for (let dir = start; ; dir = path.dirname(dir)) {
    up.push(dir);
    if (path.dirname(dir) === dir) break;
  }
  const marked = up.find((dir) => isDir(path.join(dir, PROJECT_DIR)));
  if (marked) return marked;
  const project = up.find((dir) => existsSync(path.join(dir, 'package.json')) || existsSync(path.join(dir, '.git')));
  return project ?? start;
}

/** The default cache folder: `<project root>/.sentiment/cache`. */
export function defaultCacheDir(cwd?: string): string {
  return path.join(projectRoot(cwd), PROJECT_DIR, 'cache');
}

/** The default runs folder: `<project root>/runs`. */
export function defaultRunsDir(cwd?: string): string {
  return path.join(projectRoot(cwd), 'runs');
}
