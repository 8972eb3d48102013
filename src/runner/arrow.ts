import { close, open as openFd, writev } from 'node:fs';
import { open } from 'node:fs/promises';
import { promisify } from 'node:util';
import * as arrow from 'apache-arrow';

const openAsync = promisify(openFd);
const closeAsync = promisify(close);

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
 * Writes an Arrow IPC file record batch by record batch, with a bound on how far the file may lag
 * behind what was written to it.
 *
 * Why not a piped fs.WriteStream: apache-arrow's writer queues its output
 * without bound, and a piped stream drains about one chunk (one Arrow buffer) per event-loop turn. ONNX
 * Runtime runs a batch synchronously on the main thread, so a loop that alternates encoder runs and
 * writes gives the stream a turn or two per batch and the queue grows with the output (on full IMDB,
 * past 2 GiB of RSS). Here a pump takes every chunk off Arrow's queue as soon as it is queued
 * (microtasks) and hands all pending chunks to one writev in the thread pool, which proceeds while
 * the stage computes; `write` waits while more than `maxLagBytes` are pending.
 */
export class ArrowFileWriter {
  private readonly writer = new arrow.RecordBatchFileWriter();
  private pending: Uint8Array[] = [];
  private pendingBytes = 0;
  private writing = false;
  private failure: unknown;
  private waiters: (() => void)[] = [];
  private pump?: Promise<void>;
  private rows = 0;

  private constructor(
    private readonly fd: number,
    readonly schema: arrow.Schema,
    private readonly maxLagBytes: number,
  ) {}

  static async create(file: string, schema: arrow.Schema, options: { maxLagBytes?: number } = {}): Promise<ArrowFileWriter> {
    const w = new ArrowFileWriter(await openAsync(file, 'w'), schema, options.maxLagBytes ?? 64 * 2 ** 20);
    w.pump = (async () => {
      for await (const chunk of w.writer as AsyncIterable<Uint8Array>) {
        w.pending.push(chunk);
        w.pendingBytes += chunk.byteLength;
        w.flush();
      }
    })();
    return w;
  }

  /** Starts one writev of everything pending, unless one is under way. */
  private flush(): void {
    if (this.writing || this.failure !== undefined || this.pending.length === 0) return this.wake();
    const chunks = this.pending;
    this.pending = [];
    this.writing = true;
    writev(this.fd, chunks, (err, written) => {
      this.writing = false;
      if (err) {
        this.failure = err;
        return this.wake();
      }
      this.pendingBytes -= written;
      // A short write: the rest goes first next time.
      let skip = written;
      const rest: Uint8Array[] = [];
      for (const c of chunks) {
        if (skip >= c.byteLength) skip -= c.byteLength;
        else {
          rest.push(skip > 0 ? c.subarray(skip) : c);
          skip = 0;
        }
      }
      this.pending = [...rest, ...this.pending];
      this.flush();
    });
  }

  private wake(): void {
    const waiters = this.waiters;
    this.waiters = [];
    for (const w of waiters) w();
  }

  private async settle(limit: number): Promise<void> {
    while (this.failure === undefined && (this.pendingBytes > limit || (limit === 0 && this.writing))) {
      await new Promise<void>((resolve) => this.waiters.push(resolve));
    }
    if (this.failure !== undefined) throw this.failure;
  }

  /** Appends one record batch (`columns` in schema order), first waiting while too much is unwritten. */
  async write(columns: ColumnData[]): Promise<void> {
    await this.settle(this.maxLagBytes);
    const length = columns[0]?.length ?? 0;
    const struct = arrow.makeData({ type: new arrow.Struct(this.schema.fields), length, nullCount: 0, children: columns });
    this.writer.write(new arrow.RecordBatch(this.schema, struct));
    this.rows += length;
  }

  /** Writes the footer, waits until everything is in the file and closes it; returns the row count. */
  async close(): Promise<number> {
    try {
      this.writer.finish();
      await this.pump;
      await this.settle(0);
    } finally {
      await closeAsync(this.fd).catch(() => {});
    }
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

export { arrow };
