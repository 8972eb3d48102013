import { expect } from 'chai';
import path from 'node:path';
import { loadTokenizer } from '../../src/encoder/tokenizer.js';
import { UserError } from '../../src/core/errors.js';
import { tinyBert, tinyBertVocab } from '../fixtures/tiny-bert.js';
import { requireShared } from '../helpers.js';

describe('stages/tokenize', () => {
  const vocab = tinyBertVocab();
  const id = (t: string) => vocab.indexOf(t);

  it('wraps a text in [CLS] … [SEP] with the model’s own tokenizer', async () => {
    const tok = await loadTokenizer(await tinyBert(), 64);
    expect(Array.from(tok.encode('I like you!'))).to.deep.equal([id('[CLS]'), id('i'), id('like'), id('you'), id('!'), id('[SEP]')]);
  });

  it('keeps the head of long texts, MAX_LENGTH counting the special tokens', async () => {
    const tok = await loadTokenizer(await tinyBert(), 5);
    expect(Array.from(tok.encode('I like you very much!'))).to.deep.equal([id('[CLS]'), id('i'), id('like'), id('you'), id('[SEP]')]);
    expect(Array.from(tok.encode('good'))).to.deep.equal([id('[CLS]'), id('good'), id('[SEP]')]);
  });

  it('refuses MAX_LENGTH beyond the model’s positions', async () => {
    await loadTokenizer(await tinyBert(), 4096).then(
      () => expect.fail('should throw'),
      (e) => expect(e).to.be.instanceOf(UserError).and.have.property('message').match(/MAX_LENGTH: 4096 is longer than this model accepts \(128 tokens/),
    );
  });

  it('gives bert-base-uncased’s ids for "I like you!" (real tokenizer from ../shared)', async function () {
    const dir = requireShared.call(this, 'tokenizers/bert-base-uncased');
    const tok = await loadTokenizer(path.resolve(dir), 512);
    expect(Array.from(tok.encode('I like you!'))).to.deep.equal([101, 1045, 2066, 2017, 999, 102]);
    const long = tok.encode('word '.repeat(1000));
    expect(long.length).to.equal(512);
    expect([long[0], long[511]]).to.deep.equal([101, 102]);
  });
});

describe('stages/tokenize worker pool', () => {
  it('gives the same ids, in order, as tokenizing in-process', async () => {
    const { startWorkerPool } = await import('../../src/encoder/tokenizer.js');
    const { tokenizeChunk } = await import('../../src/encoder/tokenize-worker.js');
    const dir = await tinyBert();
    const texts = Array.from({ length: 301 }, (_, i) => `Review ${i}: the movie was ${i % 3 === 0 ? 'not ' : ''}good, ${'very '.repeat(i % 7)}good!`);
    const tok = await loadTokenizer(dir, 12);
    const expected = tokenizeChunk((t) => tok.encode(t), texts);
    const pool = await startWorkerPool(dir, 12, 3);
    try {
      const got = await pool.tokenize(texts);
      expect(Array.from(got.offsets)).to.deep.equal(Array.from(expected.offsets));
      expect(Array.from(got.flat)).to.deep.equal(Array.from(expected.flat));
      const again = await pool.tokenize(texts.slice(0, 2));
      expect(again.offsets.length).to.equal(3);
    } finally {
      await pool.close();
    }
  });
});
