/** The input of `sentiment infer --file`: records of a .txt, .csv or .jsonl file (or stdin), one row each. */
import { createReadStream } from 'node:fs';
import { stat } from 'node:fs/promises';
import path from 'node:path';
import { Readable } from 'node:stream';
import { UsageError } from '../config/experiment.js';
import { UserError } from '../core/errors.js';

/** How an input file of `infer --file` is read. */
export type TextFormat = 'txt' | 'csv' | 'jsonl';
export const TEXT_FORMATS: readonly TextFormat[] = ['txt', 'csv', 'jsonl'];

const FORMAT_OF_EXTENSION: Record<string, TextFormat> = { '.txt': 'txt', '.csv': 'csv', '.tsv': 'csv', '.jsonl': 'jsonl', '.ndjson': 'jsonl' };

/** One input record of `infer --file`: its line, its text, or why it has none. */
export interface TextRow {
  line: number;
  text: string;
  error?: string;
  /** Some bytes were not UTF-8 and were read as U+FFFD. */
  nonUtf8?: boolean;
  /** With `labelColumn`: the raw value of that column or field (undefined where a JSONL record has none). */
  label?: unknown;
  /** The record's `id` column or field, when the input has one: kept in the output to join on. */
  id?: string;
}

/** `--file` as shown in messages. */
export function inputLabel(file: string): string {
  return file === '-' ? 'stdin' : file;
}

/**
 * Checks --file before any work: it exists and is a file, and its format is known (from --format, else its
 * extension; stdin, `-`, is lines of text unless --format says otherwise). Returns the format.
 */
export async function checkInputFile(file: string, format?: string): Promise<TextFormat> {
  if (format !== undefined && !TEXT_FORMATS.includes(format as TextFormat)) {
    throw new UsageError(`--format ${format}: use one of ${TEXT_FORMATS.join(', ')}`);
  }
  if (file === '-') return (format as TextFormat | undefined) ?? 'txt';
  let info;
  try {
    info = await stat(file);
  } catch {
    throw new UserError(`--file ${file}: no such file`);
  }
  if (info.isDirectory()) throw new UserError(`--file ${file}: is a folder; give a .txt, .csv or .jsonl file`);
  if (!info.isFile()) throw new UserError(`--file ${file}: not a regular file`);
  if (format) return format as TextFormat;
  const ext = path.extname(file).toLowerCase();
  const found = FORMAT_OF_EXTENSION[ext];
  if (!found) {
    throw new UserError(`--file ${file}: unknown format ${ext ? `"${ext}"` : '(no extension)'}; use a .txt (one text per line), .csv/.tsv or .jsonl file, or say which with --format txt|csv|jsonl`);
  }
  return found;
}

/** Chunks of a stream, the first ones (up to a line break) read ahead so the CSV delimiter can be detected. */
async function peekFirstLine(input: NodeJS.ReadableStream): Promise<{ first: string; stream: NodeJS.ReadableStream }> {
  const iterator = (input as AsyncIterable<Buffer | string>)[Symbol.asyncIterator]();
  const head: Buffer[] = [];
  let size = 0;
  for (;;) {
    const next = await iterator.next();
    if (next.done) break;
    const chunk = typeof next.value === 'string' ? Buffer.from(next.value) : next.value;
    head.push(chunk);
    size += chunk.length;
    if (chunk.includes(0x0a) || size > 1 << 20) break;
  }
  let first = Buffer.concat(head).toString('utf8');
  if (first.charCodeAt(0) === 0xfeff) first = first.slice(1);
  const end = first.search(/\r?\n/);
  const stream = Readable.from(
    (async function* () {
      yield* head;
      for (;;) {
        const next = await iterator.next();
        if (next.done) return;
        yield next.value;
      }
    })(),
  );
  return { first: end === -1 ? first : first.slice(0, end), stream };
}

