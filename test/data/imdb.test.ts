import { readFile, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { expect } from 'chai';
import * as tar from 'tar';
import { describeDataset, readExamples } from '../../src/data/index.js';
import {
  ACLIMDB_EXPECTED,
  collect,
  expectUserError,
  makeAclImdbFolder,
  makeAclImdbTarball,
  makeTempDir,
  removeDir,
  writeFiles,
} from './helpers.js';

describe('data: aclImdb folder and tarball', () => {
  let dir: string;
  let folder: string;
  let tarball: string;

  before(async () => {
    dir = await makeTempDir();
    folder = await makeAclImdbFolder(dir);
    tarball = await makeAclImdbTarball(dir);
  });
  after(() => removeDir(dir));

  it('reads an aclImdb folder in split, class, numeric id order', async () => {
    const desc = await describeDataset(folder, '/');
    expect(desc.kind).to.equal('aclimdb-folder');
    expect(desc.classes).to.deep.equal(['negative', 'positive']);
    expect(desc.hasTest).to.equal(true);
    expect(desc.inputs).to.have.length(ACLIMDB_EXPECTED.length);
    expect(desc.inputs.every((p) => path.isAbsolute(p))).to.equal(true);
    expect(JSON.stringify(desc.identity)).not.to.include(dir);
    expect(await collect(desc)).to.deep.equal(ACLIMDB_EXPECTED);
  });

  it('accepts the folder that contains aclImdb/, with a relative path', async () => {
    const desc = await describeDataset('.', dir);
    expect(desc.kind).to.equal('aclimdb-folder');
    expect(await collect(desc)).to.deep.equal(ACLIMDB_EXPECTED);
  });

  it('reads the tarball without extracting it, giving the same examples', async () => {
    const desc = await describeDataset({ path: 'aclImdb_v1.tar.gz' }, dir);
    expect(desc.kind).to.equal('aclimdb-tar');
    expect(desc.inputs).to.deep.equal([tarball]);
    const progress: number[] = [];
    const examples = await collect(desc, { onProgress: (p) => progress.push(p.done) });
    expect(examples).to.deep.equal(ACLIMDB_EXPECTED);
    expect(progress.at(-1)).to.be.greaterThan(0);
  });

  it('reads an uncompressed tar too', async () => {
    const file = path.join(dir, 'plain.tar');
    await tar.c({ file, cwd: dir, portable: true }, ['aclImdb']);
    expect(await collect(await describeDataset(file, '/'))).to.deep.equal(ACLIMDB_EXPECTED);
  });

  it('lets DATASET.classes rename the classes', async () => {
    const desc = await describeDataset({ path: folder, classes: ['neg', 'pos'] }, '/');
    expect(desc.classes).to.deep.equal(['neg', 'pos']);
  });

  it('rejects JSONL/CSV options on an aclImdb source', async () => {
    await expectUserError(describeDataset({ path: folder, text_column: 'review' }, '/'), 'DATASET.text_column');
    await expectUserError(describeDataset({ path: 'imdb', threshold: 0.5 }, '/'), 'DATASET.threshold');
  });

  it('stops early without error when the consumer breaks', async () => {
    const desc = await describeDataset(folder, '/');
    for await (const ex of readExamples(desc, { downloadsDir: dir })) {
      expect(ex.id).to.equal('train/neg/0_1');
      break;
    }
  });

  it('names what is missing in an incomplete aclImdb folder', async () => {
    const partial = path.join(dir, 'partial');
    await writeFiles(partial, { 'train/pos/0_9.txt': 'x', 'train/neg/0_1.txt': 'y', 'test/pos/0_9.txt': 'z' });
    await expectUserError(describeDataset(partial, '/'), 'DATASET', 'test/neg', 'aclImdb layout');
  });

  it('rejects a tarball that has no aclImdb reviews', async () => {
    const other = path.join(dir, 'other');
    await writeFiles(other, { 'notes.txt': 'hello' });
    const file = path.join(dir, 'other.tar.gz');
    await tar.c({ gzip: true, file, cwd: other }, ['notes.txt']);
    const desc = await describeDataset(file, '/');
    await expectUserError(collect(desc), 'not an aclImdb archive', 'train/neg');
  });

  it('rejects a file named .tar.gz that is not an archive', async () => {
    const file = path.join(dir, 'fake.tar.gz');
    await writeFile(file, 'not a tarball at all');
    await expectUserError(describeDataset(file, '/'), 'DATASET', 'fake.tar.gz');
  });

  it('reports a truncated tarball as a user error', async () => {
    const bytes = await readFile(tarball);
    const file = path.join(dir, 'truncated.tar.gz');
    await writeFile(file, bytes.subarray(0, Math.floor(bytes.length / 2)));
    await expectUserError(collect(await describeDataset(file, '/')), 'truncated.tar.gz');
  });
});
