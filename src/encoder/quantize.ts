// ENCODER_QUANTIZE: int8 — the encoder's weight matrices as 8-bit integers, what ONNX Runtime's dynamic
// quantization does (onnxruntime.quantization.quantize_dynamic, which is Python only): each MatMul whose
// second input is a float weight matrix becomes a com.microsoft DynamicQuantizeMatMul that quantizes its
// activations to uint8 per call and multiplies them with the weights stored as int8, one scale per output
// column (symmetric, zero point 0), adding the following bias Add when there is one. The rest of the graph
// stays float32. The model's other bytes are copied as they are (see wireFields), so fields this file does
// not describe survive.
import { copyFile, mkdir, open, readFile, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { Cache } from '../core/cache.js';
import { UserError, messageOf } from '../core/errors.js';
import { formatBytes } from '../core/format.js';
import { fingerprintFiles } from '../core/fingerprint.js';
import { OnnxDataType, lengthDelimited, onnxProto, wireFields, type WireField } from '../core/onnx-proto.js';
import type { Experiment } from '../config/experiment.js';
import { encoderFiles } from './encoder.js';

export type QuantizeSetting = Experiment['ENCODER_QUANTIZE'];

/** Bumped when the rewrite changes what it writes: part of the quantized entry's key and of encode's. */
export const QUANTIZER_VERSION = 1;

/** Cache folder of quantized encoders (an entry per source model and method, validated on load like a stage's). */
export const QUANTIZED_ENTRIES = 'quantize';

/** Largest weight magnitude: 127 (int8, symmetric). */
const QMAX = 127;

interface Tensor {
  name: string;
  dims: number[];
  data_type: number;
  raw_data?: Uint8Array;
  float_data?: number[];
  external_data?: { key: string; value: string }[];
  data_location?: number;
}

interface Node {
  input: string[];
  output: string[];
  name?: string;
  op_type: string;
  domain?: string;
  attribute?: { name: string; ints?: number[] }[];
}

export interface QuantizeReport {
  /** MatMuls replaced by DynamicQuantizeMatMul. */
  matmuls: number;
  /** Of those, with their bias Add folded in. */
  biases: number;
  /** Float weights (bytes) replaced by int8 ones. */
  floatBytes: number;
  int8Bytes: number;
}

/** Whether `node` is one of the default domain's `ops` (not a com.microsoft or other custom op of the same name). */
const isOnnxOp = (node: Node | undefined, ...ops: string[]): boolean => node !== undefined && ops.includes(node.op_type) && (node.domain ?? '') === '';

/** The float values of an initializer: raw_data, float_data, or external data next to the model. */
async function floatsOf(t: Tensor, modelDir: string | undefined): Promise<Float32Array> {
  const count = t.dims.reduce((a, b) => a * Number(b), 1);
  if (t.data_location === 1) {
    const entry = (k: string) => t.external_data?.find((e) => e.key === k)?.value;
    const location = entry('location');
    if (!location || !modelDir) throw new Error(`initializer ${t.name}: external data without a location`);
    // Only this tensor's bytes: one external file usually holds every weight of the model.
    const values = new Float32Array(count);
    const handle = await open(path.join(modelDir, location));
    try {
      const { bytesRead } = await handle.read(new Uint8Array(values.buffer), 0, count * 4, Number(entry('offset') ?? 0));
      if (bytesRead !== count * 4) throw new Error(`initializer ${t.name}: ${location} ends after ${bytesRead} of its ${count * 4} bytes`);
    } finally {
      await handle.close();
    }
    return values;
  }
  if (t.raw_data && t.raw_data.length > 0) {
    if (t.raw_data.length !== count * 4) throw new Error(`initializer ${t.name}: ${t.raw_data.length} bytes for ${count} floats`);
    return new Float32Array(Uint8Array.from(t.raw_data).buffer);
  }
  if (t.float_data && t.float_data.length === count) return Float32Array.from(t.float_data);
  throw new Error(`initializer ${t.name}: no data`);
}

/** Weights [K, N] as int8 with a scale per column N: w ≈ q × scale. */
export function quantizeColumns(w: Float32Array, rows: number, cols: number): { q: Int8Array; scale: Float32Array } {
  const scale = new Float32Array(cols);
  for (let k = 0; k < rows; k++) for (let n = 0; n < cols; n++) scale[n] = Math.max(scale[n], Math.abs(w[k * cols + n]));
  for (let n = 0; n < cols; n++) scale[n] = scale[n] > 0 ? Math.fround(scale[n] / QMAX) : 1;
  const q = new Int8Array(rows * cols);
  for (let k = 0; k < rows; k++) {
    for (let n = 0; n < cols; n++) q[k * cols + n] = Math.max(-QMAX, Math.min(QMAX, Math.round(w[k * cols + n] / scale[n])));
  }
  return { q, scale };
}

/**
 * Rewrites a serialized ONNX model (the bytes of model.onnx; `modelDir` for external data) with its
 * weight MatMuls quantized to int8. Only the main graph is rewritten (not the subgraphs of If/Loop).
 */
export async function quantizeModel(model: Uint8Array, modelDir?: string): Promise<{ model: Uint8Array; report: QuantizeReport }> {
  const NodeProto = onnxProto('NodeProto');
  const TensorProto = onnxProto('TensorProto');
  const OperatorSetIdProto = onnxProto('OperatorSetIdProto');
  const top = wireFields(model);
  const graphField = top.find((f) => f.field === 7);
  if (!graphField) throw new Error('the model has no graph');
  const graph = wireFields(graphField.value);

  // What the graph holds: its nodes (decoded for their op, inputs and outputs), initializers, outputs.
  const nodes = graph.filter((f) => f.field === 1).map((f) => ({ field: f, node: NodeProto.toObject(NodeProto.decode(f.value), { longs: Number, defaults: true }) as Node }));
  const initializers = new Map<string, { field: WireField; tensor: Tensor }>();
  const initializerAt = new Map<WireField, string>();
  for (const f of graph.filter((g) => g.field === 5)) {
    const tensor = TensorProto.toObject(TensorProto.decode(f.value), { longs: Number, defaults: true }) as Tensor;
    initializers.set(tensor.name, { field: f, tensor });
    initializerAt.set(f, tensor.name);
  }
  const ValueInfoProto = onnxProto('ValueInfoProto');
  const valueName = (f: WireField) => (ValueInfoProto.decode(f.value) as unknown as { name: string }).name;
  const graphInputs = graph.filter((f) => f.field === 11).map(valueName);
  const graphOutputs = new Set(graph.filter((f) => f.field === 12).map(valueName));
  const consumers = new Map<string, Node[]>();
  for (const { node } of nodes) for (const input of node.input) consumers.set(input, [...(consumers.get(input) ?? []), node]);

  // Exporters share equal constants through Identity nodes (torch does, for example all-zero biases):
  // such a value is read from the initializer behind it.
  const identityOf = new Map(nodes.filter(({ node }) => isOnnxOp(node, 'Identity')).map(({ node }) => [node.output[0], node.input[0]]));
  const resolve = (name: string) => {
    for (let hops = 0; !initializers.has(name) && identityOf.has(name) && hops < 16; hops++) name = identityOf.get(name)!;
    return name;
  };
  const isMatrix = (name: string) => {
    const t = initializers.get(name)?.tensor;
    return t !== undefined && t.data_type === OnnxDataType.float && t.dims.length === 2;
  };
  // Some exporters keep a Linear's weight as [out, in] and transpose it in the graph: read through that too.
  const transposed = new Map(
    nodes
      .filter(({ node }) => isOnnxOp(node, 'Transpose') && isMatrix(resolve(node.input[0])))
      .filter(({ node }) => {
        const perm = node.attribute?.find((a) => a.name === 'perm')?.ints?.map(Number);
        return perm === undefined || (perm[0] === 1 && perm[1] === 0);
      })
      .map(({ node }) => [node.output[0], resolve(node.input[0])]),
  );
  /** The weight matrix [K, N] a MatMul's second input is, if it is one: an initializer, as it is or transposed. */
  const weightOf = (input: string): { name: string; source: string; rows: number; cols: number; values: () => Promise<Float32Array> } | undefined => {
    const name = resolve(input);
    if (isMatrix(name)) {
      const t = initializers.get(name)!.tensor;
      const [rows, cols] = t.dims.map(Number);
      return { name, source: name, rows, cols, values: () => floatsOf(t, modelDir) };
    }
    const source = transposed.get(name);
    if (source === undefined) return undefined;
    const t = initializers.get(source)!.tensor;
    const [cols, rows] = t.dims.map(Number);
    return {
      name: `${source}_T`,
      source,
      rows,
      cols,
      async values() {
        const w = await floatsOf(t, modelDir);
        const out = new Float32Array(rows * cols);
        for (let n = 0; n < cols; n++) for (let k = 0; k < rows; k++) out[k * cols + n] = w[n * rows + k];
        return out;
      },
    };
  };
  const replaced = new Map<Node, Node>();
  const folded = new Set<Node>();
  const quantized = new Map<string, { q: string; scale: string }>();
  /** The float initializers behind quantized weights. */
  const weightSources = new Set<string>();
  const added: Uint8Array[] = [];
  const report: QuantizeReport = { matmuls: 0, biases: 0, floatBytes: 0, int8Bytes: 0 };
  for (const { node } of nodes) {
    if (!isOnnxOp(node, 'MatMul') || node.input.length !== 2) continue;
    const a = node.input[0];
    const weight = weightOf(node.input[1]);
    if (weight === undefined || initializers.has(resolve(a))) continue;
    const { name: b, rows, cols } = weight;
    weightSources.add(weight.source);
    if (!quantized.has(b)) {
      const { q, scale } = quantizeColumns(await weight.values(), rows, cols);
      const names = { q: `${b}_int8`, scale: `${b}_scale` };
      for (const n of Object.values(names)) if (initializers.has(n)) throw new Error(`cannot quantize ${b}: ${n} exists`);
      added.push(lengthDelimited(5, TensorProto.encode(TensorProto.fromObject({ name: names.q, dims: [rows, cols], data_type: OnnxDataType.int8, raw_data: new Uint8Array(q.buffer) })).finish()));
      added.push(lengthDelimited(5, TensorProto.encode(TensorProto.fromObject({ name: names.scale, dims: [cols], data_type: OnnxDataType.float, raw_data: new Uint8Array(scale.buffer) })).finish()));
      quantized.set(b, names);
      report.floatBytes += rows * cols * 4;
      report.int8Bytes += rows * cols + cols * 4;
    }
    const names = quantized.get(b)!;
    // A bias Add that only this MatMul feeds: folded in (its output becomes the fused node's).
    const next = consumers.get(node.output[0]) ?? [];
    const add = next.length === 1 && !graphOutputs.has(node.output[0]) ? next[0] : undefined;
    const biasInput = isOnnxOp(add, 'Add') ? add!.input.find((i) => i !== node.output[0]) : undefined;
    const bias = biasInput !== undefined ? resolve(biasInput) : undefined;
    const biasTensor = bias !== undefined ? initializers.get(bias)?.tensor : undefined;
    const foldBias = add !== undefined && biasTensor !== undefined && biasTensor.data_type === OnnxDataType.float && biasTensor.dims.length === 1 && Number(biasTensor.dims[0]) === cols;
    replaced.set(node, {
      name: `${node.name ?? node.output[0]}_int8`,
      op_type: 'DynamicQuantizeMatMul',
      domain: 'com.microsoft',
      input: [a, names.q, names.scale, '', ...(foldBias ? [bias!] : [])],
      output: foldBias ? add!.output : node.output,
    });
    if (foldBias) {
      folded.add(add!);
      report.biases++;
    }
    report.matmuls++;
  }

  // What the float weights leave behind: the Identity and Transpose nodes that fed only replaced MatMuls
  // go, and so do the float initializers no remaining node reads. Not when the graph has subgraphs,
  // whose nodes (not decoded here) may read an initializer of this graph by name.
  const graphValues = new Set([...graphInputs, ...graphOutputs]);
  const hasSubgraphs = nodes.some(({ node }) => ['If', 'Loop', 'Scan'].includes(node.op_type));
  const dropped = new Set<Node>(folded);
  const used = new Set<string>(graphValues);
  for (let changed = true; changed; ) {
    changed = false;
    used.clear();
    graphValues.forEach((v) => used.add(v));
    for (const { node } of nodes) if (!dropped.has(node)) for (const input of (replaced.get(node) ?? node).input) used.add(input);
    for (const { node } of nodes) {
      if (dropped.has(node) || hasSubgraphs || !isOnnxOp(node, 'Identity', 'Transpose')) continue;
      if (node.output.every((o) => !used.has(o)) && weightSources.has(resolve(node.input[0]))) {
        dropped.add(node);
        changed = true;
      }
    }
  }

  const parts: Uint8Array[] = [];
  const nodeOf = new Map(nodes.map((n) => [n.field, n.node]));
  for (const f of graph) {
    if (f.field === 1) {
      const node = nodeOf.get(f)!;
      if (dropped.has(node)) continue;
      const replacement = replaced.get(node);
      parts.push(replacement ? lengthDelimited(1, NodeProto.encode(NodeProto.fromObject(replacement)).finish()) : f.bytes);
    } else if (f.field === 5) {
      const name = initializerAt.get(f)!;
      if (weightSources.has(name) && !used.has(name) && !hasSubgraphs) continue;
      parts.push(f.bytes);
    } else {
      parts.push(f.bytes);
    }
  }
  parts.push(...added);
  const newGraph = Buffer.concat(parts);

  const out: Uint8Array[] = [];
  const opsets = top.filter((f) => f.field === 8).map((f) => OperatorSetIdProto.decode(f.value) as unknown as { domain?: string });
  for (const f of top) out.push(f.field === 7 ? lengthDelimited(7, newGraph) : f.bytes);
  if (!opsets.some((o) => o.domain === 'com.microsoft')) out.push(lengthDelimited(8, OperatorSetIdProto.encode(OperatorSetIdProto.fromObject({ domain: 'com.microsoft', version: 1 })).finish()));
  return { model: Buffer.concat(out), report };
}

/**
 * The encoder of the model folder `dir` as ENCODER_QUANTIZE asks: `dir` itself for none; for int8, a folder
 * in the cache holding config.json and onnx/model.onnx quantized, made once per source model (keyed by its
 * files' content and QUANTIZER_VERSION) under its lock, and validated on every use like a stage's entry.
 */
export async function quantizedEncoder(
  dir: string,
  setting: QuantizeSetting,
  cacheRoot: string,
  log: (message: string) => void = () => {},
): Promise<{ dir: string; produced: boolean; report?: QuantizeReport }> {
  if (setting === 'none') return { dir, produced: false };
  const fingerprints = await fingerprintFiles(encoderFiles(dir), dir, path.join(cacheRoot, 'fingerprints.json'));
  const cache = new Cache(cacheRoot, { warn: (m) => log(`warning: ${m}`) });
  let report: QuantizeReport | undefined;
  const entry = await cache.compute(
    { stage: QUANTIZED_ENTRIES, version: QUANTIZER_VERSION, config: { ENCODER_QUANTIZE: setting }, upstream: {}, inputs: { encoder: fingerprints } },
    async (tmp) => {
      const source = path.join(dir, 'onnx/model.onnx');
      let result: Awaited<ReturnType<typeof quantizeModel>>;
      try {
        result = await quantizeModel(await readFile(source), path.dirname(source));
      } catch (e) {
        throw new UserError(`ENCODER_QUANTIZE: int8: cannot quantize ${source}: it is not an ONNX model this can read (${messageOf(e)})`, [], { cause: e });
      }
      if (result.report.matmuls === 0) throw new UserError(`ENCODER_QUANTIZE: int8: ${source} has no MatMul with a float weight matrix to quantize`);
      await mkdir(path.join(tmp, 'onnx'), { recursive: true });
      await writeFile(path.join(tmp, 'onnx/model.onnx'), result.model);
      await copyFile(path.join(dir, 'config.json'), path.join(tmp, 'config.json'));
      report = result.report;
      log(
        `quantized the encoder to int8: ${result.report.matmuls} MatMuls (${result.report.biases} with their bias), weights ${formatBytes(result.report.floatBytes)} → ${formatBytes(result.report.int8Bytes)}`,
      );
      return { ...result.report, setting, quantizer_version: QUANTIZER_VERSION };
    },
  );
  return { dir: entry.dir, produced: entry.produced, ...(report && { report }) };
}
