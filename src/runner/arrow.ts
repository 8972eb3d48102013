import { createWriteStream } from 'node:fs';
import { open } from 'node:fs/promises';
import { finished } from 'node:stream/promises';
import * as arrow from 'apache-arrow';

/** A column for one record batch, built from typed arrays without per-value boxing. */
export type ColumnData = arrow.Data;

export function int32Column(values: Int32Array): ColumnData {
  return arrow.makeData({ type: new arrow.Int32(), length: values.length, nullCount: 0, data: values });
}

export function int8Column(values: Int8Array): ColumnData {
  return arrow.makeData({ type: new arrow.Int8(), length: values.length, nullCount: 0, data: values });
}

export function utf8Column(values: string[]): ColumnData {
  return arrow.vectorFromArray(values, new arrow.Utf8()).data[0];
}

/** List<Int32> from flat values and row offsets (offsets.length = rows + 1). */
export function int32ListColumn(values: Int32Array, offsets: Int32Array): ColumnData {
  const child = arrow.makeData({ type: new arrow.Int32(), length: values.length, nullCount: 0, data: values });
  return arrow.makeData({
    type: new arrow.List(new arrow.Field('item', new arrow.Int32(), false)),
    length: offsets.length - 1,
    nullCount: 0,
    valueOffsets: offsets,
    child,
  });
}

/**
 * Writes an Arrow IPC file (readable by pyarrow, polars, DuckDB) one record batch at a time, so memory
 * is bounded by the batch.
 */
export class ArrowFileWriter {
  private readonly writer = new arrow.RecordBatchFileWriter();
  private readonly out: ReturnType<typeof createWriteStream>;
  private rows = 0;

  constructor(
    file: string,
    readonly schema: arrow.Schema,
  ) {
    this.out = createWriteStream(file);
    this.writer.toNodeStream().pipe(this.out);
  }

  /** Appends one record batch; `columns` in schema order. */
  write(columns: ColumnData[]): void {
    const length = columns[0]?.length ?? 0;
    const struct = arrow.makeData({ type: new arrow.Struct(this.schema.fields), length, nullCount: 0, children: columns });
    this.writer.write(new arrow.RecordBatch(this.schema, struct));
    this.rows += length;
  }

  /** Resolves once the file is completely on disk; returns the row count. */
  async close(): Promise<number> {
    this.writer.finish();
    await finished(this.out);
    return this.rows;
  }
}

/** Reads an Arrow IPC file record batch by record batch. */
export async function* readArrowBatches(file: string): AsyncGenerator<arrow.RecordBatch> {
  const handle = await open(file);
  try {
    const reader = await arrow.RecordBatchReader.from(handle);
    for await (const batch of reader) yield batch;
  } finally {
    await handle.close();
  }
}

/** Row count and schema of an Arrow IPC file, from its footer. */
export async function arrowFileInfo(file: string): Promise<{ rows: number; batches: number; schema: arrow.Schema }> {
  const handle = await open(file);
  try {
    const reader = await arrow.RecordBatchReader.from(handle);
    await reader.open();
    let rows = 0;
    let batches = 0;
    for await (const batch of reader) {
      rows += batch.numRows;
      batches++;
    }
    return { rows, batches, schema: reader.schema };
  } finally {
    await handle.close();
  }
}

export { arrow };
