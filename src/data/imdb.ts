import { createReadStream, readFileSync } from 'node:fs';
import { readdir, stat } from 'node:fs/promises';
import path from 'node:path';
import { Parser, type ReadEntry } from 'tar';
import { UserError, messageOf } from '../core/errors.js';
import { firstNonUtf8 } from '../core/lines.js';
import { displayPath, throttledProgress, type ReadOptions, type SourceExample, type SourceSplit } from './types.js';

const SPLITS: readonly SourceSplit[] = ['train', 'test'];
/** Folder names in class-index order: neg → 0, pos → 1. */
const CLASS_FOLDERS = ['neg', 'pos'] as const;
export const ACLIMDB_SUBFOLDERS = SPLITS.flatMap((s) => CLASS_FOLDERS.map((c) => `${s}/${c}`));

interface AclImdbKey {
  source: SourceSplit;
  classIndex: 0 | 1;
  /** File name without `.txt`, e.g. `0_9`. */
  name: string;
}

const REVIEW_NAME = /^(\d+)_/;

function compareKeys(a: AclImdbKey, b: AclImdbKey): number {
  const bySplit = SPLITS.indexOf(a.source) - SPLITS.indexOf(b.source);
  if (bySplit !== 0) return bySplit;
  if (a.classIndex !== b.classIndex) return a.classIndex - b.classIndex;
  const na = REVIEW_NAME.exec(a.name);
  const nb = REVIEW_NAME.exec(b.name);
  // Numbered reviews first, in numeric order; anything else after, by name.
  if (na && nb && na[1] !== nb[1]) return Number(na[1]) - Number(nb[1]);
  if (na && !nb) return -1;
  if (!na && nb) return 1;
  return a.name < b.name ? -1 : a.name > b.name ? 1 : 0;
}

function idOf(key: AclImdbKey): string {
  return `${key.source}/${CLASS_FOLDERS[key.classIndex]}/${key.name}`;
}

async function isDirectory(p: string): Promise<boolean> {
  try {
    return (await stat(p)).isDirectory();
  } catch {
    return false;
  }
}

/** Which of train/pos, train/neg, test/pos, test/neg exist under `dir`. */
export async function aclImdbSubfoldersIn(dir: string): Promise<string[]> {
  const present = await Promise.all(ACLIMDB_SUBFOLDERS.map((sub) => isDirectory(path.join(dir, sub))));
  return ACLIMDB_SUBFOLDERS.filter((_, i) => present[i]);
}

/** The review files of an aclImdb folder (absolute paths), in reading order; ignores train/unsup and non-.txt files. */
export async function listAclImdbFolder(root: string): Promise<string[]> {
  const keys: AclImdbKey[] = [];
  for (const source of SPLITS) {
    for (const [classIndex, folder] of CLASS_FOLDERS.entries()) {
      const dir = path.join(root, source, folder);
      const names = (await readdir(dir, { withFileTypes: true }))
        .filter((e) => e.name.endsWith('.txt') && !e.isDirectory())
        .map((e) => e.name.slice(0, -'.txt'.length));
      if (names.length === 0) {
        throw new UserError(`DATASET: ${displayPath(dir)} holds no .txt reviews`, [
          'an aclImdb folder has train/pos, train/neg, test/pos and test/neg, each holding <id>_<rating>.txt files',
        ]);
      }
      for (const name of names) keys.push({ source, classIndex: classIndex as 0 | 1, name });
    }
  }
  keys.sort(compareKeys);
  return keys.map((k) => path.join(root, `${idOf(k)}.txt`));
}

function keyFromFolderPath(file: string): AclImdbKey {
  const parts = file.split(path.sep).slice(-3);
  return {
    source: parts[0] as SourceSplit,
    classIndex: CLASS_FOLDERS.indexOf(parts[1] as 'neg' | 'pos') as 0 | 1,
    name: parts[2]!.slice(0, -'.txt'.length),
  };
}

const BATCH_FILES = 256;

/** Tells opts.onNonUtf8 about a review whose bytes are not all UTF-8, with the line of the first such byte. */
function reportNonUtf8(opts: ReadOptions, file: string, bytes: Buffer): void {
  if (!opts.onNonUtf8) return;
  const at = firstNonUtf8(bytes);
  if (at) opts.onNonUtf8({ file, line: at.line });
}

/**
 * Reads the files listed by listAclImdbFolder, in that order. Small synchronous reads in batches are several times
 * faster than one async readFile per review (4 syscalls through the thread pool each); yielding to the event loop
 * between batches keeps progress output alive.
 */
