import { createReadStream } from 'node:fs';
import { open, stat } from 'node:fs/promises';
import { parse as parseCsvStream } from 'csv-parse';
import { parse as parseCsvSync } from 'csv-parse/sync';
import { UserError, messageOf } from '../core/errors.js';
import { splitLines, Utf8Tracker } from '../core/lines.js';
import {
  displayPath,
  throttledProgress,
  type FilesDescription,
  type ReadOptions,
  type SourceExample,
  type TabularColumns,
  type TabularFile,
} from './types.js';

const DELIMITER_CANDIDATES = [',', ';', '\t'] as const;

interface RowContext {
  file: TabularFile;
  columns: TabularColumns;
  classes: [string, string];
  threshold: number | null;
  /** id → line where it first appeared. */
  seenIds: Map<string, number>;
}

function rowError(file: string, line: number, message: string, details: string[] = []): UserError {
  return new UserError(`${displayPath(file)}:${line}: ${message}`, details);
}

/** Reads at most maxBytes from the start of a file, up to (not including) the first line break; BOM removed. */
export async function readFirstLine(file: string, maxBytes = 1 << 20): Promise<string> {
  const handle = await open(file, 'r');
  try {
    const buf = Buffer.alloc(maxBytes);
    const { bytesRead } = await handle.read(buf, 0, maxBytes, 0);
    let text = buf.subarray(0, bytesRead).toString('utf8');
    if (text.charCodeAt(0) === 0xfeff) text = text.slice(1);
    const end = text.search(/\r?\n/);
    return end === -1 ? text : text.slice(0, end);
  } finally {
    await handle.close();
  }
}

/** The candidate (comma, semicolon, tab) occurring most often outside quotes in the header line. */
export function detectDelimiter(headerLine: string, fallback = ','): string {
  const counts = new Map<string, number>(DELIMITER_CANDIDATES.map((d) => [d, 0]));
  let quoted = false;
  for (const ch of headerLine) {
    if (ch === '"') quoted = !quoted;
    else if (!quoted && counts.has(ch)) counts.set(ch, counts.get(ch)! + 1);
  }
  let best = fallback;
  let bestCount = 0;
  for (const [d, n] of counts) {
    if (n > bestCount) {
      best = d;
      bestCount = n;
    }
  }
  return best;
}

function findColumn(header: string[], name: string): number {
  const exact = header.indexOf(name);
  return exact !== -1 ? exact : header.findIndex((h) => h.trim() === name);
}

interface ColumnIndexes {
  text: number;
  label: number;
  /** -1 when the file has no id column (row line numbers are used). */
  id: number;
}

/** Maps configured column names to header positions; a missing text/label (or explicit id) column is a UserError. */
export function resolveCsvColumns(file: string, headerLine: number, header: string[], columns: TabularColumns): ColumnIndexes {
  const shortened = header.slice(0, 20).map((h) => JSON.stringify(h.length > 40 ? `${h.slice(0, 40)}…` : h));
  const shown = shortened.join(', ') + (header.length > 20 ? `, … (${header.length} columns)` : '');
  const require = (name: string, key: string): number => {
    const index = findColumn(header, name);
    if (index === -1) {
      throw rowError(file, headerLine, `no column "${name}" in the header (columns: ${shown})`, [
        `set DATASET.${key} to the column to use`,
      ]);
    }
    return index;
  };
  return {
    text: require(columns.text, 'text_column'),
    label: require(columns.label, 'label_column'),
    id: columns.id === null ? -1 : require(columns.id, 'id_column'),
  };
}

export function parseCsvHeader(line: string, delimiter: string): string[] {
  try {
    const records = parseCsvSync(line, { delimiter, relax_quotes: true, relax_column_count: true }) as string[][];
    return records[0] ?? [];
  } catch {
    // An unclosed quote in the header: the reader reports it with its position.
    return line.split(delimiter);
  }
}

/** Whether the start of a file looks binary (a NUL byte in its first 8 KiB): no text format has one. */
async function looksBinary(file: string): Promise<boolean> {
  const handle = await open(file, 'r');
  try {
    const buf = Buffer.alloc(8192);
    const { bytesRead } = await handle.read(buf, 0, buf.length, 0);
    return buf.subarray(0, bytesRead).includes(0);
  } finally {
    await handle.close();
  }
}

