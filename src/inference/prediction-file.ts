/** The output of `sentiment infer --file`: one row per input record, predicted in chunks and written as it goes. */
import { createWriteStream } from 'node:fs';
import { stat } from 'node:fs/promises';
import path from 'node:path';
import { ArrowFileWriter, arrow } from '../core/arrow.js';
import { UsageError } from '../config/experiment.js';
import { UserError } from '../core/errors.js';
import type { TextRow } from '../data/text-rows.js';

/** One input row's answer; `error` instead of a prediction for a row that has no usable text. */
export interface InferRow {
  line: number;
  /** The input's `id` column or field, when it has one (CSV and Arrow outputs always have the column, empty otherwise). */
  id?: string;
  text: string;
  /** Of TARGET. */
  probability: number | null;
  /** The class predicted: named so it cannot collide with a gold `label` column of the input. */
  predicted: string | null;
  error?: string;
}

const OUT_EXTENSIONS = ['.csv', '.jsonl', '.ndjson', '.arrow', '.feather'];

/** Checks --out before any work: a known extension, in a folder that exists, not a folder itself, not the input. */
export async function checkOutputFile(out: string, input?: string): Promise<void> {
  const ext = path.extname(out).toLowerCase();
  const exists = await stat(out).catch(() => undefined);
  if (exists?.isDirectory()) throw new UserError(`--out ${out}: is a folder; give a file name ending in .csv, .jsonl or .arrow`);
  if (!OUT_EXTENSIONS.includes(ext)) throw new UsageError(`--out ${out}: use a .csv, .jsonl or .arrow file`);
  const parent = path.dirname(path.resolve(out));
  const dir = await stat(parent).catch(() => undefined);
  if (!dir) throw new UserError(`--out ${out}: the folder ${path.dirname(out)} does not exist`);
  if (!dir.isDirectory()) throw new UserError(`--out ${out}: ${path.dirname(out)} is not a folder`);
  if (input && input !== '-' && path.resolve(input) === path.resolve(out)) throw new UserError(`--out ${out}: is the --file being read; write to another file`);
}

/** Where --file results go: CSV, JSONL or Arrow by --out's extension, or JSON lines on stdout. Check --out with checkOutputFile first. */
export async function openRowWriter(out: string | undefined, stdout: NodeJS.WritableStream) {
  const ext = out ? path.extname(out).toLowerCase() : '';
  if (out && !OUT_EXTENSIONS.includes(ext)) throw new UsageError(`--out ${out}: use a .csv, .jsonl or .arrow file`);
  if (ext === '.arrow' || ext === '.feather') {
    const schema = new arrow.Schema([
      new arrow.Field('line', new arrow.Int32(), false),
      new arrow.Field('id', new arrow.Utf8(), true),
      new arrow.Field('text', new arrow.Utf8(), false),
      new arrow.Field('probability', new arrow.Float64(), true),
      new arrow.Field('predicted', new arrow.Utf8(), true),
      new arrow.Field('error', new arrow.Utf8(), true),
    ]);
    const writer = await ArrowFileWriter.create(out!, schema);
    let wrote = false;
    const write = async (rows: InferRow[]) => {
      wrote = true;
      await writer.write([
          arrow.vectorFromArray(rows.map((r) => r.line), new arrow.Int32()).data[0],
          arrow.vectorFromArray(rows.map((r) => r.id ?? null), new arrow.Utf8()).data[0],
          arrow.vectorFromArray(rows.map((r) => r.text), new arrow.Utf8()).data[0],
          arrow.vectorFromArray(rows.map((r) => r.probability), new arrow.Float64()).data[0],
          arrow.vectorFromArray(rows.map((r) => r.predicted), new arrow.Utf8()).data[0],
          arrow.vectorFromArray(rows.map((r) => r.error ?? null), new arrow.Utf8()).data[0],
      ]);
    };
    return {
      write,
      // No rows: one empty batch, so the file still holds the schema and is a valid Arrow file.
      close: async () => {
        if (!wrote) await write([]);
        await writer.close();
      },
    };
  }
  const stream: NodeJS.WritableStream = out ? createWriteStream(out) : stdout;
  let failed: Error | undefined;
  if (out) stream.on('error', (e: Error) => (failed = e));
  const put = (s: string) => {
    if (failed) return Promise.reject(new UserError(`--out ${out}: ${failed.message}`));
    return stream.write(s) ? Promise.resolve() : new Promise<void>((r) => stream.once('drain', () => r()));
  };
  const close = () =>
    out
      ? new Promise<void>((resolve, reject) => {
          if (failed) reject(new UserError(`--out ${out}: ${failed.message}`));
          else stream.end(() => resolve());
        })
      : Promise.resolve();
  if (ext === '.csv') {
    const { stringify } = await import('csv-stringify/sync');
    await put(stringify([['line', 'id', 'text', 'probability', 'predicted', 'error']]));
    return {
      write: (rows: InferRow[]) => put(stringify(rows.map((r) => [r.line, r.id ?? '', r.text, r.probability ?? '', r.predicted ?? '', r.error ?? '']))),
      close,
    };
  }
  return {
    write: (rows: InferRow[]) => put(rows.map((r) => `${JSON.stringify(r)}\n`).join('')),
    close,
  };
}

