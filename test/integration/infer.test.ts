import { expect } from 'chai';
import { existsSync } from 'node:fs';
import { mkdir, readFile, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { readArrowBatches } from '../../src/core/arrow.js';
import { trainedExperiment } from '../fixtures/trained.js';
import { REPO, sentiment, tempDir, writeText, type CliResult, NO_TRACE } from '../helpers.js';

const NEGATIVE = 'the movie was terrible. a waste of time.';

/** The CLI with `input` on stdin. */
async function sentimentWithStdin(args: string[], env: Record<string, string>, input: string): Promise<CliResult> {
  const { spawn } = await import('node:child_process');
  return new Promise((resolve) => {
    const child = spawn(process.execPath, [path.join(REPO, 'bin/run.js'), ...args], { cwd: REPO, env: { ...process.env, CI: '1', ...env } });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (c) => (stdout += c));
    child.stderr.on('data', (c) => (stderr += c));
    child.on('close', (code) => resolve({ code, stdout, stderr }));
    child.stdin.end(input);
  });
}

const jsonRows = (stdout: string) => stdout.trim().split('\n').filter(Boolean).map((l) => JSON.parse(l) as { line: number; text: string; probability: number | null; error?: string });
const POSITIVE = 'the movie was great. highly recommend.';

describe('sentiment infer, export, and run with TRAIN: false', function () {
  this.timeout(600_000);
  let dir: string;
  let file: string;
  let env: Record<string, string>;

  before(async () => {
    dir = await tempDir();
    ({ file, env } = await trainedExperiment(dir, { train: 600, test: 100, settings: 'MODEL: ./model\nDATASET: ./reviews\nMAX_LENGTH: 48\nN_EPOCHS: 10\nLEARNING_RATE: 0.005\nBATCH_SIZE: 32\nHIDDEN_DIM: 16\nBACKEND: onnxruntime\n' }));
  });

  it('finds the trained head through the cache and ranks a negative text above a positive one', async () => {
    const neg = await sentiment(['infer', '--config', file, '--text', NEGATIVE, '--json'], env);
    const pos = await sentiment(['infer', '--config', file, '--text', POSITIVE, '--json'], env);
    expect(neg.code, neg.stderr).to.equal(0);
    const [n, p] = [JSON.parse(neg.stdout), JSON.parse(pos.stdout)];
    expect(Object.keys(n)).to.deep.equal(['text', 'probability', 'label']);
    expect(n.text).to.equal(NEGATIVE);
    expect(n.probability).to.be.above(p.probability);
    expect(n.label).to.equal('negative');
    expect(p.label).to.equal('positive');
  });

  it('exits 1 for a config that was never trained, saying which command trains it', async () => {
    const r = await sentiment(['infer', '--config', file, '--set', 'HIDDEN_DIM=3', '--text', 'x'], env);
    expect(r.code).to.equal(1);
    expect(r.stderr).to.contain(`sentiment run ${file} --set HIDDEN_DIM=3`);
    expect(r.stderr).to.not.match(/\n\s+at /);
  });

  it('exits 2 without exactly one of --text and --file', async () => {
    expect((await sentiment(['infer', '--config', file], env)).code).to.equal(2);
    expect((await sentiment(['infer', '--config', file, '--text', 'a', '--file', 'b.txt'], env)).code).to.equal(2);
  });

  it('--file keeps one output row per input row, marking rows without text', async () => {
    const txt = await writeText(path.join(dir, 'in.txt'), `${POSITIVE}\n\n${NEGATIVE}\n`);
    const r = await sentiment(['infer', '--config', file, '--file', txt], env);
    expect(r.code, r.stderr).to.equal(0);
    const rows = r.stdout.trim().split('\n').map((l) => JSON.parse(l));
    expect(rows.map((x) => x.line)).to.deep.equal([1, 2, 3]);
    expect(rows[1]).to.include({ probability: null, error: 'empty line' });
    expect(rows[2].probability).to.be.above(rows[0].probability);
    expect(r.stderr).to.match(/3 rows .*1 without usable text/);
  });

  it('--file reads CSV and JSONL columns and writes CSV and Arrow', async () => {
    const csv = await writeText(path.join(dir, 'in.csv'), `id,review\n1,"${POSITIVE}"\n2,"${NEGATIVE}"\n`);
    const outArrow = path.join(dir, 'out.arrow');
    expect((await sentiment(['infer', '--config', file, '--file', csv, '--text-column', 'review', '--out', outArrow], env)).code).to.equal(0);
    const texts: string[] = [];
    for await (const b of readArrowBatches(outArrow)) for (let i = 0; i < b.numRows; i++) texts.push(b.getChild('text')!.get(i) as string);
    expect(texts).to.deep.equal([POSITIVE, NEGATIVE]);
    const jsonl = await writeText(path.join(dir, 'in.jsonl'), `{"body":"${POSITIVE}"}\nnot json\n`);
    const outCsv = path.join(dir, 'out.csv');
    expect((await sentiment(['infer', '--config', file, '--file', jsonl, '--text-column', 'body', '--out', outCsv], env)).code).to.equal(0);
    const lines = (await readFile(outCsv, 'utf8')).trim().split('\n');
    expect(lines[0]).to.equal('line,id,text,probability,predicted,error');
    expect(lines).to.have.length(3);
    expect(lines[2]).to.match(/^2,,,,,"invalid JSON/);
    const missing = await sentiment(['infer', '--config', file, '--file', csv], env);
    expect(missing.code).to.equal(1);
    expect(missing.stderr).to.contain('no column "text" (columns: id, review)');
  });

  it('export writes a self-contained folder that infer --model uses without the cache', async () => {
    const out = path.join(dir, 'exported');
    const r = await sentiment(['export', '--config', file, '--out', out], env);
    expect(r.code, r.stderr).to.equal(0);
    const viaConfig = JSON.parse((await sentiment(['infer', '--config', file, '--text', NEGATIVE, '--json'], env)).stdout);
    const elsewhere = { SENTIMENT_CACHE_DIR: path.join(dir, 'empty-cache') };
    const viaModel = await sentiment(['infer', '--model', out, '--text', NEGATIVE, '--json'], elsewhere);
    expect(viaModel.code, viaModel.stderr).to.equal(0);
    expect(JSON.parse(viaModel.stdout)).to.deep.equal(viaConfig);

    // A second export to the same folder needs --force, which replaces what the first one wrote.
    const again = await sentiment(['export', '--config', file, '--out', out], env);
    expect(again.code).to.equal(1);
    expect(again.stderr).to.contain(`Error: --out ${out}: holds a model exported earlier; give --force to replace it`);
    await writeFile(path.join(out, 'encoder', 'stale.bin'), 'from another encoder');
    const forced = await sentiment(['export', '--config', file, '--out', out, '--force', '--json'], env);
    expect(forced.code, forced.stderr).to.equal(0);
    expect(JSON.parse(forced.stdout).files).to.include('head.safetensors');
    expect(existsSync(path.join(out, 'encoder', 'stale.bin'))).to.equal(false);
    const replaced = await sentiment(['infer', '--model', out, '--text', NEGATIVE, '--json'], elsewhere);
    expect(JSON.parse(replaced.stdout)).to.deep.equal(viaConfig);
  });

  it('run with TRAIN: false predicts TEXT with the trained head, and refuses an untrained config', async () => {
    const r = await sentiment(['run', file, '--set', 'TRAIN=false', '--set', `TEXT=${NEGATIVE}`, '--json'], env);
    expect(r.code, r.stderr).to.equal(0);
    const doc = JSON.parse(r.stdout);
    expect(doc.stages.map((s: { name: string }) => s.name)).to.not.include('evaluate');
    expect(doc.stages.find((s: { name: string }) => s.name === 'train').cached).to.equal(true);
    expect(doc.prediction).to.include({ text: NEGATIVE, label: 'negative' });
    const untrained = await sentiment(['run', file, '--set', 'TRAIN=false', '--set', 'HIDDEN_DIM=3'], env);
    expect(untrained.code).to.equal(1);
    expect(untrained.stderr).to.contain('TRAIN is false, but this config has no trained head yet');
  });

  describe('--file: exactly one output row per input record, and clear errors', () => {
    it('.txt splits on LF only: a CR inside a line is text, a trailing CR is dropped; a BOM is skipped', async () => {
      const txt = await writeText(path.join(dir, 'cr.txt'), `\ufeff${POSITIVE}\rstill line one\r\n${NEGATIVE}\r\nthird\n`);
      const r = await sentiment(['infer', '--config', file, '--file', txt], env);
      expect(r.code, r.stderr).to.equal(0);
      const rows = jsonRows(r.stdout);
      expect(rows.map((x) => x.line)).to.deep.equal([1, 2, 3]);
      expect(rows.map((x) => x.text)).to.deep.equal([`${POSITIVE}\rstill line one`, NEGATIVE, 'third']);
      expect(rows.every((x) => typeof x.probability === 'number')).to.equal(true);
    });

    it('a BOM does not spoil the first .jsonl or .csv row', async () => {
      const jsonl = await writeText(path.join(dir, 'bom.jsonl'), `\ufeff{"text":"${POSITIVE}"}\n{"text":"${NEGATIVE}"}\n`);
      const j = jsonRows((await sentiment(['infer', '--config', file, '--file', jsonl], env)).stdout);
      expect(j.map((x) => [x.line, x.text, x.error])).to.deep.equal([
        [1, POSITIVE, undefined],
        [2, NEGATIVE, undefined],
      ]);
      const csv = await writeText(path.join(dir, 'bom.csv'), `\ufefftext,id\r\n"${POSITIVE}",1\r\n"${NEGATIVE}",2\r\n`);
      const c = jsonRows((await sentiment(['infer', '--config', file, '--file', csv], env)).stdout);
      expect(c.map((x) => [x.line, x.text, x.error])).to.deep.equal([
        [2, POSITIVE, undefined],
        [3, NEGATIVE, undefined],
      ]);
    });

    it('CSV rows with more or fewer fields than the header get an error row', async () => {
      const csv = await writeText(path.join(dir, 'fields.csv'), `id,text,x\n1,${POSITIVE},a\n2,bad,b,extra\n3,short\n4,"multi\nline",c\n`);
      const r = await sentiment(['infer', '--config', file, '--file', csv], env);
      expect(r.code, r.stderr).to.equal(0);
      const rows = jsonRows(r.stdout);
      expect(rows.map((x) => [x.line, x.error ?? null])).to.deep.equal([
        [2, null],
        [3, 'row has 4 fields, header has 3'],
        [4, 'row has 2 fields, header has 3'],
        [5, null],
      ]);
      expect(rows[3]!.text).to.equal('multi\nline');
    });

    it('an unclosed quote exits 1 naming the line its record began, after writing every row before it', async () => {
      const good = Array.from({ length: 599 }, (_, i) => `${i + 1},${i % 2 ? POSITIVE : NEGATIVE}`);
      const csv = await writeText(path.join(dir, 'reviews.csv'), ['id,text', ...good, '600,"never closed', '601,more', '602,and more'].join('\n') + '\n');
      const out = path.join(dir, 'partial.csv');
      const r = await sentiment(['infer', '--config', file, '--file', csv, '--out', out], env);
      expect(r.code).to.equal(1);
      expect(r.stderr).to.contain(`Error: ${csv}:601:5: unclosed quote (the record starts here)`);
      expect(r.stderr).to.not.match(NO_TRACE);
      const { parse } = await import('csv-parse/sync');
      const rows = parse(await readFile(out, 'utf8'), { columns: true }) as { line: string; probability: string }[];
      expect(rows).to.have.length(599);
      expect(rows.map((x) => Number(x.line))).to.deep.equal(Array.from({ length: 599 }, (_, i) => i + 2));
      expect(rows.every((x) => x.probability !== '')).to.equal(true);
      // The same on stdout as JSON lines.
      const lines = await sentiment(['infer', '--config', file, '--file', csv], env);
      expect(lines.code).to.equal(1);
      expect(jsonRows(lines.stdout).map((x) => x.line)).to.deep.equal(Array.from({ length: 599 }, (_, i) => i + 2));
    });

    it('predicts rows with bytes that are not UTF-8 and warns once with the count and the first line', async () => {
      const txt = path.join(dir, 'latin1.txt');
      await writeFile(txt, Buffer.from(`${POSITIVE}\ncaf\xe9 ${NEGATIVE}\nfine\n\xff\xfe\n`, 'latin1'));
      const r = await sentiment(['infer', '--config', file, '--file', txt], env);
      expect(r.code, r.stderr).to.equal(0);
      const rows = jsonRows(r.stdout);
      expect(rows.map((x) => x.line)).to.deep.equal([1, 2, 3, 4]);
      expect(rows[1]!.text).to.equal(`caf\uFFFD ${NEGATIVE}`);
      expect(rows.every((x) => x.error === undefined)).to.equal(true);
      expect(r.stderr).to.contain(`warning: 2 rows had bytes that are not UTF-8 (first at ${txt}:2); they were read as U+FFFD`);
    });

    it('an empty file warns and exits 0 with an empty output', async () => {
      const empty = await writeText(path.join(dir, 'empty.txt'), '');
      const r = await sentiment(['infer', '--config', file, '--file', empty], env);
      expect(r.code, r.stderr).to.equal(0);
      expect(r.stdout).to.equal('');
      expect(r.stderr).to.contain(`warning: --file ${empty}: no rows`);
      const json = await sentiment(['infer', '--config', file, '--file', empty, '--json'], env);
      expect(JSON.parse(json.stdout)).to.deep.equal([]);
      // An Arrow output still holds the schema.
      const outArrow = path.join(dir, 'empty.arrow');
      expect((await sentiment(['infer', '--config', file, '--file', empty, '--out', outArrow], env)).code).to.equal(0);
      const fields: string[][] = [];
      for await (const b of readArrowBatches(outArrow)) fields.push(b.schema.fields.map((f) => f.name));
      expect(fields[0]).to.deep.equal(['line', 'id', 'text', 'probability', 'predicted', 'error']);
    });

    it('--file - reads lines from stdin, or CSV with --format csv', async () => {
      const r = await sentimentWithStdin(['infer', '--config', file, '--file', '-'], env, `${POSITIVE}\n\n${NEGATIVE}`);
      expect(r.code, r.stderr).to.equal(0);
      expect(jsonRows(r.stdout).map((x) => [x.line, x.error ?? null])).to.deep.equal([
        [1, null],
        [2, 'empty line'],
        [3, null],
      ]);
      const csv = await sentimentWithStdin(['infer', '--config', file, '--file', '-', '--format', 'csv', '--text-column', 'review'], env, `id;review\n1;${POSITIVE}\n2;"open\n`);
      expect(csv.code).to.equal(1);
      expect(jsonRows(csv.stdout).map((x) => [x.line, x.text])).to.deep.equal([[2, POSITIVE]]);
      expect(csv.stderr).to.contain('stdin:3:3: unclosed quote');
    });

    it('refuses a bad --file or --out by name before loading anything', async () => {
      await mkdir(path.join(dir, 'a-folder'), { recursive: true });
      const txt = await writeText(path.join(dir, 'ok.txt'), `${POSITIVE}\n`);
      const json = await writeText(path.join(dir, 'array.json'), '["a"]');
      const csvIn = await writeText(path.join(dir, 'same.csv'), `text\n${POSITIVE}\n`);
      // --set HIDDEN_DIM=3 has no trained head: these errors must come first.
      const untrained = ['infer', '--config', file, '--set', 'HIDDEN_DIM=3'];
      const cases: [string[], string][] = [
        [['--file', path.join(dir, 'a-folder')], `--file ${path.join(dir, 'a-folder')}: is a folder`],
        [['--file', path.join(dir, 'missing.txt')], `--file ${path.join(dir, 'missing.txt')}: no such file`],
        [['--file', json], `--file ${json}: unknown format ".json"`],
        [['--file', txt, '--out', path.join(dir, 'no', 'such', 'out.csv')], `--out ${path.join(dir, 'no', 'such', 'out.csv')}: the folder ${path.join(dir, 'no', 'such')} does not exist`],
        [['--file', txt, '--out', path.join(dir, 'a-folder')], `--out ${path.join(dir, 'a-folder')}: is a folder`],
        [['--file', txt, '--out', path.join(dir, 'out.parquet')], `--out ${path.join(dir, 'out.parquet')}: use a .csv, .jsonl or .arrow file`],
        [['--file', csvIn, '--out', csvIn], `--out ${csvIn}: is the --file being read`],
      ];
      for (const [args, message] of cases) {
        const r = await sentiment([...untrained, ...args], env);
        // An --out extension it cannot write is wrong usage (exit 2); the others are about files (exit 1).
        expect(r.code, args.join(' ')).to.equal(message.includes('use a .csv') ? 2 : 1);
        expect(r.stderr, args.join(' ')).to.contain(`Error: ${message}`);
        expect(r.stderr).to.not.match(NO_TRACE);
      }
      expect(await readFile(csvIn, 'utf8')).to.equal(`text\n${POSITIVE}\n`);
    });

    it('export --out refuses an existing file and a folder it did not write', async () => {
      const existing = await writeText(path.join(dir, 'model.bin'), 'keep me');
      const r = await sentiment(['export', '--config', file, '--out', existing], env);
      expect(r.code).to.equal(1);
      expect(r.stderr).to.contain(`Error: --out ${existing}: is a file; export writes a folder`);
      expect(r.stderr).to.not.match(NO_TRACE);
      expect(await readFile(existing, 'utf8')).to.equal('keep me');
      const foreign = path.join(dir, 'foreign');
      await mkdir(foreign, { recursive: true });
      await writeText(path.join(foreign, 'notes.txt'), 'mine');
      const f = await sentiment(['export', '--config', file, '--out', foreign], env);
      expect(f.code).to.equal(1);
      expect(f.stderr).to.contain('the folder is not empty and was not written by `sentiment export`');
    });
  });

  it('Ctrl-C stops reading, writes out the rows predicted so far, and exits 130', async () => {
    const input = path.join(dir, 'many.txt');
    await writeFile(input, Array.from({ length: 100_000 }, (_, i) => (i % 2 ? POSITIVE : NEGATIVE)).join('\n') + '\n');
    const out = path.join(dir, 'many.csv');
    const { spawn } = await import('node:child_process');
    const r = await new Promise<{ code: number | null; stderr: string }>((resolve) => {
      const child = spawn(process.execPath, [path.join(REPO, 'bin/run.js'), 'infer', '--config', file, '--file', input, '--out', out], { cwd: REPO, env: { ...process.env, CI: '1', ...env } });
      let stderr = '';
      let sent = false;
      child.stderr.on('data', (c) => {
        stderr += c;
        // The first progress line ("N rows · R rows/s") comes once rows are being predicted.
        if (!sent && / rows · /.test(stderr)) {
          sent = true;
          child.kill('SIGINT');
        }
      });
      child.on('close', (code) => resolve({ code, stderr }));
    });
    expect(r.code, r.stderr).to.equal(130);
    const written = Number(/interrupted after ([\d,]+) rows/.exec(r.stderr)?.[1].replace(/,/g, ''));
    expect(written).to.be.above(0).and.below(100_000);
    const lines = (await readFile(out, 'utf8')).trim().split('\n');
    // A header, then exactly the rows it says it wrote, in input order.
    expect(lines.length - 1).to.equal(written);
    expect(lines[written]).to.match(new RegExp(`^${written},`));
    expect(r.stderr).not.to.match(NO_TRACE);
  });

  it('--file keeps the input id and names its answer "predicted", so a gold label column cannot collide', async () => {
    const input = await writeText(path.join(dir, 'with-id.csv'), `id,text,label\nr-7,${JSON.stringify(POSITIVE)},positive\nr-9,${JSON.stringify(NEGATIVE)},negative\n`);
    const r = await sentiment(['infer', '--config', file, '--file', input, '--json'], env);
    expect(r.code, r.stderr).to.equal(0);
    const rows = JSON.parse(r.stdout) as Record<string, unknown>[];
    expect(rows.map((x) => Object.keys(x))).to.deep.equal([['line', 'id', 'text', 'probability', 'predicted'], ['line', 'id', 'text', 'probability', 'predicted']]);
    expect(rows.map((x) => x.id)).to.deep.equal(['r-7', 'r-9']);
    const jsonl = await writeText(path.join(dir, 'with-id.jsonl'), `${JSON.stringify({ id: 12, text: POSITIVE, label: 'positive' })}\n`);
    const j = await sentiment(['infer', '--config', file, '--file', jsonl, '--json'], env);
    expect((JSON.parse(j.stdout) as Record<string, unknown>[])[0]).to.include({ id: '12', line: 1 }).and.not.have.property('label');
  });
});