/** Checks a file's header (CSV) or first row (JSONL) names the configured columns, without reading further. */
export async function checkTabularHead(file: TabularFile, columns: TabularColumns): Promise<void> {
  const { size } = await stat(file.path);
  if (size === 0) throw new UserError(`${displayPath(file.path)}: the file is empty`);
  if (await looksBinary(file.path)) {
    throw new UserError(`${displayPath(file.path)}: this is a binary file, not ${file.format === 'csv' ? 'CSV' : 'JSONL'} text (it holds NUL bytes)`);
  }
  const first = await readFirstLine(file.path);
  if (file.format === 'csv') {
    resolveCsvColumns(file.path, 1, parseCsvHeader(first, file.delimiter ?? ','), columns);
    return;
  }
  let row: unknown;
  try {
    row = JSON.parse(first);
  } catch {
    return; // the reader reports it with its line number
  }
  if (row === null || typeof row !== 'object' || Array.isArray(row)) return;
  const fields = Object.keys(row);
  for (const [name, key] of [
    [columns.text, 'text_column'],
    [columns.label, 'label_column'],
  ] as const) {
    if (!(name in row)) {
      throw rowError(file.path, 1, `no field "${name}" (fields: ${fields.map((f) => JSON.stringify(f)).join(', ')})`, [
        `set DATASET.${key} to the field to use`,
      ]);
    }
  }
}

function describeType(value: unknown): string {
  if (value === null) return 'null';
  if (Array.isArray(value)) return 'an array';
  return typeof value === 'object' ? 'an object' : `a ${typeof value}`;
}

/** Maps a raw label to a class index, or returns undefined when it cannot be mapped. */
export function mapLabel(raw: unknown, classes: [string, string], threshold: number | null): 0 | 1 | undefined {
  if (typeof raw === 'boolean') return raw ? 1 : 0;
  if (typeof raw === 'string') {
    const exact = classes.indexOf(raw);
    if (exact !== -1) return exact as 0 | 1;
    const folded = raw.trim().toLowerCase();
    const loose = classes.findIndex((c) => c.toLowerCase() === folded);
    if (loose !== -1) return loose as 0 | 1;
    if (folded === 'true') return 1;
    if (folded === 'false') return 0;
    if (folded === '') return undefined;
    const n = Number(folded);
    return Number.isFinite(n) ? mapLabel(n, classes, threshold) : undefined;
  }
  if (typeof raw === 'number' && Number.isFinite(raw)) {
    if (threshold !== null) return raw >= threshold ? 1 : 0;
    if (raw === 0 || raw === 1) return raw;
  }
  return undefined;
}

function toExample(
  ctx: RowContext,
  line: number,
  text: unknown,
  label: unknown,
  id: unknown,
): SourceExample {
  const { file, columns, classes, threshold } = ctx;
  if (text === undefined) {
    throw rowError(file.path, line, `no "${columns.text}" field`, ['set DATASET.text_column to the field holding the text']);
  }
  if (typeof text !== 'string') {
    throw rowError(file.path, line, `"${columns.text}" is ${describeType(text)}, expected a string`);
  }
  if (text.trim() === '') throw rowError(file.path, line, `empty text in "${columns.text}"`);
  if (label === undefined || label === null || label === '') {
    throw rowError(file.path, line, `no "${columns.label}" value`, ['set DATASET.label_column to the field holding the label']);
  }
  const classIndex = mapLabel(label, classes, threshold);
  if (classIndex === undefined) {
    const accepted =
      threshold !== null
        ? `a number (≥ ${threshold} is "${classes[1]}"), true/false or a class name (${classes.join(', ')})`
        : `0/1, true/false or a class name (${classes.join(', ')})`;
    throw rowError(file.path, line, `label ${JSON.stringify(label)} in "${columns.label}" is not ${accepted}`, [
      'set DATASET.classes to the two label values, or DATASET.threshold to split numeric scores',
    ]);
  }
  let rawId: string;
  if (id === undefined || id === null || id === '') rawId = String(line);
  else if (typeof id === 'string' || typeof id === 'number' || typeof id === 'boolean') rawId = String(id);
  else throw rowError(file.path, line, `"${columns.id}" is ${describeType(id)}, expected a string or number`);
  const firstLine = ctx.seenIds.get(rawId);
  if (firstLine !== undefined) {
    throw rowError(file.path, line, `duplicate id "${rawId}" (first on line ${firstLine})`, [
      `ids come from DATASET.id_column ("${columns.id}"), or the line number where a row has none; choose a unique field or remove DATASET.id_column to use line numbers`,
    ]);
  }
  ctx.seenIds.set(rawId, line);
  return { id: `${file.source}:${rawId}`, text, classIndex, source: file.source };
}

type ByteCounter = (n: number) => void;

