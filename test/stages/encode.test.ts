import { expect } from 'chai';
import { cp, mkdir, readFile, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { Writable } from 'node:stream';
import { loadExperiment } from '../../src/config/experiment.js';
import { runStages, planStages, type RunOptions } from '../../src/runner/pipeline.js';
import { Cache, stageKey } from '../../src/core/cache.js';
import { arrow, int32Column, readArrowBatches } from '../../src/core/arrow.js';
import { ArrowFileWriter } from '../../src/core/arrow.js';
import { UserError } from '../../src/core/errors.js';
import type { AnyStage, StageContext } from '../../src/stages/stage.js';
import type { TokenizeInfo } from '../../src/stages/tokenize.js';
import { readSettings } from '../../src/core/settings.js';
import { dataStage } from '../../src/stages/data.js';
import { tokenizeStage } from '../../src/stages/tokenize.js';
import { encodeStage, encodeTokensFile, type EncodeInfo } from '../../src/stages/encode.js';
import { FEATURES_FILE, readFeatureRows, readFeatures, type FeatureRow } from '../../src/features/features.js';
import { encodeRows, loadEncoder, planBatches } from '../../src/encoder/encoder.js';
import { onnxruntimeProviders } from '../../src/core/onnxruntime.js';
import { float16ArrayToFloat32, float16ToFloat32, float32ArrayToFloat16, float32ToFloat16 } from '../../src/core/float16.js';
import { referenceForward, tinyBert, tinyBertWeights } from '../fixtures/tiny-bert.js';
import { makeReviews } from '../fixtures/reviews.js';
import { optionalPolars, requireShared, tempDir, writeText } from '../helpers.js';

const STAGES: AnyStage[] = [dataStage, tokenizeStage, encodeStage];

function devNull(): NodeJS.WritableStream {
  return new Writable({ write: (_c, _e, cb) => cb() });
}

/** Token ids of every row of a tokens.arrow, by id. */
async function readTokens(file: string): Promise<Map<string, number[]>> {
  const rows = new Map<string, number[]>();
  for await (const batch of readArrowBatches(file)) {
    for (let i = 0; i < batch.numRows; i++) rows.set(batch.getChild('id')!.get(i) as string, Array.from(batch.getChild('input_ids')!.get(i)!.toArray() as Int32Array));
  }
  return rows;
}

async function readAllFeatures(file: string): Promise<Map<string, FeatureRow>> {
  const rows = new Map<string, FeatureRow>();
  for await (const row of readFeatureRows(file)) rows.set(row.id, { ...row, features: row.features.slice() });
  return rows;
}

/** max |a − ref| over a row's tokens (NaN-propagating), ref as [length][hidden]. */
function maxDiff(actual: Float32Array, ref: ArrayLike<number>[], hidden: number): number {
  expect(actual.length).to.equal(ref.length * hidden);
  let worst = 0;
  ref.forEach((vector, t) => {
    for (let h = 0; h < hidden; h++) {
      const d = Math.abs(actual[t * hidden + h] - vector[h]);
      if (!(d <= worst)) worst = d;
    }
  });
  return worst;
}

// ---------------------------------------------------------------------------------------------
// float16: an independent, slow reference (float64 arithmetic, value → bits by table look-up).

function halfValue(h: number): number {
  const sign = h & 0x8000 ? -1 : 1;
  const exp = (h >> 10) & 0x1f;
  const mant = h & 0x3ff;
  if (exp === 31) return mant ? NaN : sign * Infinity;
  return sign * (exp === 0 ? mant / 1024 * 2 ** -14 : (1 + mant / 1024) * 2 ** (exp - 15));
}

const HALF_BITS = new Map<number, number>();
for (let h = 0; h < 0x7c00; h++) HALF_BITS.set(halfValue(h), h);

function referenceHalf(v: number): number {
  if (Number.isNaN(v)) return NaN;
  const sign = v < 0 || Object.is(v, -0) ? 0x8000 : 0;
  const a = Math.abs(v);
  if (a === 0) return sign;
  let e = -14;
  if (a >= 2 ** -14) {
    e = Math.floor(Math.log2(a));
    while (2 ** e > a) e--;
    while (2 ** (e + 1) <= a) e++;
  }
  const ulp = 2 ** (e - 10);
  const scaled = a / ulp; // exact: a power-of-two scaling
  let q = Math.floor(scaled);
  const r = scaled - q;
  if (r > 0.5 || (r === 0.5 && q % 2 === 1)) q++;
  const rounded = q * ulp;
  if (rounded > 65504) return sign | 0x7c00;
  return sign | HALF_BITS.get(rounded)!;
}

function f32FromBits(bits: number): number {
  return new Float32Array(new Uint32Array([bits >>> 0]).buffer)[0];
}
function bitsOfF32(v: number): number {
  return new Uint32Array(new Float32Array([v]).buffer)[0];
}

describe('encoder/float16', () => {
  it('is exact on every representable value (normals, subnormals, ±0, ±Infinity)', () => {
    for (let h = 0; h < 0x10000; h++) {
      if ((h & 0x7c00) === 0x7c00 && (h & 0x3ff) !== 0) continue; // NaN
      const v = float16ToFloat32(h);
      expect(Object.is(v, halfValue(h)), `bits ${h.toString(16)}`).to.equal(true);
      expect(float32ToFloat16(v), `value ${v}`).to.equal(h);
    }
  });

  it('rounds to nearest, ties to even, between every pair of neighbours', () => {
    for (let h = 0; h < 0x7bff; h++) {
      const [a, b] = [halfValue(h), halfValue(h + 1)];
      const mid = (a + b) / 2; // exact in float32: one more bit than a half holds
      expect(Math.fround(mid)).to.equal(mid);
      const even = h % 2 === 0 ? h : h + 1;
      expect(float32ToFloat16(mid), `tie between ${h} and ${h + 1}`).to.equal(even);
      expect(float32ToFloat16(f32FromBits(bitsOfF32(mid) - 1))).to.equal(h);
      expect(float32ToFloat16(f32FromBits(bitsOfF32(mid) + 1))).to.equal(h + 1);
      expect(float32ToFloat16(-mid)).to.equal(0x8000 | even);
    }
  });

  it('handles subnormals, underflow and signed zero', () => {
    expect(float32ToFloat16(2 ** -24)).to.equal(0x0001); // smallest subnormal
    expect(float32ToFloat16(2 ** -25)).to.equal(0x0000); // tie with 0: even
    expect(float32ToFloat16(Math.fround(2 ** -25 * 1.0000001))).to.equal(0x0001);
    expect(float32ToFloat16(3 * 2 ** -25)).to.equal(0x0002); // tie between 1 and 2: even
    expect(float32ToFloat16(5 * 2 ** -25)).to.equal(0x0002); // tie between 2 and 3: even
    expect(float32ToFloat16(1023 * 2 ** -24)).to.equal(0x03ff); // largest subnormal
    expect(float32ToFloat16(2047 * 2 ** -25)).to.equal(0x0400); // tie rounds up into the smallest normal
    expect(float32ToFloat16(f32FromBits(1))).to.equal(0x0000); // float32's smallest subnormal
    expect(float32ToFloat16(-(2 ** -26))).to.equal(0x8000);
    expect(float32ToFloat16(-0)).to.equal(0x8000);
    expect(float16ToFloat32(0x0001)).to.equal(2 ** -24);
    expect(Object.is(float16ToFloat32(0x8000), -0)).to.equal(true);
  });

  it('overflows to ±Infinity from 65520 (the tie above 65504) and keeps ±Infinity and NaN', () => {
    expect(float32ToFloat16(65504)).to.equal(0x7bff);
    expect(float32ToFloat16(Math.fround(65519.99))).to.equal(0x7bff);
    expect(float32ToFloat16(65520)).to.equal(0x7c00);
    expect(float32ToFloat16(65536)).to.equal(0x7c00);
    expect(float32ToFloat16(1e6)).to.equal(0x7c00);
    expect(float32ToFloat16(-3.4028234663852886e38)).to.equal(0xfc00);
    expect(float32ToFloat16(Infinity)).to.equal(0x7c00);
    expect(float32ToFloat16(-Infinity)).to.equal(0xfc00);
    const nan = float32ToFloat16(NaN);
    expect(nan & 0x7c00).to.equal(0x7c00);
    expect(nan & 0x3ff).to.not.equal(0);
    expect(float16ToFloat32(nan)).to.be.NaN;
    expect(float16ToFloat32(0x7c00)).to.equal(Infinity);
    expect(float16ToFloat32(0xfc00)).to.equal(-Infinity);
  });

  it('converts arrays like the scalar function and the float64 reference, on random bit patterns', () => {
    let seed = 12345;
    const next = () => (seed = (Math.imul(seed, 1664525) + 1013904223) >>> 0);
    const bits = new Uint32Array(200_000);
    for (let i = 0; i < bits.length; i++) {
      const r = next();
      // A third arbitrary patterns, a third around half's range (|x| < 2^17), a third tiny (subnormal halves).
      bits[i] = i % 3 === 0 ? r : i % 3 === 1 ? (r & 0x80000000) | (0x30000000 + (r % 0x18000000)) : (r & 0x80000000) | (0x32000000 + (r % 0x07000000));
    }
    const values = new Float32Array(bits.buffer);
    const halves = float32ArrayToFloat16(values);
    for (let i = 0; i < values.length; i++) {
      const v = values[i];
      if (Number.isNaN(v)) {
        expect(float16ToFloat32(halves[i])).to.be.NaN;
        continue;
      }
      const expected = referenceHalf(v);
      if (halves[i] !== expected || float32ToFloat16(v) !== expected) expect.fail(`${v} (bits ${bits[i].toString(16)}): got ${halves[i].toString(16)}, expected ${expected.toString(16)}`);
    }
    const back = float16ArrayToFloat32(halves);
    for (let i = 0; i < back.length; i++) if (!Number.isNaN(back[i])) expect(Object.is(back[i], float16ToFloat32(halves[i]))).to.equal(true);
  });

  it('converts into a view at an offset and refuses a short output', () => {
    const out = new Uint16Array(6);
    float32ArrayToFloat16(new Float32Array([1, -2, 0.5]), out.subarray(2));
    expect(Array.from(out)).to.deep.equal([0, 0, 0x3c00, 0xc000, 0x3800, 0]);
    expect(() => float32ArrayToFloat16(new Float32Array(3), new Uint16Array(2))).to.throw(RangeError);
  });
});

describe('encoder/planBatches', () => {
  const lengths = [5, 30, 7, 30, 12, 3, 64, 9, 9, 20];

  it('covers every row once within the token budget, longest first, padding little', () => {
    const batches = planBatches(lengths, { tokenBudget: 64 });
    expect(Array.from(batches.flatMap((b) => Array.from(b))).sort((a, b) => a - b)).to.deep.equal(lengths.map((_, i) => i));
    for (const b of batches) {
      const padded = Math.max(...Array.from(b, (i) => lengths[i]));
      expect(b.length * padded).to.be.at.most(64);
    }
    expect(Array.from(batches[0])).to.deep.equal([6]);
    const flat = batches.flatMap((b) => Array.from(b, (i) => lengths[i]));
    expect(flat).to.deep.equal([...flat].sort((a, b) => b - a));
  });

  it('keeps input order without sorting, and gives an over-long row a batch of its own', () => {
    const batches = planBatches(lengths, { tokenBudget: 40, sortByLength: false });
    expect(batches.flatMap((b) => Array.from(b))).to.deep.equal(lengths.map((_, i) => i));
    expect(batches.some((b) => b.length === 1 && b[0] === 6)).to.equal(true);
    // On many rows of varied lengths, sorting pads far less.
    let seed = 1;
    const many = Array.from({ length: 500 }, () => 3 + ((seed = (Math.imul(seed, 1664525) + 1013904223) >>> 0) % 126));
    const paddedTokens = (bs: Int32Array[]) => bs.reduce((s, b) => s + b.length * Math.max(...Array.from(b, (i) => many[i])), 0);
    const total = many.reduce((a, b) => a + b, 0);
    expect(paddedTokens(planBatches(many, { tokenBudget: 1024 }))).to.be.below(total * 1.05);
    expect(paddedTokens(planBatches(many, { tokenBudget: 1024, sortByLength: false }))).to.be.above(total * 1.3);
  });

  it('also bounds rows × heads × length² (attention memory)', () => {
    const batches = planBatches([100, 100, 100, 100], { tokenBudget: 1e9, attentionBudget: 12 * 2 * 100 * 100, numHeads: 12 });
    expect(batches.map((b) => b.length)).to.deep.equal([2, 2]);
  });
});

describe('encoder/ArrowFileWriter', () => {
  it('writes a complete Arrow file record batch by record batch, keeping at most maxLagBytes unwritten', async () => {
    const dir = await tempDir();
    const schema = new arrow.Schema([new arrow.Field('x', new arrow.Int32(), false)]);
    for (const maxLagBytes of [0, 1 << 20]) {
      const file = path.join(dir, `lag-${maxLagBytes}.arrow`);
      const writer = await ArrowFileWriter.create(file, schema, { maxLagBytes });
      for (let b = 0; b < 50; b++) await writer.write([int32Column(Int32Array.from({ length: 1000 }, (_, i) => b * 1000 + i))]);
      expect(await writer.close()).to.equal(50_000);
      let next = 0;
      for await (const batch of readArrowBatches(file)) {
        for (const x of batch.getChild('x')!.toArray() as Int32Array) expect(x).to.equal(next++);
      }
      expect(next).to.equal(50_000);
    }
  });
});

describe('stages/encode (tiny BERT, real ONNX Runtime)', () => {
  let dir: string;
  let experimentFile: string;
  let options: RunOptions;
  const weights = tinyBertWeights();
  const run = (sets: string[] = [], extra: Partial<RunOptions> = {}) => runStages(loadExperiment(experimentFile, sets), STAGES, { ...options, ...extra });

  before(async () => {
    dir = await tempDir();
    await cp(await tinyBert(), path.join(dir, 'model'), { recursive: true });
    await makeReviews(path.join(dir, 'reviews'), { train: 120, test: 40 });
    experimentFile = await writeText(path.join(dir, 'exp.yaml'), 'MODEL: ./model\nDATASET: ./reviews\nMAX_LENGTH: 32\nENCODER_DTYPE: float32\nDEVICE: cpu\n');
    options = { cacheDir: path.join(dir, 'cache'), runsDir: path.join(dir, 'runs'), interactive: false, stream: devNull() };
  });

  it('writes one float32 vector per real token that matches the reference forward pass (1e-4)', async () => {
    const result = await run();
    expect(result.stages.map((s) => [s.name, s.cached])).to.deep.equal([['data', false], ['tokenize', false], ['encode', false]]);
    const [, tokenize, encode] = result.stages;
    expect(encode.info).to.deep.include({ rows: 160, tokens: (tokenize.info as TokenizeInfo).tokens, hidden_size: 32, dtype: 'float32', device: 'cpu', files: [FEATURES_FILE] });
    const tokens = await readTokens(path.join(tokenize.path, 'tokens.arrow'));
    const features = await readAllFeatures(path.join(encode.path, FEATURES_FILE));
    expect([...features.keys()].sort()).to.deep.equal([...tokens.keys()].sort());
    for (const [id, row] of features) {
      expect(row.length, id).to.equal(tokens.get(id)!.length);
      expect(row.features.length).to.equal(row.length * 32);
    }
    // Rows of different lengths (each batch pads them to its longest).
    const ids = [...tokens.keys()].sort((a, b) => tokens.get(a)!.length - tokens.get(b)!.length);
    for (const id of [ids[0], ids[Math.floor(ids.length / 2)], ids[ids.length - 1], ids[7], ids[99]]) {
      const ref = referenceForward(weights, [tokens.get(id)!])[0];
      expect(maxDiff(features.get(id)!.features, ref, 32), id).to.be.at.most(1e-4);
    }
    expect(await readFile(path.join(result.run_dir, 'log.txt'), 'utf8')).to.match(/encode: DEVICE cpu/);
  });

  it('writes the documented Arrow schema, keeping each row’s split and label', async () => {
    const result = await run();
    expect(result.stages.map((s) => s.cached)).to.deep.equal([true, true, true]);
    const labels = new Map<string, [string, number]>();
    for await (const batch of readArrowBatches(path.join(result.stages[0].path, 'data.arrow'))) {
      for (let i = 0; i < batch.numRows; i++) labels.set(batch.getChild('id')!.get(i), [batch.getChild('split')!.get(i), batch.getChild('label')!.get(i)]);
    }
    let batches = 0;
    for await (const batch of readArrowBatches(path.join(result.stages[2].path, FEATURES_FILE))) {
      batches++;
      expect(batch.schema.fields.map((f) => `${f.name}:${f.type}`)).to.deep.equal(['id:Utf8', 'split:Utf8', 'label:Int8', 'length:Int32', 'features:List<FixedSizeList[32]<Float32>>']);
      for (let i = 0; i < batch.numRows; i++) {
        expect([batch.getChild('split')!.get(i), batch.getChild('label')!.get(i)]).to.deep.equal(labels.get(batch.getChild('id')!.get(i)));
        expect(batch.getChild('features')!.get(i)!.length).to.equal(batch.getChild('length')!.get(i));
      }
    }
    expect(batches).to.be.greaterThan(0);
  });

  it('stores float16 (the default) within half precision of the reference, rerunning only encode', async () => {
    const cache = new Cache(options.cacheDir);
    const plan = await planStages(loadExperiment(experimentFile, ['ENCODER_DTYPE=float16']), STAGES, cache);
    expect(plan.map((p) => p.entry !== undefined)).to.deep.equal([true, true, false]);
    expect(plan[2].reason).to.match(/ENCODER_DTYPE "float32" → "float16"/);
    const result = await run(['ENCODER_DTYPE=float16']);
    expect(result.stages.map((s) => s.cached)).to.deep.equal([true, true, false]);
    expect(result.stages[2].info).to.deep.include({ dtype: 'float16', hidden_size: 32 });
    const file = path.join(result.stages[2].path, FEATURES_FILE);
    for await (const batch of readArrowBatches(file)) {
      expect(String(batch.schema.fields[4].type)).to.equal('List<FixedSizeList[32]<Float16>>');
      break;
    }
    const halves = await readAllFeatures(file);
    const singles = await readAllFeatures(path.join((await run()).stages[2].path, FEATURES_FILE));
    const tokens = await readTokens(path.join(result.stages[1].path, 'tokens.arrow'));
    for (const [id, row] of halves) {
      // The same float32 outputs, rounded: exactly what the float16 conversion gives.
      const rounded = float16ArrayToFloat32(float32ArrayToFloat16(singles.get(id)!.features));
      expect(Buffer.compare(Buffer.from(row.features.buffer, row.features.byteOffset, row.features.byteLength), Buffer.from(rounded.buffer)), id).to.equal(0);
    }
    for (const id of [...tokens.keys()].slice(0, 6)) {
      const ref = referenceForward(weights, [tokens.get(id)!])[0];
      let worst = 0;
      ref.forEach((v, t) => v.forEach((x, h) => (worst = Math.max(worst, Math.abs(halves.get(id)!.features[t * 32 + h] - x) - Math.abs(x) * 2 ** -11))));
      expect(worst, id).to.be.at.most(1e-4); // |error| ≤ 1e-4 + half an ulp of float16
    }
  });

  it('does not put DEVICE in the key (cpu and auto share the entry) and records the device used', async () => {
    const cache = new Cache(options.cacheDir);
    const cpu = await planStages(loadExperiment(experimentFile, ['DEVICE=cpu']), STAGES, cache);
    const auto = await planStages(loadExperiment(experimentFile, ['DEVICE=auto']), STAGES, cache);
    expect(auto.map((p) => p.key)).to.deep.equal(cpu.map((p) => p.key));
    expect(auto[2].entry).to.not.equal(undefined);
    const forced = await run(['DEVICE=auto'], { force: 'encode' });
    expect(forced.stages.map((s) => s.cached)).to.deep.equal([true, true, false]);
    const expected = onnxruntimeProviders().cudaInstalled ? ['cuda', 'cpu'] : ['cpu'];
    expect(expected).to.include((forced.stages[2].info as EncodeInfo).device);
    expect(await readFile(path.join(forced.run_dir, 'log.txt'), 'utf8')).to.match(/DEVICE auto → (cpu|cuda)/);
  });

  it('ENCODER_QUANTIZE none keeps the keys of entries made before the setting existed; int8 changes encode and what follows', async () => {
    const cache = new Cache(options.cacheDir);
    const none = await planStages(loadExperiment(experimentFile, ['ENCODER_QUANTIZE=none']), STAGES, cache);
    const int8 = await planStages(loadExperiment(experimentFile, ['ENCODER_QUANTIZE=int8']), STAGES, cache);
    // The key material of encode for none is exactly what it was without the setting.
    const material = none[2].material;
    const dtype = material.config.ENCODER_DTYPE;
    expect(material.config).to.deep.equal({ ENCODER_DTYPE: dtype, ENCODER_QUANTIZE: undefined });
    expect(stageKey({ ...material, config: { ENCODER_DTYPE: dtype } })).to.equal(none[2].key);
    expect(material.inputs).to.not.have.property('quantizer');
    expect(int8.slice(0, 2).map((p) => p.key)).to.deep.equal(none.slice(0, 2).map((p) => p.key));
    expect(int8[2].key).to.not.equal(none[2].key);
    expect(int8[2].material.inputs).to.have.property('quantizer');
  });

  it('DEVICE=cuda without the CUDA execution provider is a UserError naming DEVICE, leaving the entry as it was', async function () {
    if (onnxruntimeProviders().cudaInstalled) {
      console.log('      (skipped: the CUDA execution provider is installed here)');
      return this.skip();
    }
    const before = (await run()).stages[2];
    await run(['DEVICE=cuda'], { force: 'encode' }).then(
      () => expect.fail('should throw'),
      (e) => {
        expect(e).to.be.instanceOf(UserError);
        expect(e.message).to.match(/^DEVICE: cuda is unavailable: the CUDA execution provider .* is not installed/);
        expect(e.message).to.include('ONNXRUNTIME_NODE_INSTALL=cuda12 node node_modules/onnxruntime-node/script/install.js');
      },
    );
    const after = (await run()).stages[2];
    expect([after.cached, after.path]).to.deep.equal([true, before.path]);
  });

  it('DEVICE=webgpu either runs or is a UserError naming DEVICE', async () => {
    try {
      const encoder = await loadEncoder(path.join(dir, 'model'), { device: 'webgpu' });
      expect(encoder.device).to.equal('webgpu');
      await encoder.dispose();
    } catch (e) {
      expect(e).to.be.instanceOf(UserError);
      expect((e as Error).message).to.match(/^DEVICE: webgpu/);
    }
  });

  it('reruns encode when the model’s weights change', async () => {
    const file = path.join(dir, 'model', 'config.json');
    const original = await readFile(file, 'utf8');
    await writeFile(file, original.replace('"initializer_range": 0.02', '"initializer_range": 0.03'));
    try {
      const plan = await planStages(loadExperiment(experimentFile), STAGES, new Cache(options.cacheDir));
      expect(plan.map((p) => p.entry !== undefined)).to.deep.equal([true, true, false]);
      expect(plan[2].reason).to.match(/input encoder changed/);
    } finally {
      await writeFile(file, original);
    }
  });

  it('stops between batches when aborted, and the cache keeps no entry', async () => {
    // Aborted as soon as the model is loaded (its DEVICE line), before the first batch.
    const controller = new AbortController();
    const interrupted: AnyStage = {
      ...encodeStage,
      produce: (ctx: StageContext<ReturnType<typeof encodeStage.reads>, 'tokenize'>) =>
        encodeStage.produce({
          ...ctx,
          progress: {
            update: (done, total, unit) => ctx.progress.update(done, total, unit),
            log(message) {
              ctx.progress.log(message);
              controller.abort(new Error('interrupted'));
            },
          },
        }),
    };
    const sets = ['ENCODER_DTYPE=float16', 'MAX_LENGTH=24'];
    await runStages(loadExperiment(experimentFile, sets), [dataStage, tokenizeStage, interrupted], { ...options, signal: controller.signal }).then(
      () => expect.fail('should be interrupted'),
      (e) => expect(e.message).to.equal('interrupted'),
    );
    const plan = await planStages(loadExperiment(experimentFile, sets), STAGES, new Cache(options.cacheDir));
    expect(plan.map((p) => p.entry !== undefined)).to.deep.equal([true, true, false]);
    expect((await run(sets)).stages.map((s) => s.cached)).to.deep.equal([true, true, false]);

    // Between batches: the batch under way finishes, the next one does not start.
    const second = new AbortController();
    const updates: number[] = [];
    const encoder = await loadEncoder(path.join(dir, 'model'), { device: 'cpu' });
    try {
      await encodeTokensFile({
        tokensFile: path.join(plan[1].entry!.dir, 'tokens.arrow'),
        outFile: path.join(dir, 'aborted.arrow'),
        encoder,
        dtype: 'float16',
        batching: { tokenBudget: 64 },
        signal: second.signal,
        progress: { log: () => {}, update: (done) => (updates.push(done), second.abort(new Error('stop'))) },
      }).then(
        () => expect.fail('should stop'),
        (e) => expect(e.message).to.equal('stop'),
      );
    } finally {
      await encoder.dispose();
    }
    expect(updates).to.have.length(1);
    expect(updates[0]).to.be.within(1, 159);
  });

  it('writes files another Arrow implementation reads (polars, when installed)', async function () {
    const pl = await optionalPolars(this);
    for (const dtype of ['float32', 'float16']) {
      const result = await run([`ENCODER_DTYPE=${dtype}`]);
      const df = pl.readIPC(await readFile(path.join(result.stages[2].path, FEATURES_FILE)));
      expect(df.height).to.equal(160);
      expect(df.columns).to.deep.equal(['id', 'split', 'label', 'length', 'features']);
      // nodejs-polars reads Float16 but cannot hand it to JS, so compare through sums computed in polars.
      const sums = df.select(pl.col('length').sum().alias('tokens'), pl.col('features').list.lengths().sum().alias('vectors'));
      expect(Number(sums.getColumn('tokens').get(0))).to.equal((result.stages[2].info as EncodeInfo).tokens);
      expect(Number(sums.getColumn('vectors').get(0))).to.equal((result.stages[2].info as EncodeInfo).tokens);
    }
  });

  it('takes ONNX Runtime’s thread count from SENTIMENT_THREADS when set', () => {
    expect(readSettings({ SENTIMENT_THREADS: '3' }).threads).to.equal(3);
    expect(readSettings({}).threads).to.equal(undefined);
    expect(readSettings({ SENTIMENT_THREADS: 'many' }).threads).to.equal(undefined);
  });

  it('encodeRows (for inference) returns each row’s real tokens in input order', async () => {
    const encoder = await loadEncoder(path.join(dir, 'model'), { device: 'cpu' });
    try {
      const rows = [[2, 60, 70, 3], [2, 61, 3], [2, 62, 63, 64, 65, 66, 3], [2, 3]].map((r) => Int32Array.from(r));
      const out = await encodeRows(encoder, rows, { tokenBudget: 8 });
      rows.forEach((r, i) => expect(maxDiff(out[i], referenceForward(weights, [Array.from(r)])[0], 32)).to.be.at.most(1e-4));
    } finally {
      await encoder.dispose();
    }
  });

  it('encodeTokensFile without length sorting writes the same features in input order', async () => {
    const result = await run();
    const encoder = await loadEncoder(path.join(dir, 'model'), { device: 'cpu' });
    const out = path.join(dir, 'unsorted.arrow');
    try {
      const info = await encodeTokensFile({ tokensFile: path.join(result.stages[1].path, 'tokens.arrow'), outFile: out, encoder, dtype: 'float32', batching: { sortByLength: false, tokenBudget: 256 } });
      expect(info.rows).to.equal(160);
      expect(info.padded_tokens).to.be.above(info.tokens);
    } finally {
      await encoder.dispose();
    }
    const tokens = await readTokens(path.join(result.stages[1].path, 'tokens.arrow'));
    const order: string[] = [];
    const sorted = await readAllFeatures(path.join(result.stages[2].path, FEATURES_FILE));
    for await (const batch of readFeatures(out)) {
      batch.id.forEach((id, i) => {
        order.push(id);
        expect(maxDiff(batch.features[i], Array.from({ length: batch.length[i] }, (_, t) => sorted.get(id)!.features.subarray(t * 32, t * 32 + 32)), 32)).to.be.at.most(1e-5);
      });
    }
    expect(order).to.deep.equal([...tokens.keys()]);
  });
});

describe('stages/encode parity with PyTorch (../shared imdb-bert-tiny)', () => {
  it('matches reference_output.json’s float32 last_hidden_state to 1e-4 through the stage’s Arrow file', async function () {
    const reference = requireShared.call(this, 'models/imdb-bert-tiny/reference_output.json');
    const model = path.dirname(reference);
    const items = (JSON.parse(await readFile(reference, 'utf8')) as { items: { text: string; input_ids: number[]; last_hidden_state: number[][] }[] }).items;
    expect(items.length).to.be.greaterThan(0);
    const dir = await tempDir();
    const data = path.join(dir, 'data');
    await mkdir(data);
    for (const split of ['train', 'test']) {
      // Labels and VALID_RATIO such that every split holds both classes (the data stage requires it).
      const lines = items.map((item, i) => JSON.stringify({ label: [0, 1, 1, 0][i % 4], text: item.text }));
      await writeText(path.join(data, `${split}.jsonl`), `${lines.join('\n')}\n`);
    }
    const file = await writeText(path.join(dir, 'exp.yaml'), `MODEL: ${JSON.stringify(model)}\nDATASET: ${JSON.stringify(data)}\nMAX_LENGTH: 512\nENCODER_DTYPE: float32\nVALID_RATIO: 0.5\n`);
    const result = await runStages(loadExperiment(file), STAGES, { cacheDir: path.join(dir, 'cache'), runsDir: path.join(dir, 'runs'), interactive: false, stream: devNull() });
    const [dataStep, tokenize, encode] = result.stages;
    // Rows are matched to reference items by their text.
    const texts = new Map<string, string>();
    for await (const batch of readArrowBatches(path.join(dataStep.path, 'data.arrow'))) {
      for (let i = 0; i < batch.numRows; i++) texts.set(batch.getChild('id')!.get(i), batch.getChild('text')!.get(i));
    }
    const tokens = await readTokens(path.join(tokenize.path, 'tokens.arrow'));
    const features = await readAllFeatures(path.join(encode.path, FEATURES_FILE));
    expect(features.size).to.equal(items.length * 2);
    const hidden = (encode.info as EncodeInfo).hidden_size;
    for (const [id, row] of features) {
      const item = items.find((it) => it.text === texts.get(id))!;
      expect(tokens.get(id), `${id}: tokenizer ids`).to.deep.equal(item.input_ids);
      expect(maxDiff(row.features, item.last_hidden_state, hidden), id).to.be.at.most(1e-4);
    }
  });
});
