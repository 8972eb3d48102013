// ONNX's protobuf messages (onnx/onnx.proto, proto2), as a protobufjs descriptor: the fields this repo
// reads or writes when it rewrites an exported encoder (src/encoder/quantize.ts) and when tests build one.
// Messages are only partly described: code that rewrites a model keeps every other field's bytes as they
// are (see wireFields) instead of decoding and re-encoding the whole model.
import protobuf from 'protobufjs';

const DESCRIPTOR = {
  nested: {
    onnx: {
      nested: {
        AttributeProto: {
          fields: {
            name: { type: 'string', id: 1 },
            f: { type: 'float', id: 2 },
            i: { type: 'int64', id: 3 },
            s: { type: 'bytes', id: 4 },
            t: { type: 'TensorProto', id: 5 },
            floats: { rule: 'repeated', type: 'float', id: 7, options: { packed: false } },
            ints: { rule: 'repeated', type: 'int64', id: 8, options: { packed: false } },
            type: { type: 'int32', id: 20 },
          },
        },
        ValueInfoProto: {
          fields: {
            name: { type: 'string', id: 1 },
            type: { type: 'TypeProto', id: 2 },
          },
        },
        NodeProto: {
          fields: {
            input: { rule: 'repeated', type: 'string', id: 1 },
            output: { rule: 'repeated', type: 'string', id: 2 },
            name: { type: 'string', id: 3 },
            op_type: { type: 'string', id: 4 },
            attribute: { rule: 'repeated', type: 'AttributeProto', id: 5 },
            domain: { type: 'string', id: 7 },
          },
        },
        ModelProto: {
          fields: {
            ir_version: { type: 'int64', id: 1 },
            producer_name: { type: 'string', id: 2 },
            producer_version: { type: 'string', id: 3 },
            domain: { type: 'string', id: 4 },
            model_version: { type: 'int64', id: 5 },
            doc_string: { type: 'string', id: 6 },
            graph: { type: 'GraphProto', id: 7 },
            opset_import: { rule: 'repeated', type: 'OperatorSetIdProto', id: 8 },
          },
        },
        GraphProto: {
          fields: {
            node: { rule: 'repeated', type: 'NodeProto', id: 1 },
            name: { type: 'string', id: 2 },
            initializer: { rule: 'repeated', type: 'TensorProto', id: 5 },
            doc_string: { type: 'string', id: 10 },
            input: { rule: 'repeated', type: 'ValueInfoProto', id: 11 },
            output: { rule: 'repeated', type: 'ValueInfoProto', id: 12 },
          },
        },
        TensorProto: {
          fields: {
            dims: { rule: 'repeated', type: 'int64', id: 1, options: { packed: false } },
            data_type: { type: 'int32', id: 2 },
            name: { type: 'string', id: 8 },
            float_data: { rule: 'repeated', type: 'float', id: 4 },
            raw_data: { type: 'bytes', id: 9 },
            external_data: { rule: 'repeated', type: 'StringStringEntryProto', id: 13 },
            data_location: { type: 'int32', id: 14 },
          },
        },
        StringStringEntryProto: {
          fields: {
            key: { type: 'string', id: 1 },
            value: { type: 'string', id: 2 },
          },
        },
        TensorShapeProto: {
          fields: { dim: { rule: 'repeated', type: 'Dimension', id: 1 } },
          nested: {
            Dimension: {
              oneofs: { value: { oneof: ['dim_value', 'dim_param'] } },
              fields: {
                dim_value: { type: 'int64', id: 1 },
                dim_param: { type: 'string', id: 2 },
              },
            },
          },
        },
        TypeProto: {
          fields: { tensor_type: { type: 'Tensor', id: 1 } },
          nested: {
            Tensor: {
              fields: {
                elem_type: { type: 'int32', id: 1 },
                shape: { type: 'TensorShapeProto', id: 2 },
              },
            },
          },
        },
        OperatorSetIdProto: {
          fields: {
            domain: { type: 'string', id: 1 },
            version: { type: 'int64', id: 2 },
          },
        },
      },
    },
  },
};

let root: protobuf.Root | undefined;

/** One of ONNX's message types (ModelProto, GraphProto, NodeProto, TensorProto, ...). */
export function onnxProto(name: string): protobuf.Type {
  root ??= protobuf.Root.fromJSON(DESCRIPTOR);
  return root.lookupType(`onnx.${name}`);
}

/** TensorProto.DataType values used here. */
export const OnnxDataType = { float: 1, uint8: 2, int8: 3, int64: 7 } as const;

/** One field of a serialized message: its number, wire type, the bytes of the whole field and of its value (length-delimited only). */
export interface WireField {
  field: number;
  wireType: number;
  /** The field as it was written: tag and value. */
  bytes: Uint8Array;
  /** For length-delimited fields (wire type 2): the value without tag and length. */
  value: Uint8Array;
}

/** The top-level fields of a serialized message in order, each a view into `buf` (nothing is copied). */
export function wireFields(buf: Uint8Array): WireField[] {
  const reader = protobuf.Reader.create(buf);
  const out: WireField[] = [];
  while (reader.pos < reader.len) {
    const start = reader.pos;
    const tag = reader.uint32();
    const wireType = tag & 7;
    let value = buf.subarray(reader.pos, reader.pos);
    if (wireType === 2) {
      const length = reader.uint32();
      value = buf.subarray(reader.pos, reader.pos + length);
      reader.skip(length);
    } else {
      reader.skipType(wireType);
    }
    out.push({ field: tag >>> 3, wireType, bytes: buf.subarray(start, reader.pos), value });
  }
  return out;
}

/** A length-delimited field: tag, length, bytes. */
export function lengthDelimited(field: number, value: Uint8Array): Uint8Array {
  const writer = protobuf.Writer.create();
  writer.uint32((field << 3) | 2).bytes(value);
  return writer.finish();
}
