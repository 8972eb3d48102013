import { expect } from 'chai';
import { cp, open, readdir, readFile, stat, unlink, writeFile } from 'node:fs/promises';
import { existsSync } from 'node:fs';
import path from 'node:path';
import { Writable } from 'node:stream';
import { loadExperiment } from '../../src/config/experiment.js';
import { runStages, planStages, type RunOptions } from '../../src/runner/pipeline.js';
import { Cache } from '../../src/core/cache.js';
import { readArrowBatches } from '../../src/core/arrow.js';
import { DamagedEntryError } from '../../src/core/errors.js';
import type { AnyStage } from '../../src/stages/stage.js';
import { STAGES } from '../../src/stages/index.js';
import { tinyBert } from '../fixtures/tiny-bert.js';
import { makeReviews } from '../fixtures/reviews.js';
import { optionalPolars, tempDir, writeText } from '../helpers.js';

describe('runner/pipeline (data + tokenize on repo fixtures)', () => {
  let dir: string;
  let experimentFile: string;
  let options: RunOptions;

  before(async () => {
    dir = await tempDir();
    const model = path.join(dir, 'model');
    await cp(await tinyBert(), model, { recursive: true });
    await makeReviews(path.join(dir, 'reviews'), { train: 120, test: 40 });
    experimentFile = await writeText(path.join(dir, 'exp.yaml'), 'MODEL: ./model\nDATASET: ./reviews\nMAX_LENGTH: 32\n');
    options = { cacheDir: path.join(dir, 'cache'), runsDir: path.join(dir, 'runs'), interactive: false, stream: devNull(), until: 'tokenize' };
  });

  const run = (sets: string[] = [], extra: Partial<RunOptions> = {}) => runStages(loadExperiment(experimentFile, sets), STAGES, { ...options, ...extra });

  it('computes each stage once, then serves both from the cache', async () => {
    const first = await run();
    expect(first.stages.map((s) => [s.name, s.cached])).to.deep.equal([['data', false], ['tokenize', false]]);
    const second = await run();
    expect(second.stages.map((s) => s.cached)).to.deep.equal([true, true]);
    expect(second.stages.map((s) => s.path)).to.deep.equal(first.stages.map((s) => s.path));
    expect(existsSync(path.join(second.run_dir, 'config.yaml'))).to.equal(true);
    // With --record, a fully cached rerun gets a run folder of its own.
    const recorded = await run([], { record: true });
    expect(recorded.run_dir).to.not.equal(second.run_dir);
    expect(recorded.reused).to.equal(undefined);
    expect(await readFile(path.join(recorded.run_dir, 'log.txt'), 'utf8')).to.match(/tokenize: cached/);
  });

  it('a fully cached rerun gives back the run folder that recorded the same config and entries, writing nothing', async () => {
    const o = { ...options, runsDir: path.join(await tempDir(), 'runs') };
    const first = await runStages(loadExperiment(experimentFile, []), STAGES, o);
    const log = await readFile(path.join(first.run_dir, 'log.txt'), 'utf8');
    const runJson = await readFile(path.join(first.run_dir, 'run.json'), 'utf8');
    const again = await runStages(loadExperiment(experimentFile, []), STAGES, o);
    expect(again.stages.map((s) => s.cached)).to.deep.equal([true, true]);
    expect(again.run_dir).to.equal(first.run_dir);
    expect(again.reused).to.equal(true);
    expect(await readFile(path.join(first.run_dir, 'log.txt'), 'utf8')).to.equal(log);
    expect(await readFile(path.join(first.run_dir, 'run.json'), 'utf8')).to.equal(runJson);
    expect(await readdir(path.dirname(first.run_dir))).to.have.length(1);
    // Other stages (--until data) or another config: a new folder.
    const fewer = await runStages(loadExperiment(experimentFile, []), STAGES, { ...o, until: 'data' });
    expect(fewer.run_dir).to.not.equal(first.run_dir);
    expect(fewer.reused).to.equal(undefined);
    const other = await runStages(loadExperiment(experimentFile, ['TEXT=other']), STAGES, o);
    expect(other.stages.map((s) => s.cached)).to.deep.equal([true, true]);
    expect(other.run_dir).to.not.equal(first.run_dir);
    expect(await readdir(path.dirname(first.run_dir))).to.have.length(3);
  });

  it('writes the documented Arrow columns, in record batches', async () => {
    const result = await run();
    const tokens = result.stages.find((s) => s.name === 'tokenize')!;
    const seen = { rows: 0, splits: new Set<string>() };
    for await (const batch of readArrowBatches(path.join(tokens.path, 'tokens.arrow'))) {
      expect(batch.schema.fields.map((f) => `${f.name}:${f.type}`)).to.deep.equal(['id:Utf8', 'input_ids:List<Int32>', 'length:Int32', 'label:Int8', 'split:Utf8']);
      for (let i = 0; i < batch.numRows; i++) {
        const ids = batch.getChild('input_ids')!.get(i)!.toArray() as Int32Array;
        expect(ids.length).to.equal(batch.getChild('length')!.get(i));
        expect(ids[0]).to.equal(2); // [CLS]
        expect(ids[ids.length - 1]).to.equal(3); // [SEP]
        seen.splits.add(batch.getChild('split')!.get(i) as string);
      }
      seen.rows += batch.numRows;
    }
    expect(seen.rows).to.equal(160);
    expect([...seen.splits].sort()).to.deep.equal(['test', 'train', 'valid']);
  });

  it('reruns only tokenize when MAX_LENGTH changes, and explains why', async () => {
    const cache = new Cache(options.cacheDir);
    const plan = await planStages(loadExperiment(experimentFile, ['MAX_LENGTH=16']), STAGES.slice(0, 2), cache);
    expect(plan.map((p) => p.entry !== undefined)).to.deep.equal([true, false]);
    expect(plan[1].reason).to.match(/MAX_LENGTH 32 → 16/);
    const result = await run(['MAX_LENGTH=16']);
    expect(result.stages.map((s) => s.cached)).to.deep.equal([true, false]);
  });

  it('reruns data and tokenize when SEED changes, naming the upstream change', async () => {
    const plan = await planStages(loadExperiment(experimentFile, ['SEED=1']), STAGES.slice(0, 2), new Cache(options.cacheDir));
    expect(plan[0].reason).to.match(/SEED 12345 → 1/);
    expect(plan[1].reason).to.match(/upstream data changed/);
  });

  it('--force STAGE recomputes that stage and those after it', async () => {
    const forced = await run([], { force: 'tokenize' });
    expect(forced.stages.map((s) => s.cached)).to.deep.equal([true, false]);
    const all = await run([], { force: 'all' });
    expect(all.stages.map((s) => s.cached)).to.deep.equal([false, false]);
  });

  it('misses when a tokenizer file’s content changes', async () => {
    const file = path.join(dir, 'model', 'tokenizer_config.json');
    const original = await readFile(file, 'utf8');
    await writeFile(file, original.replace('"model_max_length": 128', '"model_max_length": 127'));
    try {
      const plan = await planStages(loadExperiment(experimentFile), STAGES.slice(0, 2), new Cache(options.cacheDir));
      expect(plan[1].entry).to.equal(undefined);
      expect(plan[1].reason).to.match(/input tokenizer changed/);
    } finally {
      await writeFile(file, original);
    }
  });

  it('an interrupted stage leaves no entry, and the next run resumes after the last complete stage', async () => {
    const controller = new AbortController();
    const slowTokenize: AnyStage = {
      ...STAGES[1],
      async produce(ctx) {
        await writeFile(path.join(ctx.dir, 'partial.arrow'), 'half');
        controller.abort(new Error('interrupted'));
        ctx.signal.throwIfAborted();
        return {};
      },
    };
    const stages = [STAGES[0], slowTokenize];
    const sets = ['MAX_LENGTH=20'];
    await runStages(loadExperiment(experimentFile, sets), stages, { ...options, signal: controller.signal }).then(
      () => expect.fail('should be interrupted'),
      (e) => expect(e.message).to.equal('interrupted'),
    );
    const leftovers = (await readdir(path.join(options.cacheDir, 'tokenize'))).filter((n) => n.startsWith('.tmp-'));
    expect(leftovers).to.deep.equal([]);
    const resumed = await run(sets);
    expect(resumed.stages.map((s) => s.cached)).to.deep.equal([true, false]);
  });

  describe('damaged entries', () => {
    // Its own cache, so the suite's entries stay intact.
    const fresh = async () => ({ ...options, cacheDir: path.join(await tempDir(), 'cache') });
    const runIn = (o: RunOptions, extra: Partial<RunOptions> = {}, stages = STAGES) => runStages(loadExperiment(experimentFile), stages, { ...o, ...extra });

    it('an entry without manifest.json (the old ENOTEMPTY failure) is moved aside and recomputed, with a warning in the log', async () => {
      const o = await fresh();
      const first = await runIn(o, { until: 'data' });
      await unlink(path.join(first.stages[0].path, 'manifest.json'));
      const out = collect();
      const again = await runIn(o, { stream: out.stream });
      expect(again.stages.map((s) => s.cached)).to.deep.equal([false, false]);
      expect(out.text()).to.match(/warning: cache entry data\/[0-9a-f]{12}…: manifest\.json is missing; moved aside to .*\.damaged-/);
      expect(await readFile(path.join(again.run_dir, 'log.txt'), 'utf8')).to.match(/warning: cache entry data\/.*moved aside/);
      expect((await runIn(o)).stages.map((s) => s.cached)).to.deep.equal([true, true]);
    });

    it('a stage that cannot decode an upstream file moves that entry aside, recomputes it and succeeds; so does the next run', async () => {
      const o = await fresh();
      const first = await runIn(o, { until: 'data' });
      // Damage the footer in place, and record the new mtime in the manifest (as if the overwrite had kept
      // the mtime): the load check (size, mtime) cannot see it, only the reader can.
      const file = path.join(first.stages[0].path, 'data.arrow');
      const { size } = await stat(file);
      const h = await open(file, 'r+');
      await h.write(Buffer.from('GARBAGE!'), 0, 8, size - 8);
      await h.close();
      const manifestFile = path.join(first.stages[0].path, 'manifest.json');
      const manifest = JSON.parse(await readFile(manifestFile, 'utf8'));
      manifest.files.find((f: { path: string }) => f.path === 'data.arrow').mtimeMs = (await stat(file)).mtimeMs;
      await writeFile(manifestFile, JSON.stringify(manifest));
      const out = collect();
      const result = await runIn(o, { stream: out.stream });
      expect(result.stages.map((s) => [s.name, s.cached])).to.deep.equal([['data', false], ['tokenize', false]]);
      expect(out.text()).to.match(/warning: cache entry data\/[0-9a-f]{12}…: tokenize could not read data\.arrow: is not a complete Arrow IPC file.*; moved aside to .*\.damaged-.*, recomputing data/);
      expect((await readdir(path.dirname(first.stages[0].path))).filter((n) => n.startsWith('.damaged-'))).to.have.length(1);
      expect(out.text()).to.not.match(/\n\s+at /);
      expect((await runIn(o)).stages.map((s) => s.cached)).to.deep.equal([true, true]);
    });

    it('a second decode failure of the same entry is a real error, naming the file', async () => {
      const o = await fresh();
      const alwaysDamaged: AnyStage = {
        ...STAGES[1],
        async produce(ctx) {
          throw new DamagedEntryError(path.join(ctx.upstream.data!.dir, 'data.arrow'), 'cannot be decoded (test)');
        },
      };
      const err = await runIn(o, { stream: collect().stream }, [STAGES[0], alwaysDamaged]).then(
        () => expect.fail('should fail'),
        (e) => e,
      );
      expect(err).to.be.instanceOf(DamagedEntryError);
      expect(err.message).to.match(/data\.arrow: cannot be decoded \(test\)/);
      // Moved aside and recomputed once, not more.
      expect((await readdir(path.join(o.cacheDir, 'data'))).filter((n) => n.startsWith('.damaged-'))).to.have.length(1);
    });
  });

  it('produces files another Arrow implementation reads (polars, when installed)', async function () {
    const pl = await optionalPolars(this);
    const result = await run();
    const tokens = pl.readIPC(await readFile(path.join(result.stages[1].path, 'tokens.arrow')));
    expect(tokens.height).to.equal(160);
    expect(tokens.columns).to.deep.equal(['id', 'input_ids', 'length', 'label', 'split']);
    const data = pl.readIPC(await readFile(path.join(result.stages[0].path, 'data.arrow')));
    expect(data.columns).to.deep.equal(['id', 'text', 'label', 'split']);
  });
});

/** A stream that keeps what is written to it. */
function collect(): { stream: NodeJS.WritableStream; text: () => string } {
  const chunks: string[] = [];
  const stream = new Writable({
    write: (c, _e, cb) => {
      chunks.push(String(c));
      cb();
    },
  });
  return { stream, text: () => chunks.join('') };
}

function devNull(): NodeJS.WritableStream {
  return new Writable({ write: (_c, _e, cb) => cb() });
}