/**
 * Rows of a .txt (one text per line), .csv or .jsonl file (or stdin for `-`), streamed: exactly one row per
 * input record, with the line it starts on; rows without usable text carry an `error`. Lines end at `\n`
 * only (a trailing `\r` is dropped), a UTF-8 BOM is skipped, and bytes that are not UTF-8 are read as U+FFFD
 * and flagged. A CSV record whose field count differs from the header's is an error row; a quote that never
 * closes (so nothing after it can be read) throws a UserError naming the line where its record begins, after
 * every row before it has been given.
 */
export async function* readTextRows(
  file: string,
  textColumn: string,
  opts: { format?: TextFormat; stdin?: NodeJS.ReadableStream; labelColumn?: string } = {},
): AsyncGenerator<TextRow> {
  const { labelColumn } = opts;
  const format = opts.format ?? (await checkInputFile(file));
  const label = inputLabel(file);
  const open = () => (file === '-' ? (opts.stdin ?? process.stdin) : createReadStream(file));
  if (format === 'csv') {
    const { detectDelimiter, readCsvRecords } = await import('./tabular.js');
    const { first, stream } = await peekFirstLine(open());
    const delimiter = detectDelimiter(first);
    let header: string[] | undefined;
    let column = -1;
    let labelIndex = -1;
    let idIndex = -1;
    for await (const { record, line, nonUtf8, error } of readCsvRecords(stream, label, delimiter)) {
      if (error !== undefined) {
        yield { line, text: '', error: `malformed CSV record: ${error}` };
        continue;
      }
      if (!header) {
        header = record;
        const columnOf = (name: string, flag: string): number => {
          let found = header!.indexOf(name);
          if (found === -1) found = header!.findIndex((h) => h.trim() === name);
          if (found === -1) {
            const shown = header!.slice(0, 20).map((h) => (h.length > 40 ? `${h.slice(0, 40)}…` : h));
            throw new UserError(`--file ${label}:${line}: no column "${name}" (columns: ${shown.join(', ')}${header!.length > 20 ? ', …' : ''}); choose one with ${flag}`);
          }
          return found;
        };
        column = columnOf(textColumn, '--text-column');
        idIndex = header!.indexOf('id');
        if (labelColumn !== undefined) labelIndex = columnOf(labelColumn, '--label-column');
        continue;
      }
      const text = record[column] ?? '';
      const flag = { ...(nonUtf8 ? { nonUtf8: true } : {}), ...(labelColumn !== undefined ? { label: record[labelIndex] } : {}), ...(idIndex >= 0 && record[idIndex] !== undefined ? { id: record[idIndex] } : {}) };
      if (record.length !== header.length) yield { line, text, error: `row has ${record.length} field${record.length === 1 ? '' : 's'}, header has ${header.length}`, ...flag };
      else yield text.trim() ? { line, text, ...flag } : { line, text, error: 'empty text', ...flag };
    }
    return;
  }
  const { splitLines } = await import('../core/lines.js');
  for await (const { line, text: raw, nonUtf8 } of splitLines(open() as AsyncIterable<Buffer>)) {
    const flag = nonUtf8 ? { nonUtf8: true } : {};
    if (format === 'jsonl') {
      if (!raw.trim()) {
        yield { line, text: '', error: 'empty line', ...flag };
        continue;
      }
      let value: unknown;
      try {
        value = JSON.parse(raw);
      } catch (e) {
        yield { line, text: '', error: `invalid JSON: ${(e as Error).message}`, ...flag };
        continue;
      }
      const record = value !== null && typeof value === 'object' && !Array.isArray(value) ? (value as Record<string, unknown>) : undefined;
      const text = record?.[textColumn];
      const id = record?.id;
      const withId = typeof id === 'string' || typeof id === 'number' ? { ...flag, id: String(id) } : flag;
      const withLabel = labelColumn !== undefined ? { ...withId, label: record?.[labelColumn] } : withId;
      if (typeof text !== 'string' || !text.trim()) yield { line, text: typeof text === 'string' ? text : '', error: `no text in field "${textColumn}"`, ...withLabel };
      else yield { line, text, ...withLabel };
    } else {
      yield raw.trim() ? { line, text: raw, ...flag } : { line, text: raw, error: 'empty line', ...flag };
    }
  }
}
