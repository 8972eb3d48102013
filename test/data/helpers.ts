import { mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { expect } from 'chai';
import * as tar from 'tar';
import { UserError } from '../../src/core/errors.js';
import { readExamples, type DatasetDescription, type ReadOptions, type SourceExample } from '../../src/data/index.js';

export async function makeTempDir(): Promise<string> {
  return mkdtemp(path.join(os.tmpdir(), 'sentiment-data-test-'));
}

export async function removeDir(dir: string | undefined): Promise<void> {
  if (dir) await rm(dir, { recursive: true, force: true });
}

export async function writeFiles(root: string, files: Record<string, string>): Promise<void> {
  for (const [rel, content] of Object.entries(files)) {
    const file = path.join(root, rel);
    await mkdir(path.dirname(file), { recursive: true });
    await writeFile(file, content);
  }
}

/** Reviews of a small aclImdb folder: numbers chosen so that numeric and text order differ (2 < 10). */
export const ACLIMDB_REVIEWS: Record<string, string> = {
  'train/pos/10_9.txt': 'Loved it.<br /><br />Would watch again.',
  'train/pos/2_8.txt': 'Great film — truly “great”.',
  'train/neg/0_1.txt': 'Terrible.\nTwo lines.',
  'train/neg/11_3.txt': 'Boring ☹',
  'test/pos/3_10.txt': 'A masterpiece.',
  'test/neg/1_2.txt': 'Awful acting.',
  'test/neg/12_4.txt': 'Meh, bad.',
};

/** The examples the fixture must read as, in order. */
export const ACLIMDB_EXPECTED: SourceExample[] = [
  { id: 'train/neg/0_1', text: 'Terrible.\nTwo lines.', classIndex: 0, source: 'train' },
  { id: 'train/neg/11_3', text: 'Boring ☹', classIndex: 0, source: 'train' },
  { id: 'train/pos/2_8', text: 'Great film — truly “great”.', classIndex: 1, source: 'train' },
  { id: 'train/pos/10_9', text: 'Loved it.<br /><br />Would watch again.', classIndex: 1, source: 'train' },
  { id: 'test/neg/1_2', text: 'Awful acting.', classIndex: 0, source: 'test' },
  { id: 'test/neg/12_4', text: 'Meh, bad.', classIndex: 0, source: 'test' },
  { id: 'test/pos/3_10', text: 'A masterpiece.', classIndex: 1, source: 'test' },
];

/** Writes `<root>/aclImdb/` with the reviews plus the files the reader must ignore. */
export async function makeAclImdbFolder(root: string): Promise<string> {
  const folder = path.join(root, 'aclImdb');
  await writeFiles(folder, {
    ...ACLIMDB_REVIEWS,
    'train/unsup/0_0.txt': 'unlabelled review',
    'train/urls_pos.txt': 'http://example.com',
    'train/labeledBow.feat': '0 0:1',
    'README': 'readme',
    'imdb.vocab': 'the',
  });
  return folder;
}

/** Packs `<root>/aclImdb` into a gzipped tarball, entries in an order unlike the reading order. */
export async function makeAclImdbTarball(root: string, file = path.join(root, 'aclImdb_v1.tar.gz')): Promise<string> {
  const entries = [
    'aclImdb/README',
    'aclImdb/test/pos/3_10.txt',
    'aclImdb/train/unsup/0_0.txt',
    'aclImdb/test/neg/12_4.txt',
    'aclImdb/train/pos/10_9.txt',
    'aclImdb/train/neg/11_3.txt',
    'aclImdb/test/neg/1_2.txt',
    'aclImdb/train/pos/2_8.txt',
    'aclImdb/train/urls_pos.txt',
    'aclImdb/train/neg/0_1.txt',
  ];
  await tar.c({ gzip: true, file, cwd: root, portable: true }, entries);
  return file;
}

export async function collect(desc: DatasetDescription, opts: Partial<ReadOptions> = {}): Promise<SourceExample[]> {
  const out: SourceExample[] = [];
  for await (const ex of readExamples(desc, { downloadsDir: opts.downloadsDir ?? path.join(os.tmpdir(), 'unused-downloads'), ...opts })) {
    out.push(ex);
  }
  return out;
}

/** Awaits a promise that must reject with a UserError whose message (and details) match every pattern. */
export async function expectUserError(promise: Promise<unknown>, ...patterns: (string | RegExp)[]): Promise<UserError> {
  let error: unknown;
  try {
    await promise;
  } catch (e) {
    error = e;
  }
  expect(error, 'expected a UserError').to.be.instanceOf(UserError);
  const text = (error as UserError).toString();
  for (const p of patterns) {
    if (typeof p === 'string') expect(text).to.include(p);
    else expect(text).to.match(p);
  }
  return error as UserError;
}
