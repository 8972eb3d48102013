import { expect } from 'chai';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { existsSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

export const REPO = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
export const SHARED = path.resolve(REPO, '../shared');

/** A line of a stack trace: user errors must print none. */
export const NO_TRACE = /\n\s+at /;

/** The environment that points the CLI's cache and runs folders into `dir`. */
export function locationEnv(dir: string): { SENTIMENT_CACHE_DIR: string; SENTIMENT_RUNS_DIR: string } {
  return { SENTIMENT_CACHE_DIR: path.join(dir, 'cache'), SENTIMENT_RUNS_DIR: path.join(dir, 'runs') };
}

/** A fresh temporary folder, removed after the current test file. */
export async function tempDir(prefix = 'sentiment-test-'): Promise<string> {
  const dir = await mkdtemp(path.join(os.tmpdir(), prefix));
  after(() => rm(dir, { recursive: true, force: true }));
  return dir;
}

export async function writeText(file: string, text: string): Promise<string> {
  await writeFile(file, text);
  return file;
}

/** Skips the calling suite (with the reason printed) when a ../shared file is absent. */
export function requireShared(this: Mocha.Context, relative: string): string {
  const p = path.join(SHARED, relative);
  if (!existsSync(p)) {
    console.log(`      (skipped: ${p} is absent; it comes with the project's shared data)`);
    this.skip();
  }
  return p;
}

export interface CliResult {
  code: number | null;
  stdout: string;
  stderr: string;
}

/** Runs the built CLI (bin/run.js, from dist/) as a user would. */
export async function sentiment(args: string[], env: Record<string, string> = {}, cwd = REPO): Promise<CliResult> {
  const { execFile } = await import('node:child_process');
  return new Promise((resolve) => {
    execFile(process.execPath, [path.join(REPO, 'bin/run.js'), ...args], { cwd, env: { ...process.env, CI: '1', ...env }, maxBuffer: 64 << 20 }, (error, stdout, stderr) => {
      resolve({ code: error ? (typeof error.code === 'number' ? error.code : 1) : 0, stdout, stderr });
    });
  });
}

/**
 * nodejs-polars, an independent Arrow reader, when installed (`npm i --no-save nodejs-polars`); it is no
 * dependency, so the test calling this skips with a message otherwise. Typed loosely on purpose: the
 * type-check must not need it.
 */
export async function optionalPolars(ctx: Mocha.Context): Promise<any> {
  const name = 'nodejs-polars';
  try {
    return (await import(name)).default;
  } catch {
    console.log('      (skipped: nodejs-polars is not installed; npm i --no-save nodejs-polars to run this check)');
    ctx.skip();
  }
}

/** What `fn` throws; fails the test when it throws nothing (an expect.fail inside a try would be caught by its own catch). */
export function thrownBy(fn: () => unknown): unknown {
  try {
    fn();
  } catch (e) {
    return e;
  }
  return expect.fail('expected it to throw');
}
