import { ensureImdbArchive } from './download.js';
import { readAclImdbFolder, readAclImdbTar } from './imdb.js';
import { readTabular } from './tabular.js';
import type { DatasetDescription, ReadOptions, SourceExample } from './types.js';

/** Streams the examples of a described dataset; for `imdb`, first downloads the archive into downloadsDir unless it is there. */
export function readExamples(desc: DatasetDescription, opts: ReadOptions): AsyncIterable<SourceExample> {
  switch (desc.kind) {
    case 'imdb-download':
      return (async function* () {
        const archive = await ensureImdbArchive({ url: desc.url, sha256: desc.sha256 }, opts);
        yield* readAclImdbTar(archive, opts);
      })();
    case 'aclimdb-tar':
      return readAclImdbTar(desc.file, opts);
    case 'aclimdb-folder':
      return readAclImdbFolder(desc.inputs, opts);
    case 'files':
      return readTabular(desc, opts);
  }
}