async function* readJsonl(ctx: RowContext, countBytes: ByteCounter, opts: ReadOptions): AsyncGenerator<SourceExample> {
  const input = createReadStream(ctx.file.path);
  input.on('data', (chunk) => countBytes(chunk.length));
  const { columns } = ctx;
  try {
    // Lines end at \n only (a JSON text holds no raw line breaks); the BOM is skipped.
    for await (const { line: lineNo, text: line, nonUtf8 } of splitLines(input)) {
      opts.signal?.throwIfAborted();
      if (line.trim() === '') continue;
      let row: unknown;
      try {
        row = JSON.parse(line);
      } catch (e) {
        throw rowError(ctx.file.path, lineNo, `invalid JSON (${messageOf(e)})`);
      }
      if (row === null || typeof row !== 'object' || Array.isArray(row)) {
        throw rowError(ctx.file.path, lineNo, `expected a JSON object, found ${describeType(row)}`);
      }
      const r = row as Record<string, unknown>;
      if (nonUtf8) opts.onNonUtf8?.({ file: ctx.file.path, line: lineNo });
      yield toExample(ctx, lineNo, r[columns.text], r[columns.label], columns.id === null ? undefined : r[columns.id]);
    }
  } finally {
    input.destroy();
  }
}

const LINE_BREAK = /\r\n|\r|\n/g;

function countLineBreaks(s: string): number {
  return s.match(LINE_BREAK)?.length ?? 0;
}

/** A CSV record with the line it starts on (1-based, past any skipped empty lines). */
export interface CsvRecord {
  record: string[];
  line: number;
  /** Some of the record's bytes were not UTF-8 (decoded as U+FFFD). */
  nonUtf8: boolean;
  /** Set when csv-parse could not read this record (record is then empty); reading goes on after it. */
  error?: string;
}

/**
 * Where the quote that never closes is in a record's raw text, read the way csv-parse reads with relax_quotes:
 * a quote opens a quoted field only at the start of a field; inside, `""` is a quote and a `"` ends the quoting.
 */
export function findUnclosedQuote(raw: string, delimiter: string): { line: number; col: number } | undefined {
  let line = 0;
  let lineStart = 0;
  let fieldStart = true;
  let i = 0;
  while (i < raw.length) {
    const ch = raw[i]!;
    if (fieldStart && ch === '"') {
      const open = { line, col: i - lineStart + 1 };
      let j = i + 1;
      let closed = false;
      while (j < raw.length) {
        if (raw[j] === '"') {
          if (raw[j + 1] === '"') {
            j += 2;
            continue;
          }
          closed = true;
          break;
        }
        if (raw[j] === '\n' || (raw[j] === '\r' && raw[j + 1] !== '\n')) {
          line++;
          lineStart = j + 1;
        }
        j++;
      }
      if (!closed) return open;
      i = j + 1;
      fieldStart = false;
      continue;
    }
    if (raw.startsWith(delimiter, i)) {
      fieldStart = true;
      i += delimiter.length;
      continue;
    }
    if (ch === '\n' || ch === '\r') {
      if (ch === '\r' && raw[i + 1] === '\n') i++;
      line++;
      lineStart = i + 1;
      fieldStart = true;
      i++;
      continue;
    }
    fieldStart = false;
    i++;
  }
  return undefined;
}

/**
 * Streams the records of a CSV file (header included) with the line each starts on. Quotes inside unquoted
 * fields are kept as text (relax_quotes) and records may have any number of fields: callers compare with the
 * header. A record csv-parse cannot read (a quote that never closes swallows the rest of the file) is a
 * UserError naming `label:line:col` where that record begins, raised after every record before it was given.
 */
