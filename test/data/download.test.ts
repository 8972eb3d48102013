import { createHash } from 'node:crypto';
import { readdir, readFile, writeFile } from 'node:fs/promises';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import path from 'node:path';
import { expect } from 'chai';
import { describeDataset, IMDB_SHA256, IMDB_URL, type ReadProgress } from '../../src/data/index.js';
import { ACLIMDB_EXPECTED, collect, expectUserError, makeAclImdbFolder, makeAclImdbTarball, makeTempDir, removeDir } from './helpers.js';

type Behaviour = 'ok' | 'cut' | 'hang' | 'missing';

describe('data: downloading imdb', () => {
  let dir: string;
  let tarball: Buffer;
  let sha256: string;
  let server: http.Server;
  let baseUrl: string;
  let requests = 0;
  let behaviour: Behaviour = 'ok';
  const savedEnv = { url: process.env.SENTIMENT_IMDB_URL, sha: process.env.SENTIMENT_IMDB_SHA256 };

  before(async () => {
    dir = await makeTempDir();
    await makeAclImdbFolder(dir);
    tarball = await readFile(await makeAclImdbTarball(dir));
    sha256 = createHash('sha256').update(tarball).digest('hex');
    server = http.createServer((req, res) => {
      requests++;
      if (behaviour === 'missing' || req.url !== '/aclImdb_v1.tar.gz') {
        res.writeHead(404).end('not found');
        return;
      }
      res.writeHead(200, { 'content-type': 'application/gzip', 'content-length': tarball.length });
      if (behaviour === 'ok') {
        res.end(tarball);
      } else {
        res.write(tarball.subarray(0, tarball.length >> 1));
        if (behaviour === 'cut') setTimeout(() => res.destroy(), 20);
      }
    });
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    baseUrl = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  });

  after(async () => {
    server.closeAllConnections();
    await new Promise((resolve) => server.close(resolve));
    await removeDir(dir);
  });

  beforeEach(() => {
    requests = 0;
    behaviour = 'ok';
    process.env.SENTIMENT_IMDB_URL = `${baseUrl}/aclImdb_v1.tar.gz`;
    process.env.SENTIMENT_IMDB_SHA256 = sha256;
  });

  afterEach(() => {
    for (const [name, value] of [
      ['SENTIMENT_IMDB_URL', savedEnv.url],
      ['SENTIMENT_IMDB_SHA256', savedEnv.sha],
    ] as const) {
      if (value === undefined) delete process.env[name];
      else process.env[name] = value;
    }
  });

  it('uses the official URL and checksum unless overridden', async () => {
    delete process.env.SENTIMENT_IMDB_URL;
    delete process.env.SENTIMENT_IMDB_SHA256;
    const desc = await describeDataset('imdb', '/nonexistent');
    expect(desc.kind).to.equal('imdb-download');
    expect(desc.inputs).to.deep.equal([]);
    expect(desc.identity).to.include({ url: IMDB_URL, sha256: IMDB_SHA256 });
    expect(IMDB_URL).to.equal('https://ai.stanford.edu/~amaas/data/sentiment/aclImdb_v1.tar.gz');
    expect(requests).to.equal(0);
  });

  it('downloads once with progress, then reuses the file', async () => {
    const downloadsDir = path.join(dir, 'downloads-ok');
    const desc = await describeDataset({ path: 'imdb' }, dir);
    expect(desc.identity).to.include({ url: `${baseUrl}/aclImdb_v1.tar.gz`, sha256 });
    expect(requests, 'describeDataset must not download').to.equal(0);

    const events: ReadProgress[] = [];
    expect(await collect(desc, { downloadsDir, onProgress: (p) => events.push(p) })).to.deep.equal(ACLIMDB_EXPECTED);
    expect(requests).to.equal(1);
    const downloads = events.filter((e) => e.phase === 'download');
    expect(downloads.length).to.be.greaterThan(0);
    expect(downloads.at(-1)).to.deep.equal({ phase: 'download', unit: 'bytes', done: tarball.length, total: tarball.length });
    expect(events.some((e) => e.phase === 'read')).to.equal(true);
    expect(await readdir(downloadsDir)).to.deep.equal(['aclImdb_v1.tar.gz']);
    expect((await readFile(path.join(downloadsDir, 'aclImdb_v1.tar.gz'))).equals(tarball)).to.equal(true);

    const again: ReadProgress[] = [];
    expect(await collect(desc, { downloadsDir, onProgress: (p) => again.push(p) })).to.deep.equal(ACLIMDB_EXPECTED);
    expect(requests).to.equal(1);
    expect(again.some((e) => e.phase === 'download')).to.equal(false);
  });

  it('downloads again over a damaged file', async () => {
    const downloadsDir = path.join(dir, 'downloads-damaged');
    await collect(await describeDataset('imdb', dir), { downloadsDir });
    await writeFile(path.join(downloadsDir, 'aclImdb_v1.tar.gz'), 'damaged');
    expect(await collect(await describeDataset('imdb', dir), { downloadsDir })).to.deep.equal(ACLIMDB_EXPECTED);
    expect(requests).to.equal(2);
  });

  it('rejects a checksum mismatch and leaves nothing behind', async () => {
    const downloadsDir = path.join(dir, 'downloads-mismatch');
    const wrong = 'ab'.repeat(32);
    process.env.SENTIMENT_IMDB_SHA256 = wrong;
    await expectUserError(collect(await describeDataset('imdb', dir), { downloadsDir }), wrong, sha256, `${baseUrl}/aclImdb_v1.tar.gz`, 'SHA-256');
    expect(await readdir(downloadsDir)).to.deep.equal([]);
  });

  it('explains how to use a local copy when the server cannot be reached', async () => {
    const closed = http.createServer();
    await new Promise<void>((resolve) => closed.listen(0, '127.0.0.1', resolve));
    const url = `http://127.0.0.1:${(closed.address() as AddressInfo).port}/aclImdb_v1.tar.gz`;
    await new Promise((resolve) => closed.close(resolve));
    process.env.SENTIMENT_IMDB_URL = url;
    const downloadsDir = path.join(dir, 'downloads-offline');
    await expectUserError(
      collect(await describeDataset('imdb', dir), { downloadsDir }),
      'DATASET',
      `could not download the imdb dataset from ${url}`,
      'ECONNREFUSED',
      'aclImdb folder',
      'aclImdb_v1.tar.gz',
      '--set DATASET=../shared/data/imdb',
    );
    expect(await readdir(downloadsDir).catch(() => [])).to.deep.equal([]);
  });

  it('reports an HTTP error status', async () => {
    behaviour = 'missing';
    await expectUserError(collect(await describeDataset('imdb', dir), { downloadsDir: path.join(dir, 'downloads-404') }), 'HTTP 404', 'DATASET');
  });

  it('reports a connection cut mid-download and removes the partial file', async () => {
    behaviour = 'cut';
    const downloadsDir = path.join(dir, 'downloads-cut');
    await expectUserError(collect(await describeDataset('imdb', dir), { downloadsDir }), 'could not download', 'local copy');
    expect(await readdir(downloadsDir)).to.deep.equal([]);
  });

  it('stops on abort, removing the partial file', async () => {
    behaviour = 'hang';
    const downloadsDir = path.join(dir, 'downloads-abort');
    const controller = new AbortController();
    let error: unknown;
    try {
      await collect(await describeDataset('imdb', dir), {
        downloadsDir,
        signal: controller.signal,
        onProgress: (p) => {
          if (p.phase === 'download' && p.done > 0) controller.abort();
        },
      });
    } catch (e) {
      error = e;
    }
    expect((error as Error | undefined)?.name).to.equal('AbortError');
    expect(await readdir(downloadsDir)).to.deep.equal([]);
  });
});
