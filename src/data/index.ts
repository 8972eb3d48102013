export { describeDataset } from './describe.js';
export { readExamples } from './read.js';
export { IMDB_SHA256, IMDB_URL, imdbSource } from './download.js';
export { mapLabel } from './tabular.js';
export {
  DEFAULT_CLASSES,
  type AclImdbFolderDescription,
  type AclImdbTarDescription,
  type DatasetDescription,
  type DatasetKind,
  type FilesDescription,
  type ImdbDownloadDescription,
  type ReadOptions,
  type ReadProgress,
  type SourceExample,
  type SourceSplit,
  type TabularColumns,
  type TabularFile,
  type TabularFormat,
} from './types.js';