export async function* readAclImdbFolder(files: string[], opts: ReadOptions): AsyncGenerator<SourceExample> {
  const progress = throttledProgress(opts.onProgress, { phase: 'read', unit: 'rows', total: files.length }, 500);
  for (let start = 0; start < files.length; start += BATCH_FILES) {
    await new Promise((resolve) => setImmediate(resolve));
    opts.signal?.throwIfAborted();
    const batch = files.slice(start, start + BATCH_FILES).map((file) => {
      try {
        return { file, bytes: readFileSync(file) };
      } catch (e) {
        throw new UserError(`DATASET: could not read ${displayPath(file)}: ${messageOf(e)}`);
      }
    });
    for (const { file, bytes } of batch) {
      const key = keyFromFolderPath(file);
      reportNonUtf8(opts, file, bytes);
      yield { id: idOf(key), text: bytes.toString('utf8'), classIndex: key.classIndex, source: key.source };
    }
    progress.update(start + batch.length);
  }
  progress.finish(files.length);
}

const TAR_REVIEW = /^(?:\.\/)?(?:[^/]+\/)?(train|test)\/(neg|pos)\/([^/]+)\.txt$/;
const FILE_TYPES = new Set(['File', 'OldFile', 'ContiguousFile']);

/** Reads an aclImdb archive (gzip or plain tar) without extracting it; sorted, so the whole labelled text is held in memory. */
export async function* readAclImdbTar(file: string, opts: ReadOptions): AsyncGenerator<SourceExample> {
  const { signal } = opts;
  signal?.throwIfAborted();
  const entries: { key: AclImdbKey; chunks: Buffer[] }[] = [];
  const { size } = await stat(file);
  const progress = throttledProgress(opts.onProgress, { phase: 'read', unit: 'bytes', total: size }, 1 << 20);
  let bytesRead = 0;

  await new Promise<void>((resolve, reject) => {
    const input = createReadStream(file);
    const fail = (e: unknown) => {
      input.destroy();
      reject(e);
    };
    const onAbort = () => fail(signal!.reason);
    signal?.addEventListener('abort', onAbort, { once: true });
    const done = (e?: unknown) => {
      signal?.removeEventListener('abort', onAbort);
      if (e === undefined) resolve();
      else fail(e);
    };
    const parser = new Parser({
      strict: true,
      onReadEntry: (entry: ReadEntry) => {
        const match = FILE_TYPES.has(entry.type) ? TAR_REVIEW.exec(entry.path) : null;
        if (!match) {
          entry.resume();
          return;
        }
        const record = {
          key: {
            source: match[1] as SourceSplit,
            classIndex: CLASS_FOLDERS.indexOf(match[2] as 'neg' | 'pos') as 0 | 1,
            name: match[3]!,
          },
          chunks: [] as Buffer[],
        };
        entries.push(record);
        entry.on('data', (chunk: Buffer) => record.chunks.push(chunk));
      },
    });
    parser.on('error', (e: unknown) =>
      done(
        new UserError(`DATASET: ${displayPath(file)} could not be read as a tar archive (damaged or truncated?): ${messageOf(e)}`, [
          'expected aclImdb_v1.tar.gz as published (train/ and test/, each with pos/ and neg/)',
        ]),
      ),
    );
    parser.on('end', () => done());
    input.on('data', (chunk) => {
      bytesRead += chunk.length;
      progress.update(bytesRead);
    });
    input.on('error', (e) => done(new UserError(`DATASET: could not read ${displayPath(file)}: ${messageOf(e)}`)));
    input.pipe(parser);
  });
  progress.finish(bytesRead);

  const missing = ACLIMDB_SUBFOLDERS.filter(
    (sub) => !entries.some((e) => `${e.key.source}/${CLASS_FOLDERS[e.key.classIndex]}` === sub),
  );
  if (missing.length > 0) {
    throw new UserError(`DATASET: ${displayPath(file)} is not an aclImdb archive: no reviews under ${missing.join(', ')}`, [
      'expected aclImdb_v1.tar.gz as published (aclImdb/train/pos/<id>_<rating>.txt, ...)',
    ]);
  }
  entries.sort((a, b) => compareKeys(a.key, b.key));
  for (let i = 1; i < entries.length; i++) {
    if (compareKeys(entries[i - 1]!.key, entries[i]!.key) === 0) {
      throw new UserError(`DATASET: ${displayPath(file)} holds ${idOf(entries[i]!.key)}.txt twice`);
    }
  }
  for (let i = 0; i < entries.length; i++) {
    signal?.throwIfAborted();
    const { key, chunks } = entries[i]!;
    const bytes = Buffer.concat(chunks);
    const text = bytes.toString('utf8');
    entries[i]!.chunks = []; // let the text already handed out be collected
    reportNonUtf8(opts, `${file} (${idOf(key)}.txt)`, bytes);
    yield { id: idOf(key), text, classIndex: key.classIndex, source: key.source };
  }
}
