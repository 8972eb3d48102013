import { mkdir } from 'node:fs/promises';
import path from 'node:path';
import { expect } from 'chai';
import { describeDataset } from '../../src/data/index.js';
import { expectUserError, makeTempDir, removeDir, writeFiles } from './helpers.js';

describe('data: describeDataset errors', () => {
  let dir: string;
  before(async () => {
    dir = await makeTempDir();
    await writeFiles(dir, {
      'notes.txt': 'hello',
      'train.jsonl': '{"text":"a","label":1}\n',
      'other/readme.md': 'x',
      'both/train.jsonl': '{"text":"a","label":1}\n',
      'both/train.csv': 'text,label\na,1\n',
      'imdb/train.jsonl': '{"text":"a","label":1}\n',
    });
    await mkdir(path.join(dir, 'empty'));
  });
  after(() => removeDir(dir));

  it('names DATASET, the path and the accepted layouts for a missing path', async () => {
    await expectUserError(describeDataset('missing/data', dir), 'DATASET: ', path.join('missing', 'data'), 'does not exist', 'aclImdb', 'JSONL', 'train.jsonl');
    await expectUserError(describeDataset({ path: 'missing.csv' }, dir), 'DATASET.path: ', 'missing.csv', 'does not exist');
  });

  it('rejects a file of unknown type', async () => {
    await expectUserError(describeDataset('notes.txt', dir), 'DATASET', 'notes.txt', 'not a recognised dataset file', '.jsonl');
  });

  it('rejects folders with no recognised layout, saying what they hold', async () => {
    await expectUserError(describeDataset('other', dir), 'DATASET', 'not a recognised dataset folder', 'readme.md', 'aclImdb');
    await expectUserError(describeDataset('empty', dir), 'DATASET', 'it is empty');
  });

  it('rejects a folder with two training files', async () => {
    await expectUserError(describeDataset('both', dir), 'train.csv, train.jsonl');
  });

  it('checks the options against the kind of source', async () => {
    await expectUserError(describeDataset({ path: 'train.jsonl', test: 'nope.jsonl' }, dir), 'DATASET.test', 'nope.jsonl', 'does not exist');
    await expectUserError(describeDataset({ path: 'train.jsonl', test: 'notes.txt' }, dir), 'DATASET.test', 'notes.txt');
    await expectUserError(describeDataset({ path: 'imdb', test: 'train.jsonl' }, dir), 'DATASET.test');
    await expectUserError(describeDataset({ path: 'both', test: 'train.jsonl' }, dir), 'DATASET.test', 'folder');
    await expectUserError(describeDataset({ path: 'train.jsonl', test: 'train.jsonl', test_ratio: 0.5 }, dir), 'DATASET.test_ratio');
    await expectUserError(describeDataset({ path: 'train.jsonl', delimiter: ';' }, dir), 'DATASET.delimiter', 'CSV');
    await expectUserError(describeDataset({ path: 'train.jsonl', classes: ['a', 'a'] }, dir), 'DATASET.classes');
  });

  it('takes `imdb` as the download even when a folder of that name exists', async () => {
    expect((await describeDataset('imdb', dir)).kind).to.equal('imdb-download');
    expect((await describeDataset('./imdb', dir)).kind).to.equal('files');
  });

  it('resolves relative paths against baseDir, not the current folder', async () => {
    const desc = await describeDataset({ path: 'train.jsonl', test_ratio: 0.25 }, dir);
    expect(desc.inputs).to.deep.equal([path.join(dir, 'train.jsonl')]);
    expect(desc.testRatio).to.equal(0.25);
    expect(desc.identity).to.include({ test_ratio: 0.25 });
  });
});
