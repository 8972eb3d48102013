import { expect } from 'chai';
import { createServer, type Server } from 'node:http';
import { readFile } from 'node:fs/promises';
import { existsSync } from 'node:fs';
import path from 'node:path';
import { TOKENIZER_FILES, isLocalModel, resolveModelFolder } from '../../src/core/model-files.js';
import { UserError } from '../../src/core/errors.js';
import { tinyBert } from '../fixtures/tiny-bert.js';
import { tempDir } from '../helpers.js';

/** A stand-in for the hub: serves a model folder at /<owner>/<name>/resolve/main/<file>. */
async function hub(folder: string, requests: string[]): Promise<{ server: Server; url: string }> {
  const server = createServer(async (req, res) => {
    requests.push(req.url ?? '');
    const match = /^\/acme\/tiny\/resolve\/main\/(.+)$/.exec(req.url ?? '');
    const file = match && path.join(folder, decodeURIComponent(match[1]));
    if (!file || !existsSync(file)) {
      res.writeHead(404).end('not found');
      return;
    }
    const body = await readFile(file);
    res.writeHead(200, { 'content-length': body.length }).end(body);
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const address = server.address() as { port: number };
  return { server, url: `http://127.0.0.1:${address.port}` };
}

describe('core/model-files', () => {
  const saved = process.env.HF_ENDPOINT;
  afterEach(() => {
    if (saved === undefined) delete process.env.HF_ENDPOINT;
    else process.env.HF_ENDPOINT = saved;
  });

  it('tells local folders from hub ids', async () => {
    const dir = await tempDir();
    expect(isLocalModel('./x', dir)).to.equal(true);
    expect(isLocalModel('/abs/x', dir)).to.equal(true);
    expect(isLocalModel('Xenova/bert-base-uncased', dir)).to.equal(false);
  });

  it('downloads a hub model’s tokenizer files into the cache once (HF_ENDPOINT on 127.0.0.1)', async () => {
    const requests: string[] = [];
    const { server, url } = await hub(await tinyBert(), requests);
    try {
      process.env.HF_ENDPOINT = url;
      const cacheRoot = await tempDir();
      const folder = await resolveModelFolder('acme/tiny', process.cwd(), cacheRoot, TOKENIZER_FILES);
      expect(folder.hubId).to.equal('acme/tiny');
      expect(folder.dir).to.equal(path.join(cacheRoot, 'models', 'acme', 'tiny'));
      expect(await readFile(path.join(folder.dir, 'tokenizer.json'), 'utf8')).to.equal(await readFile(path.join(await tinyBert(), 'tokenizer.json'), 'utf8'));
      expect(requests).to.include('/acme/tiny/resolve/main/tokenizer.json');
      const before = requests.length;
      await resolveModelFolder('acme/tiny', process.cwd(), cacheRoot, TOKENIZER_FILES);
      expect(requests.length).to.equal(before);
    } finally {
      server.close();
    }
  });

  it('names the missing file for an unknown hub model, and leaves no partial file', async () => {
    const requests: string[] = [];
    const { server, url } = await hub(await tempDir(), requests);
    try {
      process.env.HF_ENDPOINT = url;
      const cacheRoot = await tempDir();
      await resolveModelFolder('acme/tiny', process.cwd(), cacheRoot, TOKENIZER_FILES).then(
        () => expect.fail('should throw'),
        (e) => {
          expect(e).to.be.instanceOf(UserError);
          expect(e.message).to.match(/MODEL: could not download acme\/tiny from .*tokenizer\.json \(HTTP 404 Not Found\)/);
        },
      );
      expect(existsSync(path.join(cacheRoot, 'models', 'acme', 'tiny', 'tokenizer.json'))).to.equal(false);
    } finally {
      server.close();
    }
  });

  it('names what a local folder lacks', async () => {
    const dir = await tempDir();
    await resolveModelFolder(dir, process.cwd(), dir, TOKENIZER_FILES).then(
      () => expect.fail('should throw'),
      (e) => expect(e.message).to.match(/has no tokenizer\.json, tokenizer_config\.json/),
    );
  });
});
