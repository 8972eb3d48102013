import path from 'node:path';
import { expect } from 'chai';
import { describeDataset, mapLabel, type FilesDescription } from '../../src/data/index.js';
import { collect, expectUserError, makeTempDir, removeDir, writeFiles } from './helpers.js';

const jsonl = (...rows: unknown[]) => rows.map((r) => (typeof r === 'string' ? r : JSON.stringify(r))).join('\n') + '\n';

describe('data: JSONL and CSV files', () => {
  let dir: string;
  beforeEach(async () => {
    dir = await makeTempDir();
  });
  afterEach(() => removeDir(dir));

  it('reads JSONL with the defaults (text, label 1 = positive), ids from line numbers', async () => {
    await writeFiles(dir, {
      'reviews.jsonl': '\uFEFF' + jsonl({ id: 7, text: 'good', label: 1 }, { id: 7, text: 'bad', label: 0 }, '', { text: 'ok', label: 1, extra: [1] }),
    });
    const desc = await describeDataset('reviews.jsonl', dir);
    expect(desc.kind).to.equal('files');
    expect(desc.hasTest).to.equal(false);
    expect(desc.testRatio).to.equal(0.2);
    expect(desc.classes).to.deep.equal(['negative', 'positive']);
    expect(desc.inputs).to.deep.equal([path.join(dir, 'reviews.jsonl')]);
    expect(await collect(desc)).to.deep.equal([
      { id: 'train:1', text: 'good', classIndex: 1, source: 'train' },
      { id: 'train:2', text: 'bad', classIndex: 0, source: 'train' },
      { id: 'train:4', text: 'ok', classIndex: 1, source: 'train' },
    ]);
  });

  it('describes the same dataset whether or not the schema defaults were filled in', async () => {
    await writeFiles(dir, { 'train.jsonl': jsonl({ text: 'a', label: 1 }), 'test.jsonl': jsonl({ text: 'b', label: 0 }) });
    const plain = await describeDataset(dir, '/');
    const filled = await describeDataset(
      { path: dir, test_ratio: 0.2, text_column: 'text', label_column: 'label', classes: ['negative', 'positive'] },
      '/',
    );
    expect(filled.identity).to.deep.equal(plain.identity);
    expect(filled.hasTest).to.equal(true);
  });

  it('uses a configured id column, falling back to the line number for rows without one', async () => {
    await writeFiles(dir, {
      'd.jsonl': jsonl({ rid: 'a', body: 'x', y: 'pos' }, { body: 'y', y: 'neg' }, { rid: 12, body: 'z', y: 'pos' }),
    });
    const desc = await describeDataset(
      { path: 'd.jsonl', id_column: 'rid', text_column: 'body', label_column: 'y', classes: ['neg', 'pos'] },
      dir,
    );
    expect(desc.identity).to.include({ id_column: 'rid', text_column: 'body', label_column: 'y' });
    expect((await collect(desc)).map((e) => [e.id, e.classIndex])).to.deep.equal([
      ['train:a', 1],
      ['train:2', 0],
      ['train:12', 1],
    ]);
  });

  it('maps labels: 0/1, booleans, numeric strings, class names (any case), thresholds', () => {
    const classes: [string, string] = ['not_hate', 'hate'];
    expect([0, 1, false, true, '1.0', ' 0 ', 'hate', 'NOT_HATE', 'true'].map((l) => mapLabel(l, classes, null))).to.deep.equal([
      0, 1, 0, 1, 1, 0, 1, 0, 1,
    ]);
    expect([2, 0.5, 'maybe', '', null, Number.NaN].map((l) => mapLabel(l, classes, null))).to.deep.equal(
      new Array(6).fill(undefined),
    );
    expect([0.49, 0.5, '0.6666', 3, 'hate'].map((l) => mapLabel(l, classes, 0.5))).to.deep.equal([0, 1, 1, 1, 1]);
  });

  it('reads semicolon CSV with custom columns and a threshold (Ethos layout), quoted fields and their line numbers', async () => {
    await writeFiles(dir, {
      'ethos.csv': [
        'comment;isHate',
        'You are awful;1.0',
        '"Quoted; with ""semicolon""";0.3333333333333333',
        '"Two',
        'lines";0.6666666666666666',
        '',
        'Nice day;0.0',
      ].join('\r\n'),
    });
    const desc = (await describeDataset(
      { path: 'ethos.csv', text_column: 'comment', label_column: 'isHate', threshold: 0.5, classes: ['not_hate', 'hate'] },
      dir,
    )) as FilesDescription;
    expect(desc.files[0]!.delimiter).to.equal(';');
    expect(desc.identity).to.include({ threshold: 0.5 });
    expect(desc.classes).to.deep.equal(['not_hate', 'hate']);
    expect(await collect(desc)).to.deep.equal([
      { id: 'train:2', text: 'You are awful', classIndex: 1, source: 'train' },
      { id: 'train:3', text: 'Quoted; with "semicolon"', classIndex: 0, source: 'train' },
      { id: 'train:4', text: 'Two\r\nlines', classIndex: 1, source: 'train' },
      { id: 'train:7', text: 'Nice day', classIndex: 0, source: 'train' },
    ]);
  });

  it('detects comma and tab delimiters, and takes an explicit one', async () => {
    await writeFiles(dir, {
      'comma.csv': 'text,label\n"a; b",1\n',
      'tabs.tsv': 'label\ttext\n0\tx, y; z\n',
      'pipe.csv': 'text|label\nq|1\n',
    });
    expect((await collect(await describeDataset('comma.csv', dir)))[0]).to.include({ text: 'a; b', classIndex: 1 });
    expect((await collect(await describeDataset('tabs.tsv', dir)))[0]).to.include({ text: 'x, y; z', classIndex: 0 });
    expect((await collect(await describeDataset({ path: 'pipe.csv', delimiter: '|' }, dir)))[0]).to.include({ text: 'q' });
  });

  it('reads a folder holding train and test files of different formats', async () => {
    await writeFiles(dir, {
      'data/train.jsonl': jsonl({ text: 'a', label: 1 }, { text: 'b', label: 0 }),
      'data/test.csv': 'text,label\nc,positive\nd,negative\n',
      'data/README.md': 'ignored',
    });
    const desc = await describeDataset('data', dir);
    expect(desc.hasTest).to.equal(true);
    expect(desc.testRatio).to.equal(null);
    expect(desc.inputs).to.deep.equal([path.join(dir, 'data/train.jsonl'), path.join(dir, 'data/test.csv')]);
    expect(JSON.stringify(desc.identity)).not.to.include(dir);
    expect(await collect(desc)).to.deep.equal([
      { id: 'train:1', text: 'a', classIndex: 1, source: 'train' },
      { id: 'train:2', text: 'b', classIndex: 0, source: 'train' },
      { id: 'test:2', text: 'c', classIndex: 1, source: 'test' },
      { id: 'test:3', text: 'd', classIndex: 0, source: 'test' },
    ]);
  });

  it('takes a separate test file from DATASET.test', async () => {
    await writeFiles(dir, { 'tr.jsonl': jsonl({ text: 'a', label: 1 }), 'sub/te.jsonl': jsonl({ text: 'b', label: 0 }) });
    const desc = await describeDataset({ path: 'tr.jsonl', test: 'sub/te.jsonl' }, dir);
    expect(desc.hasTest).to.equal(true);
    expect((await collect(desc)).map((e) => e.id)).to.deep.equal(['train:1', 'test:1']);
  });

  it('reports read progress in bytes', async () => {
    await writeFiles(dir, { 'a.jsonl': jsonl({ text: 'a', label: 1 }, { text: 'b', label: 0 }) });
    const events: { done: number; total?: number; unit: string }[] = [];
    await collect(await describeDataset('a.jsonl', dir), { onProgress: (p) => events.push(p) });
    const size = jsonl({ text: 'a', label: 1 }, { text: 'b', label: 0 }).length;
    expect(events.at(-1)).to.deep.include({ phase: 'read', done: size, total: size, unit: 'bytes' });
  });

  describe('bad rows are user errors naming the file and line', () => {
    const cases: [string, string, Record<string, unknown>, (string | RegExp)[]][] = [
      ['invalid JSON', jsonl({ text: 'a', label: 1 }, '{"text": "b", label: 0}'), {}, ['bad.jsonl:2:', 'invalid JSON']],
      ['a row that is not an object', jsonl({ text: 'a', label: 1 }, '[1, 2]'), {}, ['bad.jsonl:2:', 'JSON object']],
      ['a missing text field', jsonl({ text: 'a', label: 1 }, { label: 0 }), {}, ['bad.jsonl:2:', 'no "text" field', 'DATASET.text_column']],
      ['a missing label field', jsonl({ text: 'a', label: 1 }, '', { text: 'c' }), {}, ['bad.jsonl:3:', '"label"']],
      ['an unmappable label', jsonl({ text: 'a', label: 1 }, { text: 'b', label: 'neutral' }), {}, ['bad.jsonl:2:', '"neutral"', 'DATASET.classes']],
      ['a label out of 0/1', jsonl({ text: 'a', label: 5 }), {}, ['bad.jsonl:1:', 'label 5', 'DATASET.threshold']],
      ['empty text', jsonl({ text: 'a', label: 1 }, { text: '  ', label: 1 }), {}, ['bad.jsonl:2:', 'empty text']],
      ['text that is not a string', jsonl({ text: 3, label: 1 }), {}, ['bad.jsonl:1:', 'expected a string']],
      ['a duplicate id', jsonl({ k: 'x', text: 'a', label: 1 }, { k: 'y', text: 'b', label: 1 }, { k: 'x', text: 'c', label: 0 }), { id_column: 'k' }, ['bad.jsonl:3:', 'duplicate id "x"', 'line 1']],
    ];
    for (const [what, content, options, patterns] of cases) {
      it(`JSONL: ${what}`, async () => {
        await writeFiles(dir, { 'bad.jsonl': content });
        await expectUserError(collect(await describeDataset({ path: 'bad.jsonl', ...options }, dir)), ...patterns);
      });
    }

    const csvCases: [string, string, Record<string, unknown>, (string | RegExp)[]][] = [
      ['a short row', 'text,label\na,1\nb\n', {}, ['bad.csv:3:', 'row has 1 field, header has 2']],
      ['an unclosed quote', 'text,label\na,1\n"b,0\nc,1\n', {}, ['bad.csv:3:1: unclosed quote (the record starts here)']],
      ['an empty text', 'text,label\na,1\n"",0\n', {}, ['bad.csv:3:', 'empty text']],
      ['an empty label', 'text,label\na,1\nb,\n', {}, ['bad.csv:3:', '"label"']],
      ['an unmappable label', 'text;label\na;1\n"multi\nline";yes\n', {}, ['bad.csv:3:', '"yes"']],
      ['a duplicate id', 'n,text,label\n1,a,1\n2,b,0\n1,c,0\n', { id_column: 'n' }, ['bad.csv:4:', 'duplicate id "1"']],
    ];
    for (const [what, content, options, patterns] of csvCases) {
      it(`CSV: ${what}`, async () => {
        await writeFiles(dir, { 'bad.csv': content });
        await expectUserError(collect(await describeDataset({ path: 'bad.csv', ...options }, dir)), ...patterns);
      });
    }

    it('CSV: a header without the configured columns fails already in describeDataset', async () => {
      await writeFiles(dir, { 'h.csv': 'comment;isHate\nx;1\n' });
      await expectUserError(describeDataset('h.csv', dir), 'h.csv:1:', 'no column "text"', '"comment", "isHate"', 'DATASET.text_column');
      await expectUserError(
        describeDataset({ path: 'h.csv', text_column: 'comment', label_column: 'isHate', id_column: 'uid' }, dir),
        'no column "uid"',
      );
    });

    it('JSONL: a first row without the configured fields fails already in describeDataset', async () => {
      await writeFiles(dir, { 'f.jsonl': jsonl({ review: 'x', sentiment: 1 }) });
      await expectUserError(describeDataset('f.jsonl', dir), 'f.jsonl:1:', 'no field "text"', '"review", "sentiment"');
    });

    it('an empty file', async () => {
      await writeFiles(dir, { 'e.jsonl': '', 'blank.jsonl': '\n\n' });
      await expectUserError(describeDataset('e.jsonl', dir), 'e.jsonl', 'empty');
      await expectUserError(collect(await describeDataset('blank.jsonl', dir)), 'blank.jsonl', 'no rows');
    });
  });

  describe('line breaks, BOM, bytes that are not UTF-8, and unclosed quotes', () => {
    it('JSONL lines end at \\n only: a \\r between JSON tokens is whitespace, CRLF is one break', async () => {
      await writeFiles(dir, { 'r.jsonl': '{"text":"a",\r"label":1}\r\n{"text":"b","label":0}\n' });
      const rows = await collect(await describeDataset('r.jsonl', dir));
      expect(rows.map((r) => [r.id, r.text])).to.deep.equal([
        ['train:1', 'a'],
        ['train:2', 'b'],
      ]);
    });

    it('reports rows with bytes that are not UTF-8 once each, with file and line (JSONL and CSV)', async () => {
      const { writeFile } = await import('node:fs/promises');
      await writeFile(path.join(dir, 'l.jsonl'), Buffer.from('{"text":"ok","label":1}\n{"text":"caf\xe9","label":0}\n{"text":"\xff\xfe","label":1}\n', 'latin1'));
      const seen: string[] = [];
      const rows = await collect(await describeDataset('l.jsonl', dir), { onNonUtf8: (w) => seen.push(`${path.basename(w.file)}:${w.line}`) });
      expect(rows.map((r) => r.text)).to.deep.equal(['ok', 'caf\uFFFD', '\uFFFD\uFFFD']);
      expect(seen).to.deep.equal(['l.jsonl:2', 'l.jsonl:3']);
      seen.length = 0;
      // The BOM as UTF-8 bytes, then latin-1 text.
      await writeFile(path.join(dir, 'l.csv'), Buffer.concat([Buffer.from([0xef, 0xbb, 0xbf]), Buffer.from('text,label\r\nok,1\r\n"multi\r\nline caf\xe9",0\r\nfine,1\r\n', 'latin1')]));
      const csvRows = await collect(await describeDataset('l.csv', dir), { onNonUtf8: (w) => seen.push(`${path.basename(w.file)}:${w.line}`) });
      expect(csvRows.map((r) => r.id)).to.deep.equal(['train:2', 'train:3', 'train:5']);
      expect(seen).to.deep.equal(['l.csv:3']);
    });

    it('CSV: an unclosed quote names file:line:col where its record began, not the end of the file', async () => {
      await writeFiles(dir, { 'data.csv': 'text,label\nfirst,"1\nsecond,0\nthird,1\n' });
      const e = await expectUserError(collect(await describeDataset('data.csv', dir)), 'data.csv:2:7: unclosed quote (the record starts here)');
      expect(e.message).to.not.match(/:5:|line 5/);
      await writeFiles(dir, { 'later.csv': 'text,label\n"two\nlines",1\n"x\ny",1,"open\nmore\n' });
      await expectUserError(collect(await describeDataset('later.csv', dir)), 'later.csv:4: unclosed quote at line 5, column 6 (the record starts here)');
    });

    it('a binary file named .csv is refused by name', async () => {
      const { writeFile } = await import('node:fs/promises');
      await writeFile(path.join(dir, 'bin.csv'), Buffer.from([0x7f, 0x45, 0x4c, 0x46, 0, 0, 0, 0x0a, 0x0d, 0x2c, 0x2c, 0x0d, 0x0a]));
      await expectUserError(describeDataset('bin.csv', dir), 'bin.csv: this is a binary file');
    });
  });
});
