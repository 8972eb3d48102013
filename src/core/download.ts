import { createHash, randomBytes } from 'node:crypto';
import { createWriteStream } from 'node:fs';
import { mkdir, rename, rm } from 'node:fs/promises';
import path from 'node:path';
import { Readable, Transform } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { messageOf } from './errors.js';

/** A download that did not complete; callers turn it into a UserError that says what to do instead. */
export class DownloadError extends Error {
  constructor(
    readonly url: string,
    readonly reason: string,
    /** HTTP status, when the server answered with an error. */
    readonly status?: number,
    options?: { cause?: unknown },
  ) {
    super(`could not download ${url}: ${reason}`, options);
    this.name = 'DownloadError';
  }
}

/** Thrown when the downloaded file cannot be written locally (not a network problem). */
export class LocalWriteError extends Error {}

export interface DownloadOptions {
  signal?: AbortSignal;
  onProgress?: (done: number, total: number | undefined) => void;
  /** Called with the file's SHA-256 before it is moved into place; throwing keeps it out. */
  verify?: (sha256: string) => void;
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

/**
 * Streams `url` into `target` while hashing it: into a partial file that is renamed into place only when
 * complete (and verified), so an interrupted or failed download never leaves a file that looks whole.
 * Returns the SHA-256 (hex).
 */
export async function downloadFile(url: string, target: string, opts: DownloadOptions = {}): Promise<string> {
  const { signal } = opts;
  await mkdir(path.dirname(target), { recursive: true });
  const partial = `${target}.partial-${randomBytes(6).toString('hex')}`;
  try {
    let response: Response;
    try {
      // identity: a server that gzips the response would otherwise be transparently decoded and fail checksums.
      response = await fetch(url, { signal, redirect: 'follow', headers: { 'accept-encoding': 'identity' } });
    } catch (e) {
      if (signal?.aborted) throw signal.reason;
      throw new DownloadError(url, reasonOf(e), undefined, { cause: e });
    }
    if (!response.ok || !response.body) {
      await response.body?.cancel().catch(() => undefined);
      throw new DownloadError(url, `HTTP ${response.status} ${response.statusText}`.trim(), response.status);
    }
    const length = Number(response.headers.get('content-length'));
    const total = Number.isFinite(length) && length > 0 ? length : undefined;
    const hash = createHash('sha256');
    let done = 0;
    const hashing = new Transform({
      transform(chunk: Buffer, _encoding, callback) {
        hash.update(chunk);
        done += chunk.length;
        opts.onProgress?.(done, total);
        callback(null, chunk);
      },
    });
    try {
      await pipeline(Readable.fromWeb(response.body as import('node:stream/web').ReadableStream<Uint8Array>), hashing, createWriteStream(partial), { signal });
    } catch (e) {
      if (signal?.aborted) throw signal.reason;
      if ((e as { syscall?: unknown }).syscall && (e as { path?: unknown }).path === partial) {
        throw new LocalWriteError(`could not write ${partial}: ${messageOf(e)}`, { cause: e });
      }
      throw new DownloadError(url, reasonOf(e), undefined, { cause: e });
    }
    if (total !== undefined && done !== total) throw new DownloadError(url, `the connection closed after ${done} of ${total} bytes`);
    const sha256 = hash.digest('hex');
    opts.verify?.(sha256);
    await rename(partial, target);
    return sha256;
  } finally {
    await rm(partial, { force: true });
  }
}
