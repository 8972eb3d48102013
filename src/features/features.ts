import { arrow, readArrowBatches, type ColumnData } from '../core/arrow.js';
import { float16ArrayToFloat32 } from '../core/float16.js';

/**
 * The features file the encode stage writes and training reads: per row its id, split, label,
 * length and one vector of the encoder's width per real token.
 */
export const FEATURES_FILE = 'features.arrow';
export type EncoderDtype = 'float16' | 'float32';

/**
 * `features`: one vector of `hidden` values per real token of the row (no padding), so a row's list
 * has `length` entries.
 */
export function featuresSchema(hidden: number, dtype: EncoderDtype): arrow.Schema {
  const value = dtype === 'float16' ? new arrow.Float16() : new arrow.Float32();
  const vector = new arrow.FixedSizeList(hidden, new arrow.Field('item', value, false));
  return new arrow.Schema([
    new arrow.Field('id', new arrow.Utf8(), false),
    new arrow.Field('split', new arrow.Utf8(), false),
    new arrow.Field('label', new arrow.Int8(), false),
    new arrow.Field('length', new arrow.Int32(), false),
    new arrow.Field('features', new arrow.List(new arrow.Field('item', vector, false)), false),
  ]);
}

/** List<FixedSizeList<Float16|Float32>> from flat values and per-row token offsets. */
export function featuresColumn(schema: arrow.Schema, values: Uint16Array | Float32Array, tokenOffsets: Int32Array): ColumnData {
  const listType = schema.fields[4].type as arrow.List<arrow.FixedSizeList>;
  const vectorType = listType.children[0].type as arrow.FixedSizeList;
  const valueType = vectorType.children[0].type;
  const tokens = tokenOffsets[tokenOffsets.length - 1];
  const leaf = arrow.makeData({ type: valueType as arrow.Float, length: values.length, nullCount: 0, data: values as never });
  const vectors = arrow.makeData({ type: vectorType, length: tokens, nullCount: 0, child: leaf });
  return arrow.makeData({ type: listType, length: tokenOffsets.length - 1, nullCount: 0, valueOffsets: tokenOffsets, child: vectors });
}

/** One record batch of features.arrow, features decoded to float32. */
export interface FeatureBatch {
  id: string[];
  split: string[];
  label: Int8Array;
  length: Int32Array;
  /** Values per token: the encoder's width (BERT's hidden_size), the head's input size. */
  width: number;
  dtype: EncoderDtype;
  /** Per row: length × hidden float32 values (views into one buffer per batch). */
  features: Float32Array[];
}

/** Decodes one record batch of features.arrow (float16 to float32). */
export function decodeFeatureBatch(batch: arrow.RecordBatch): FeatureBatch {
  const list = batch.getChild('features')!.data[0];
  const vectors = list.children[0];
  const leaf = vectors.children[0];
  const hidden = (vectors.type as arrow.FixedSizeList).listSize;
  const dtype: EncoderDtype = leaf.type.typeId === arrow.Type.Float && (leaf.type as arrow.Float).precision === arrow.Precision.HALF ? 'float16' : 'float32';
  const offsets = (list.valueOffsets as Int32Array).subarray(list.offset, list.offset + batch.numRows + 1);
  const first = offsets[0];
  const start = (vectors.offset + first) * hidden + leaf.offset;
  const end = (vectors.offset + offsets[batch.numRows]) * hidden + leaf.offset;
  const raw = leaf.values as Uint16Array | Float32Array;
  const values = dtype === 'float16' ? float16ArrayToFloat32((raw as Uint16Array).subarray(start, end)) : (raw as Float32Array).subarray(start, end);
  const features: Float32Array[] = [];
  for (let i = 0; i < batch.numRows; i++) features.push(values.subarray((offsets[i] - first) * hidden, (offsets[i + 1] - first) * hidden));
  return {
    id: batch.getChild('id')!.toArray() as string[],
    split: batch.getChild('split')!.toArray() as string[],
    label: Int8Array.from(batch.getChild('label')!.toArray() as Int8Array),
    length: Int32Array.from(batch.getChild('length')!.toArray() as Int32Array),
    width: hidden,
    dtype,
    features,
  };
}

/** Reads features.arrow record batch by record batch (memory bounded by one batch), decoding float16. */
export async function* readFeatures(file: string): AsyncGenerator<FeatureBatch> {
  for await (const batch of readArrowBatches(file)) yield decodeFeatureBatch(batch);
}

export interface FeatureRow {
  id: string;
  split: string;
  label: number;
  length: number;
  /** length × hidden float32 values. */
  features: Float32Array;
}

/** readFeatures, one row at a time. */
export async function* readFeatureRows(file: string): AsyncGenerator<FeatureRow> {
  for await (const b of readFeatures(file)) {
    for (let i = 0; i < b.id.length; i++) yield { id: b.id[i], split: b.split[i], label: b.label[i], length: b.length[i], features: b.features[i] };
  }
}
