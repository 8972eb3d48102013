import path from 'node:path';

export type SourceSplit = 'train' | 'test';

/** One example as read from the source, its label mapped to a class index into `classes`. */
export interface SourceExample {
  id: string;
  text: string;
  classIndex: 0 | 1;
  source: SourceSplit;
}

export type DatasetKind = 'imdb-download' | 'aclimdb-folder' | 'aclimdb-tar' | 'files';

interface DescriptionBase {
  kind: DatasetKind;
  /** The two class names (index 0 and 1). */
  classes: [string, string];
  /** Absolute paths of every file whose content defines the data (for cache fingerprints; empty for imdb-download). */
  inputs: string[];
  /** Everything else that defines the data and is not a file's content. JSON-serialisable, no absolute paths. */
  identity: Record<string, unknown>;
  /** Whether the source has its own test examples; when false every example is 'train' and the caller carves the test split. */
  hasTest: boolean;
  /** Fraction of rows to hold out as test when hasTest is false (DATASET.test_ratio, default 0.2); null when hasTest. */
  testRatio: number | null;
  /** For messages: the URL or the resolved path DATASET refers to. */
  location: string;
}

export interface ImdbDownloadDescription extends DescriptionBase {
  kind: 'imdb-download';
  url: string;
  sha256: string;
}

export interface AclImdbFolderDescription extends DescriptionBase {
  kind: 'aclimdb-folder';
  /** The folder holding train/ and test/. */
  root: string;
}

export interface AclImdbTarDescription extends DescriptionBase {
  kind: 'aclimdb-tar';
  file: string;
}

export type TabularFormat = 'jsonl' | 'csv';

export interface TabularFile {
  path: string;
  source: SourceSplit;
  format: TabularFormat;
  /** CSV only: the given or detected delimiter. */
  delimiter?: string;
}

export interface TabularColumns {
  text: string;
  label: string;
  /** DATASET.id_column when set; null: ids are line numbers. */
  id: string | null;
}

export interface FilesDescription extends DescriptionBase {
  kind: 'files';
  files: TabularFile[];
  columns: TabularColumns;
  threshold: number | null;
}

/** What a DATASET value refers to, resolved without reading the whole data. */
export type DatasetDescription =
  | ImdbDownloadDescription
  | AclImdbFolderDescription
  | AclImdbTarDescription
  | FilesDescription;

export interface ReadProgress {
  phase: 'download' | 'read';
  done: number;
  total?: number;
  unit: 'bytes' | 'rows';
}

export interface ReadOptions {
  downloadsDir: string;
  onProgress?: (p: ReadProgress) => void;
  signal?: AbortSignal;
  /** Called once for each example whose bytes were not all UTF-8 (they were read as U+FFFD): its file, and line where there is one. */
  onNonUtf8?: (where: { file: string; line?: number }) => void;
}

export const DEFAULT_CLASSES: [string, string] = ['negative', 'positive'];

/** A path as short as it can be shown unambiguously: relative to the current folder when that is shorter. */
export function displayPath(abs: string): string {
  const rel = path.relative(process.cwd(), abs);
  return rel && !path.isAbsolute(rel) && rel.length < abs.length ? rel : abs;
}

/** Calls onProgress at most every `step` units, and always for the final value. */
export function throttledProgress(
  onProgress: ReadOptions['onProgress'],
  base: Omit<ReadProgress, 'done'>,
  step: number,
): { update(done: number, total?: number): void; finish(done?: number): void } {
  let last = -Infinity;
  let latest = { done: 0, total: base.total };
  return {
    update(done, total = base.total) {
      latest = { done, total };
      if (onProgress && done - last >= step) {
        last = done;
        onProgress({ ...base, done, total });
      }
    },
    finish(done = latest.done) {
      if (onProgress && done !== last) {
        last = done;
        onProgress({ ...base, total: latest.total, done });
      }
    },
  };
}
