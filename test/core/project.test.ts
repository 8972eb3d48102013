import { expect } from 'chai';
import { mkdir, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { defaultCacheDir, defaultRunsDir, projectRoot } from '../../src/core/project.js';
import { tempDir } from '../helpers.js';

describe('projectRoot', () => {
  it('is the nearest folder up holding .sentiment/, else package.json or .git, else the folder itself', async () => {
    const dir = await tempDir();
    const root = path.join(dir, 'proj');
    const nested = path.join(root, 'a', 'b');
    await mkdir(nested, { recursive: true });
    // Nothing marks a root (the temp folder is outside any project): the folder itself.
    expect(projectRoot(nested)).to.equal(nested);
    await writeFile(path.join(root, 'package.json'), '{}');
    expect(projectRoot(nested)).to.equal(root);
    expect(defaultCacheDir(nested)).to.equal(path.join(root, '.sentiment', 'cache'));
    expect(defaultRunsDir(nested)).to.equal(path.join(root, 'runs'));
    await mkdir(path.join(root, 'a', '.git'));
    expect(projectRoot(nested)).to.equal(path.join(root, 'a'));
    // .sentiment/ wins over a nearer package.json or .git.
    await mkdir(path.join(root, '.sentiment'));
    expect(projectRoot(nested)).to.equal(root);
  });
});
