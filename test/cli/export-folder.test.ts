import { expect } from 'chai';
import { mkdir, readFile } from 'node:fs/promises';
import path from 'node:path';
import { sentiment, tempDir, writeText } from '../helpers.js';

describe('export --out', function () {
  this.timeout(120_000);
  it('refuses a folder an earlier export wrote without --force, before loading anything', async () => {
    const dir = await tempDir();
    const out = path.join(dir, 'model');
    await mkdir(out);
    const manifest = await writeText(path.join(out, 'sentiment-model.json'), '{"format":1}');
    const env = { SENTIMENT_CACHE_DIR: path.join(dir, 'cache') };
    const r = await sentiment(['export', '--config', 'experiments/quickstart.yaml', '--out', out], env);
    expect(r.code).to.equal(1);
    expect(r.stderr).to.contain(`Error: --out ${out}: holds a model exported earlier; give --force to replace it, or a new folder`);
    expect(r.stderr).to.not.match(/\n\s+at /);
    // With --force the folder is accepted; here the cache holds no trained head, so that is what it says.
    const forced = await sentiment(['export', '--config', 'experiments/quickstart.yaml', '--out', out, '--force'], env);
    expect(forced.code).to.equal(1);
    expect(forced.stderr).to.not.contain('holds a model exported earlier');
    expect(await readFile(manifest, 'utf8')).to.equal('{"format":1}');
  });
});
