/**
 * A small writer for ONNX models (ModelProto), enough for the GRU kernel's graphs: nodes with int,
 * ints, float, string and subgraph attributes, int64 constants, and typed inputs and outputs with fixed or
 * symbolic dims. Field numbers are onnx/onnx.proto's. Hand-written, from before src/core/onnx-proto.ts
 * (protobufjs) existed for the quantizer; these graphs are a few hundred bytes.
 */

const utf8 = new TextEncoder();

function varint(n: number | bigint): number[] {
  let v = BigInt.asUintN(64, BigInt(n)); // negative int64 values are 10-byte two's complement varints
  const out: number[] = [];
  while (v > 0x7fn) {
    out.push(Number(v & 0x7fn) | 0x80);
    v >>= 7n;
  }
  out.push(Number(v));
  return out;
}

const fieldVarint = (field: number, value: number | bigint): number[] => [...varint(field << 3), ...varint(value)];
const fieldBytes = (field: number, bytes: ArrayLike<number>): number[] => [...varint((field << 3) | 2), ...varint(bytes.length), ...Array.from(bytes)];
const fieldString = (field: number, s: string): number[] => fieldBytes(field, utf8.encode(s));

export const TensorType = { float: 1, int32: 6, int64: 7, bool: 9 } as const;
export type ElementType = keyof typeof TensorType;

/** A dimension: a size, a symbolic name, or null for unknown. */
export type Dim = number | string | null;

/** ValueInfoProto; `dims` undefined = rank unknown (allowed for subgraph values). */
function valueInfo(name: string, type: ElementType, dims?: Dim[]): number[] {
  const shape = dims?.flatMap((d) => fieldBytes(1, d === null ? [] : typeof d === 'number' ? fieldVarint(1, d) : fieldString(2, d)));
  const tensorType = [...fieldVarint(1, TensorType[type]), ...(shape ? fieldBytes(2, shape) : [])];
  return [...fieldString(1, name), ...fieldBytes(2, fieldBytes(1, tensorType))];
}

export type Attribute = number | number[] | string | { float: number } | Graph;

const ATTR = { float: 1, int: 2, string: 3, graph: 5, ints: 7 } as const;

function attribute(name: string, value: Attribute): number[] {
  const head = fieldString(1, name);
  if (typeof value === 'number') return [...head, ...fieldVarint(3, value), ...fieldVarint(20, ATTR.int)];
  if (typeof value === 'string') return [...head, ...fieldString(4, value), ...fieldVarint(20, ATTR.string)];
  if (Array.isArray(value)) return [...head, ...value.flatMap((v) => fieldVarint(8, v)), ...fieldVarint(20, ATTR.ints)];
  if (value instanceof Graph) return [...head, ...fieldBytes(6, value.encode()), ...fieldVarint(20, ATTR.graph)];
  const f = new Uint8Array(new Float32Array([value.float]).buffer);
  return [...head, ...varint((2 << 3) | 5), ...f, ...fieldVarint(20, ATTR.float)];
}

/** A graph under construction; `op` returns its output names so graphs read like the formulas. */
export class Graph {
  private readonly nodes: number[][] = [];
  private readonly initializers: number[][] = [];
  private readonly inputs: number[][] = [];
  private readonly outputs: number[][] = [];
  private counter = 0;

  constructor(readonly name: string) {}

  input(name: string, type: ElementType = 'float', dims?: Dim[]): string {
    this.inputs.push(valueInfo(name, type, dims));
    return name;
  }

  output(name: string, type: ElementType = 'float', dims?: Dim[]): void {
    this.outputs.push(valueInfo(name, type, dims));
  }

  /** A constant int64 tensor (shapes, axes, split sizes, pads). */
  int64s(values: number[], name = `${this.name}/c${this.counter++}`): string {
    const tensor = [...fieldVarint(1, values.length), ...fieldVarint(2, TensorType.int64), ...values.flatMap((v) => fieldVarint(7, v)), ...fieldString(8, name)];
    this.initializers.push(tensor);
    return name;
  }

  /** A constant float scalar. */
  scalar(value: number, name = `${this.name}/c${this.counter++}`): string {
    const tensor = [...fieldVarint(2, TensorType.float), ...fieldBytes(9, new Uint8Array(new Float32Array([value]).buffer)), ...fieldString(8, name)];
    this.initializers.push(tensor);
    return name;
  }

  /** One node; `outputs` is a count (names are generated, prefixed by the graph's name, so a subgraph's never shadow its parent's) or explicit names. */
  op(type: string, inputs: string[], attributes: Record<string, Attribute> = {}, outputs: number | string[] = 1): string[] {
    const names = typeof outputs === 'number' ? Array.from({ length: outputs }, () => `${this.name}/${type}${this.counter++}`) : outputs;
    this.nodes.push([
      ...inputs.flatMap((i) => fieldString(1, i)),
      ...names.flatMap((o) => fieldString(2, o)),
      ...fieldString(3, `${this.name}/n${this.nodes.length}`),
      ...fieldString(4, type),
      ...Object.entries(attributes).flatMap(([k, v]) => fieldBytes(5, attribute(k, v))),
    ]);
    return names;
  }

  /** A node with one output. */
  op1(type: string, inputs: string[], attributes: Record<string, Attribute> = {}, output?: string): string {
    return this.op(type, inputs, attributes, output ? [output] : 1)[0];
  }

  encode(): number[] {
    return [
      ...this.nodes.flatMap((n) => fieldBytes(1, n)),
      ...fieldString(2, this.name),
      ...this.initializers.flatMap((t) => fieldBytes(5, t)),
      ...this.inputs.flatMap((v) => fieldBytes(11, v)),
      ...this.outputs.flatMap((v) => fieldBytes(12, v)),
    ];
  }
}

export const OPSET = 17;

/** ModelProto bytes for a graph, default ONNX domain at OPSET. */
export function encodeModel(graph: Graph): Uint8Array {
  return Uint8Array.from([
    ...fieldVarint(1, 8), // ir_version
    ...fieldString(2, 'sentiment'),
    ...fieldBytes(7, graph.encode()),
    ...fieldBytes(8, [...fieldString(1, ''), ...fieldVarint(2, OPSET)]), // opset_import
  ]);
}
