import { close, open as openFd, writev } from 'node:fs';
import { open } from 'node:fs/promises';
import { promisify } from 'node:util';
import * as arrow from 'apache-arrow';
import { DamagedEntryError, messageOf } from './errors.js';

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

const MAGIC = Buffer.from('ARROW1');

/**
 * Reads an Arrow IPC file record batch by record batch. A file that is not a complete Arrow IPC file
 * (truncated, overwritten, missing) is a DamagedEntryError naming it, never apache-arrow's own error: the
 * pipeline then recomputes the cache entry holding it. The magic bytes at both ends are checked first,
 * because apache-arrow falls back to reading a file without them as a stream, which can loop on garbage.
 */
export async function* readArrowBatches(file: string): AsyncGenerator<arrow.RecordBatch> {
  let handle;
  try {
    handle = await open(file);
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === 'ENOENT') throw new DamagedEntryError(file, 'is missing', { cause: e });
    throw e;
  }
  let batches: AsyncIterator<arrow.RecordBatch> | undefined;
  try {
    const { size } = await handle.stat();
    const head = Buffer.alloc(8);
    const tail = Buffer.alloc(10);
    // File format: magic, padding, messages, footer, int32 footer length, magic.
    if (size < 8 + 10) throw new DamagedEntryError(file, `is not an Arrow IPC file (${size} bytes)`);
    await handle.read(head, 0, 8, 0);
    await handle.read(tail, 0, 10, size - 10);
    if (!head.subarray(0, 6).equals(MAGIC)) throw new DamagedEntryError(file, 'is not an Arrow IPC file (no ARROW1 magic at its start)');
    if (!tail.subarray(4).equals(MAGIC)) throw new DamagedEntryError(file, 'is not a complete Arrow IPC file (no ARROW1 magic at its end: truncated?)');
    const footer = tail.readInt32LE(0);
    if (footer <= 0 || footer > size - 8 - 10) throw new DamagedEntryError(file, `is damaged (its footer length ${footer} does not fit in ${size} bytes)`);
    const decodeError = (e: unknown) => (e instanceof DamagedEntryError ? e : new DamagedEntryError(file, `cannot be decoded as an Arrow IPC file (${messageOf(e)})`, { cause: e }));
    try {
      const reader = await arrow.RecordBatchReader.from(handle);
      batches = reader[Symbol.asyncIterator]();
    } catch (e) {
      throw decodeError(e);
    }
    for (;;) {
      let next: IteratorResult<arrow.RecordBatch>;
      try {
        next = await batches.next();
      } catch (e) {
        throw decodeError(e);
      }
      if (next.done) break;
      yield next.value;
    }
  } finally {
    await batches?.return?.().catch(() => {});
    await handle.close();
  }
}

export { arrow };
