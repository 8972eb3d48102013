import { expect } from 'chai';
import { cp, readFile, readdir, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { onnxruntime } from '../../src/core/onnxruntime.js';
import { OnnxDataType, onnxProto, wireFields } from '../../src/core/onnx-proto.js';
import { loadEncoder } from '../../src/encoder/encoder.js';
import { QUANTIZED_ENTRIES, quantizeColumns, quantizeModel, quantizedEncoder } from '../../src/encoder/quantize.js';
import { tinyBert } from '../fixtures/tiny-bert.js';
import { tempDir } from '../helpers.js';
import { UserError } from '../../src/core/errors.js';

const floatBytes = (values: number[]) => new Uint8Array(Float32Array.from(values).buffer);

/** y = x·W + b for x [2, 3], W [3, 4] (kept in an external data file), b [4] behind an Identity, as torch exports shared constants. */
async function smallModel(dir: string, w: number[], b: number[]): Promise<Uint8Array> {
  await writeFile(path.join(dir, 'weights.bin'), floatBytes([0, 0, ...w])); // at offset 8
  const value = (name: string, dims: number[]) => ({ name, type: { tensor_type: { elem_type: OnnxDataType.float, shape: { dim: dims.map((d) => ({ dim_value: d })) } } } });
  const model = {
    ir_version: 8,
    producer_name: 'quantize-test',
    doc_string: 'kept as it was',
    opset_import: [{ domain: '', version: 14 }],
    graph: {
      name: 'small',
      node: [
        { op_type: 'Identity', name: 'alias', input: ['b_source'], output: ['b'] },
        { op_type: 'MatMul', name: 'mm', input: ['x', 'W'], output: ['m'] },
        { op_type: 'Add', name: 'add', input: ['b', 'm'], output: ['y'] },
      ],
      initializer: [
        {
          name: 'W',
          dims: [3, 4],
          data_type: OnnxDataType.float,
          data_location: 1,
          external_data: [
            { key: 'location', value: 'weights.bin' },
            { key: 'offset', value: '8' },
            { key: 'length', value: '48' },
          ],
        },
        { name: 'b_source', dims: [4], data_type: OnnxDataType.float, raw_data: floatBytes(b) },
      ],
      input: [value('x', [2, 3])],
      output: [value('y', [2, 4])],
    },
  };
  const ModelProto = onnxProto('ModelProto');
  return ModelProto.encode(ModelProto.fromObject(model)).finish();
}

describe('encoder: int8 quantization (ENCODER_QUANTIZE)', function () {
  this.timeout(300_000);

  it('quantizes a weight matrix per column: the scale is the column largest magnitude / 127, each value within half a step', () => {
    const rows = 5;
    const cols = 3;
    const w = Float32Array.from({ length: rows * cols }, (_, i) => Math.sin(i * 1.7) * (1 + (i % cols)));
    w[0 * cols + 2] = 0; // a zero and a column of zeros do not divide by zero
    const zeros = new Float32Array(rows * 2);
    const { q, scale } = quantizeColumns(w, rows, cols);
    for (let n = 0; n < cols; n++) {
      let max = 0;
      for (let k = 0; k < rows; k++) max = Math.max(max, Math.abs(w[k * cols + n]));
      expect(scale[n]).to.be.closeTo(max / 127, 1e-7);
      for (let k = 0; k < rows; k++) {
        expect(Math.abs(q[k * cols + n])).to.be.at.most(127);
        expect(Math.abs(q[k * cols + n] * scale[n] - w[k * cols + n])).to.be.at.most(scale[n] / 2 + 1e-7);
      }
    }
    const z = quantizeColumns(zeros, 2, 2);
    expect(Array.from(z.scale)).to.deep.equal([1, 1]);
    expect(Array.from(z.q)).to.deep.equal([0, 0, 0, 0]);
  });

  it('turns MatMul + bias Add into one DynamicQuantizeMatMul that ONNX Runtime runs, reading external data and Identity-shared constants', async () => {
    const dir = await tempDir();
    const w = [0.5, -1, 0.25, 2, -0.75, 0.1, 1.5, -2, 0.3, 0.9, -0.2, 1];
    const b = [0.1, -0.2, 0.3, -0.4];
    const { model, report } = await quantizeModel(await smallModel(dir, w, b), dir);
    expect(report).to.include({ matmuls: 1, biases: 1, floatBytes: 48 });

    const decoded = onnxProto('ModelProto').toObject(onnxProto('ModelProto').decode(model), { longs: Number }) as {
      doc_string: string;
      producer_name: string;
      opset_import: { domain?: string }[];
      graph: { node: { op_type: string; domain?: string; input: string[]; output: string[] }[]; initializer: { name: string; data_type: number }[] };
    };
    expect(decoded.doc_string).to.equal('kept as it was');
    expect(decoded.producer_name).to.equal('quantize-test');
    expect(decoded.opset_import.map((o) => o.domain ?? '')).to.include('com.microsoft');
    const ops = decoded.graph.node.map((n) => n.op_type);
    expect(ops).to.not.include('MatMul');
    expect(ops).to.not.include('Add');
    const fused = decoded.graph.node.find((n) => n.op_type === 'DynamicQuantizeMatMul')!;
    expect(fused).to.include({ domain: 'com.microsoft' });
    expect(fused.input).to.deep.equal(['x', 'W_int8', 'W_scale', '', 'b_source']);
    expect(fused.output).to.deep.equal(['y']);
    // The float weights are gone (the model is self-contained), replaced by int8 ones.
    expect(decoded.graph.initializer.map((i) => i.name).sort()).to.deep.equal(['W_int8', 'W_scale', 'b_source']);
    expect(decoded.graph.initializer.find((i) => i.name === 'W_int8')!.data_type).to.equal(OnnxDataType.int8);

    const ort = onnxruntime();
    const session = await ort.InferenceSession.create(model);
    const x = [1, 2, -1, 0.5, -0.25, 3];
    const { y } = await session.run({ x: new ort.Tensor('float32', Float32Array.from(x), [2, 3]) });
    const got = y.data as Float32Array;
    let worst = 0;
    for (let r = 0; r < 2; r++) {
      for (let n = 0; n < 4; n++) {
        let want = b[n];
        for (let k = 0; k < 3; k++) want += x[r * 3 + k] * w[k * 4 + n];
        worst = Math.max(worst, Math.abs(got[r * 4 + n] - want));
      }
    }
    // Within int8 rounding of both operands, and not bit-equal to float (it did quantize).
    expect(worst).to.be.greaterThan(0).and.below(0.1);
    await session.release();
  });

  it('leaves the model alone where there is nothing to quantize, keeping every byte of its other fields', async () => {
    const dir = await tempDir();
    const bytes = await smallModel(dir, new Array(12).fill(1), [0, 0, 0, 0]);
    // The same model without the MatMul's weight as an initializer: x·x is not a weight MatMul.
    const ModelProto = onnxProto('ModelProto');
    const m = ModelProto.toObject(ModelProto.decode(bytes), { longs: Number }) as { graph: { node: { input: string[] }[] } };
    m.graph.node[1].input = ['x', 'x'];
    const plain = ModelProto.encode(ModelProto.fromObject(m)).finish();
    const { model, report } = await quantizeModel(plain, dir);
    expect(report.matmuls).to.equal(0);
    // Only the com.microsoft opset entry is added at the end; the graph's fields are the same bytes.
    const before = wireFields(plain);
    const after = wireFields(model);
    expect(Buffer.from(after.find((f) => f.field === 7)!.value).equals(Buffer.from(before.find((f) => f.field === 7)!.value))).to.equal(true);
  });

  it('the tiny BERT quantized: every linear layer is int8, and its features stay close to float32', async () => {
    const source = await tinyBert();
    const dir = await tempDir();
    const { model, report } = await quantizeModel(await readFile(path.join(source, 'onnx/model.onnx')));
    expect(report.matmuls).to.be.greaterThan(0);
    expect(report.biases).to.equal(report.matmuls);
    await cp(source, dir, { recursive: true });
    await writeFile(path.join(dir, 'onnx/model.onnx'), model);
    const float = await loadEncoder(source, { device: 'cpu' });
    const int8 = await loadEncoder(dir, { device: 'cpu' });
    const rows = [
      [2, 10, 11, 12, 13, 3],
      [2, 14, 15, 3],
    ];
    const a = await float.encode(rows);
    const b = await int8.encode(rows);
    let worst = 0;
    let scale = 0;
    a.forEach((row, i) => row.forEach((v, j) => ((worst = Math.max(worst, Math.abs(v - b[i][j]))), (scale = Math.max(scale, Math.abs(v))))));
    expect(worst).to.be.greaterThan(0);
    expect(worst / scale).to.be.below(0.1);
    await float.dispose();
    await int8.dispose();
  });

  it('keeps the quantized encoder in the cache: made once, reused, and remade when its entry is damaged', async () => {
    const source = await tinyBert();
    const cacheRoot = await tempDir();
    const logs: string[] = [];
    expect((await quantizedEncoder(source, 'none', cacheRoot)).dir).to.equal(source);
    const first = await quantizedEncoder(source, 'int8', cacheRoot, (m) => logs.push(m));
    expect(first.produced).to.equal(true);
    expect(path.dirname(first.dir)).to.equal(path.join(cacheRoot, QUANTIZED_ENTRIES));
    expect((await readdir(path.join(first.dir, 'onnx'))).sort()).to.deep.equal(['model.onnx']);
    expect(logs.join('\n')).to.match(/quantized the encoder to int8: \d+ MatMuls/);
    const again = await quantizedEncoder(source, 'int8', cacheRoot);
    expect(again).to.deep.equal({ dir: first.dir, produced: false });

    const file = path.join(first.dir, 'onnx/model.onnx');
    const good = await readFile(file);
    await writeFile(file, good.subarray(0, good.length - 10));
    const warnings: string[] = [];
    const remade = await quantizedEncoder(source, 'int8', cacheRoot, (m) => warnings.push(m));
    expect(remade.produced).to.equal(true);
    expect(remade.dir).to.equal(first.dir);
    expect(warnings.join('\n')).to.match(/warning: .*model\.onnx/);
    expect((await readFile(file)).equals(good)).to.equal(true);
  });

  it('a model file that is not ONNX is a UserError naming the file, and leaves no entry', async () => {
    const source = await tempDir();
    await cp(await tinyBert(), source, { recursive: true });
    await writeFile(path.join(source, 'onnx/model.onnx'), Buffer.from('\x0a\xff\xff\xff\xff\x0fnot a model'));
    const cacheRoot = await tempDir();
    const error = await quantizedEncoder(source, 'int8', cacheRoot).then(
      () => undefined,
      (e: unknown) => e,
    );
    expect(error).to.be.instanceOf(UserError);
    expect((error as Error).message).to.match(/ENCODER_QUANTIZE: int8: cannot quantize .*onnx\/model\.onnx/);
    expect((await readdir(path.join(cacheRoot, QUANTIZED_ENTRIES))).filter((e) => /^[0-9a-f]{64}$/.test(e))).to.deep.equal([]);
  });
});
