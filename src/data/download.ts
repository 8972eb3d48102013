import { createHash, randomBytes } from 'node:crypto';
import { createReadStream, createWriteStream } from 'node:fs';
import { mkdir, rename, rm, stat } from 'node:fs/promises';
import path from 'node:path';
import { Readable, Transform } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { UserError, messageOf } from '../runner/errors.js';
import { displayPath, throttledProgress, type ReadOptions } from './types.js';

export const IMDB_URL = 'https://ai.stanford.edu/~amaas/data/sentiment/aclImdb_v1.tar.gz';
export const IMDB_SHA256 = 'c40f74a18d3b61f90feba1e17730e0d38e8b97c05fde7008942e91923d1658fe';
export const IMDB_FILE_NAME = 'aclImdb_v1.tar.gz';

/** The URL and checksum of the `imdb` dataset; SENTIMENT_IMDB_URL / SENTIMENT_IMDB_SHA256 override them (tests, mirrors). */
export function imdbSource(env: NodeJS.ProcessEnv = process.env): { url: string; sha256: string } {
  return {
    url: env.SENTIMENT_IMDB_URL || IMDB_URL,
    sha256: (env.SENTIMENT_IMDB_SHA256 || IMDB_SHA256).toLowerCase(),
  };
}

const LOCAL_COPY_HINTS = [
  'to use a local copy instead, point DATASET at one of:',
  '  an aclImdb folder (train/pos, train/neg, test/pos, test/neg), e.g. --set DATASET=path/to/aclImdb',
  '  the archive itself, e.g. --set DATASET=path/to/aclImdb_v1.tar.gz',
  '  JSONL files (train.jsonl and test.jsonl with text and label), e.g. --set DATASET=../shared/data/imdb',
];

export async function sha256File(file: string, signal?: AbortSignal): Promise<string> {
  const hash = createHash('sha256');
  await pipeline(createReadStream(file), hash, { signal });
  return hash.digest('hex');
}

function reasonOf(e: unknown): string {
  // undici reports "fetch failed" and puts the actual cause (ECONNREFUSED, ENOTFOUND...) underneath.
  const cause = (e as { cause?: unknown }).cause;
  if (cause) {
    const code = (cause as { code?: unknown }).code;
    const message = messageOf(cause);
    return typeof code === 'string' && !message.includes(code) ? `${code}: ${message}` : message;
  }
  return messageOf(e);
}

function downloadFailed(url: string, reason: string, cause?: unknown): UserError {
  return new UserError(`DATASET: could not download the imdb dataset from ${url}: ${reason}`, LOCAL_COPY_HINTS, { cause });
}

/**
 * Returns the path of the verified archive in downloadsDir, downloading it first when it is not there (or is not
 * the expected file). The download goes to a partial file renamed into place only once its checksum matched.
 */
export async function ensureImdbArchive(
  source: { url: string; sha256: string },
  opts: ReadOptions,
): Promise<string> {
  const { downloadsDir, signal } = opts;
  const target = path.join(downloadsDir, IMDB_FILE_NAME);
  if (await exists(target)) {
    if ((await sha256File(target, signal)) === source.sha256) return target;
    await rm(target, { force: true }); // stale or from another URL: fetch it again
  }
  await mkdir(downloadsDir, { recursive: true });
  const partial = `${target}.partial-${randomBytes(6).toString('hex')}`;
  try {
    const actual = await download(source.url, partial, opts);
    if (actual !== source.sha256) {
      throw new UserError(`DATASET: the file downloaded from ${source.url} does not have the expected SHA-256`, [
        `expected ${source.sha256}`,
        `actual   ${actual}`,
        'the download may have been cut short or the server returned another file; run again, or use a local copy',
        ...LOCAL_COPY_HINTS.slice(1),
      ]);
    }
    await rename(partial, target);
  } finally {
    await rm(partial, { force: true });
  }
  return target;
}

async function exists(file: string): Promise<boolean> {
  try {
    return (await stat(file)).isFile();
  } catch {
    return false;
  }
}

/** Streams url into file while hashing it; returns the SHA-256 (hex). */
async function download(url: string, file: string, opts: ReadOptions): Promise<string> {
  const { signal } = opts;
  let response: Response;
  try {
    // identity: a server that gzips the response would otherwise be transparently decoded and fail the checksum.
    response = await fetch(url, { signal, headers: { 'accept-encoding': 'identity' } });
  } catch (e) {
    if (signal?.aborted) throw signal.reason;
    throw downloadFailed(url, reasonOf(e), e);
  }
  if (!response.ok || !response.body) {
    await response.body?.cancel().catch(() => undefined);
    throw downloadFailed(url, `HTTP ${response.status} ${response.statusText}`.trim());
  }
  const length = Number(response.headers.get('content-length'));
  const total = Number.isFinite(length) && length > 0 ? length : undefined;
  const progress = throttledProgress(opts.onProgress, { phase: 'download', unit: 'bytes', total }, 1 << 20);
  const hash = createHash('sha256');
  let done = 0;
  const hashing = new Transform({
    transform(chunk: Buffer, _encoding, callback) {
      hash.update(chunk);
      done += chunk.length;
      progress.update(done);
      callback(null, chunk);
    },
  });
  try {
    await pipeline(
      Readable.fromWeb(response.body as import('node:stream/web').ReadableStream<Uint8Array>),
      hashing,
      createWriteStream(file),
      { signal },
    );
  } catch (e) {
    if (signal?.aborted) throw signal.reason;
    if ((e as { syscall?: unknown }).syscall && (e as { path?: unknown }).path === file) {
      throw new UserError(`DATASET: could not write ${displayPath(file)}: ${messageOf(e)}`);
    }
    throw downloadFailed(url, reasonOf(e), e);
  }
  if (total !== undefined && done !== total) {
    throw downloadFailed(url, `the connection closed after ${done} of ${total} bytes`);
  }
  progress.finish(done);
  return hash.digest('hex');
}
