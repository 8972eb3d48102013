import { expect } from 'chai';
import { readFile } from 'node:fs/promises';
import path from 'node:path';
// @ts-expect-error: a plain .mjs script shared with `npm run docs`
import { readmeWithReference } from '../scripts/config-reference.mjs';
import { REPO } from './helpers.js';

describe('README', () => {
  it('documents every config key as the schema defines it (npm run docs regenerates it)', async () => {
    const readme = await readFile(path.join(REPO, 'README.md'), 'utf8');
    expect(readme).to.equal(readmeWithReference(readme));
  });

  it('keeps the two commands a new user needs near the top, and .ci/run runs the same tests', async () => {
    const readme = await readFile(path.join(REPO, 'README.md'), 'utf8');
    const top = readme.split('\n').slice(0, 40).join('\n');
    expect(top).to.contain('npx sentiment run experiments/quickstart.yaml');
    expect(top).to.contain('npm test');
    expect(await readFile(path.join(REPO, '.ci/run'), 'utf8')).to.match(/^npm test$/m);
  });
});