export async function* readCsvRecords(
  input: NodeJS.ReadableStream,
  label: string,
  delimiter: string,
  opts: { signal?: AbortSignal; countBytes?: (n: number) => void } = {},
): AsyncGenerator<CsvRecord> {
  // Errors are taken through on_skip rather than thrown: a thrown error would drop the records csv-parse has
  // already parsed but not yet handed out, and those must be given before the error.
  const skipped: { error: Error & { code?: string; bytes?: number }; raw: string }[] = [];
  const parser = parseCsvStream({
    delimiter,
    bom: true,
    info: true,
    raw: true,
    relax_column_count: true,
    relax_quotes: true,
    skip_empty_lines: true,
    skip_records_with_error: true,
    on_skip: (error, raw) => void skipped.push({ error: error as Error & { code?: string; bytes?: number }, raw: raw ?? '' }),
  });
  const utf8 = new Utf8Tracker();
  input.on('data', (chunk: Buffer | string) => {
    const buf = typeof chunk === 'string' ? Buffer.from(chunk) : chunk;
    utf8.push(buf);
    opts.countBytes?.(buf.length);
  });
  input.on('end', () => utf8.end());
  input.on('error', (e) => parser.destroy(e));
  input.pipe(parser);
  // csv-parse's info.lines drifts on CRLF files, so lines are counted from each record's raw text, where a CRLF
  // record delimiter shows as a lone \r and skipped empty lines come first.
  let nextLine = 1;
  const startOf = (raw: string): number => {
    const leading = /^(?:\r\n|\r|\n)*/.exec(raw)![0];
    nextLine += countLineBreaks(leading);
    const line = nextLine;
    nextLine += countLineBreaks(raw.slice(leading.length));
    return line;
  };
  /** A record csv-parse skipped: fatal when nothing after it can be read, else an error record. */
  const failed = ({ error, raw }: (typeof skipped)[number]): CsvRecord => {
    const leading = /^(?:\r\n|\r|\n)*/.exec(raw)![0];
    const line = startOf(raw);
    if (error.code === 'CSV_QUOTE_NOT_CLOSED') {
      const quote = findUnclosedQuote(raw.slice(leading.length), delimiter);
      const where =
        quote === undefined
          ? `${label}:${line}: unclosed quote`
          : quote.line === 0
            ? `${label}:${line}:${quote.col}: unclosed quote`
            : `${label}:${line}: unclosed quote at line ${line + quote.line}, column ${quote.col}`;
      throw new UserError(`${where} (the record starts here)`, [
        'a quoted field never ends, so the rest of the file cannot be read as CSV; close the quote, or double the quotes inside it ("")',
      ]);
    }
    return { record: [], line, nonUtf8: false, error: messageOf(error).replace(/ at line \d+.*$/, '') };
  };
  try {
    for await (const item of parser as AsyncIterable<{ record: string[]; raw: string; info: { bytes: number } }>) {
      opts.signal?.throwIfAborted();
      while (skipped.length > 0 && (skipped[0]!.error.bytes ?? 0) < item.info.bytes) yield failed(skipped.shift()!);
      const line = startOf(item.raw);
      yield { record: item.record, line, nonUtf8: utf8.takeBefore(item.info.bytes) };
    }
    while (skipped.length > 0) yield failed(skipped.shift()!);
  } finally {
    (input as { destroy?: () => void }).destroy?.();
    parser.destroy();
  }
}

async function* readCsv(ctx: RowContext, countBytes: ByteCounter, opts: ReadOptions): AsyncGenerator<SourceExample> {
  const { file } = ctx;
  let header: string[] | undefined;
  let indexes: ColumnIndexes | undefined;
  for await (const { record, line, nonUtf8, error } of readCsvRecords(createReadStream(file.path), displayPath(file.path), file.delimiter ?? ',', {
    signal: opts.signal,
    countBytes,
  })) {
    if (error !== undefined) throw rowError(file.path, line, error, ['check the quoting, or set DATASET.delimiter']);
    if (!header) {
      header = record;
      indexes = resolveCsvColumns(file.path, line, header, ctx.columns);
      continue;
    }
    if (record.length !== header.length) {
      throw rowError(file.path, line, `row has ${record.length} field${record.length === 1 ? '' : 's'}, header has ${header.length}`, [
        `check the quoting, or set DATASET.delimiter (now ${JSON.stringify(file.delimiter ?? ',')})`,
      ]);
    }
    const ix = indexes!;
    if (nonUtf8) opts.onNonUtf8?.({ file: file.path, line });
    yield toExample(ctx, line, record[ix.text], record[ix.label], ix.id === -1 ? undefined : record[ix.id]);
  }
  if (!header) throw new UserError(`${displayPath(file.path)}: the file is empty`);
}

export async function* readTabular(desc: FilesDescription, opts: ReadOptions): AsyncGenerator<SourceExample> {
  const sizes = await Promise.all(desc.files.map(async (f) => (await stat(f.path)).size));
  const total = sizes.reduce((a, b) => a + b, 0);
  const progress = throttledProgress(opts.onProgress, { phase: 'read', unit: 'bytes', total }, 1 << 20);
  let done = 0;
  const countBytes: ByteCounter = (n) => {
    done += n;
    progress.update(done);
  };
  for (const file of desc.files) {
    opts.signal?.throwIfAborted();
    const ctx: RowContext = {
      file,
      columns: desc.columns,
      classes: desc.classes,
      threshold: desc.threshold,
      seenIds: new Map(),
    };
    const rows = file.format === 'jsonl' ? readJsonl(ctx, countBytes, opts) : readCsv(ctx, countBytes, opts);
    for await (const example of rows) yield example;
    if (ctx.seenIds.size === 0) throw new UserError(`${displayPath(file.path)}: no rows`);
  }
  progress.finish(done);
}