/** Rows predicted together: bounds memory while streaming a file. */
const FILE_CHUNK = 256;

export interface InferFileCounts {
  rows: number;
  errors: number;
  /** Rows with bytes that are not UTF-8, and the line of the first. */
  nonUtf8: number;
  firstNonUtf8?: number;
}

/**
 * Predicts every row of a file, streaming: each input row gives exactly one output row, in order (rows
 * without usable text get an `error` instead of a prediction). When reading fails part-way (a CSV quote that
 * never closes), every row read before is still predicted and written, then the error is thrown.
 */
export async function inferFile(
  predictor: { predict(texts: string[]): Promise<{ probability: number; label: string }[]> },
  rows: AsyncIterable<TextRow>,
  write: (rows: InferRow[]) => Promise<void>,
  onProgress?: (done: number) => void,
  /** Stops reading (Ctrl-C); the rows read so far are still predicted and written. */
  signal?: AbortSignal,
): Promise<InferFileCounts> {
  let chunk: TextRow[] = [];
  const counts: InferFileCounts = { rows: 0, errors: 0, nonUtf8: 0 };
  const flush = async () => {
    const usable = chunk.filter((r) => !r.error);
    const predictions = usable.length > 0 ? await predictor.predict(usable.map((r) => r.text)) : [];
    let k = 0;
    const out = chunk.map((r): InferRow => {
      if (r.nonUtf8) {
        counts.nonUtf8++;
        counts.firstNonUtf8 ??= r.line;
      }
      if (r.error) {
        counts.errors++;
        return { line: r.line, ...(r.id !== undefined && { id: r.id }), text: r.text, probability: null, predicted: null, error: r.error };
      }
      const p = predictions[k++]!;
      return { line: r.line, ...(r.id !== undefined && { id: r.id }), text: r.text, probability: p.probability, predicted: p.label };
    });
    await write(out);
    counts.rows += chunk.length;
    chunk = [];
    onProgress?.(counts.rows);
  };
  const iterator = rows[Symbol.asyncIterator]();
  let readError: { error: unknown } | undefined;
  for (;;) {
    if (signal?.aborted) {
      await iterator.return?.();
      break;
    }
    let next: IteratorResult<TextRow>;
    try {
      next = await iterator.next();
    } catch (error) {
      readError = { error };
      break;
    }
    if (next.done) break;
    chunk.push(next.value);
    if (chunk.length >= FILE_CHUNK) await flush();
  }
  if (chunk.length > 0) await flush();
  if (readError) throw readError.error;
  return counts;
}
