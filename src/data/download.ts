import { rm, stat } from 'node:fs/promises';
import path from 'node:path';
import { DownloadError, LocalWriteError, downloadFile } from '../core/download.js';
import { UserError } from '../core/errors.js';
import { sha256File } from '../core/fingerprint.js';
import { throttledProgress, type ReadOptions } from './types.js';
import { imdbOverrides } from '../core/settings.js';

export const IMDB_URL = 'https://ai.stanford.edu/~amaas/data/sentiment/aclImdb_v1.tar.gz';
export const IMDB_SHA256 = 'c40f74a18d3b61f90feba1e17730e0d38e8b97c05fde7008942e91923d1658fe';
export const IMDB_FILE_NAME = 'aclImdb_v1.tar.gz';

/** The URL and checksum of the `imdb` dataset; SENTIMENT_IMDB_URL / SENTIMENT_IMDB_SHA256 override them (tests, mirrors). */
export function imdbSource(env: NodeJS.ProcessEnv = process.env): { url: string; sha256: string } {
  const asked = imdbOverrides(env);
  return { url: asked.url ?? IMDB_URL, sha256: asked.sha256 ?? IMDB_SHA256 };
}

const LOCAL_COPY_HINTS = [
  'to use a local copy instead, point DATASET at one of:',
  '  an aclImdb folder (train/pos, train/neg, test/pos, test/neg), e.g. --set DATASET=path/to/aclImdb',
  '  the archive itself, e.g. --set DATASET=path/to/aclImdb_v1.tar.gz',
  '  JSONL files (train.jsonl and test.jsonl with text and label), e.g. --set DATASET=../shared/data/imdb',
];

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
  const progress = throttledProgress(opts.onProgress, { phase: 'download', unit: 'bytes' }, 1 << 20);
  try {
    await downloadFile(source.url, target, {
      signal,
      onProgress: (done, total) => progress.update(done, total),
      verify: (actual) => {
        if (actual !== source.sha256) {
          throw new UserError(`DATASET: the file downloaded from ${source.url} does not have the expected SHA-256`, [
            `expected ${source.sha256}`,
            `actual   ${actual}`,
            'the download may have been cut short or the server returned another file; run again, or use a local copy',
            ...LOCAL_COPY_HINTS.slice(1),
          ]);
        }
      },
    });
  } catch (e) {
    if (e instanceof DownloadError) throw downloadFailed(e.url, e.reason, e);
    if (e instanceof LocalWriteError) throw new UserError(`DATASET: ${e.message}`);
    throw e;
  }
  progress.finish();
  return target;
}

async function exists(file: string): Promise<boolean> {
  try {
    return (await stat(file)).isFile();
  } catch {
    return false;
  }
}
