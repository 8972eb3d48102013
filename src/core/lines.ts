import { isUtf8 } from 'node:buffer';

/** One line of a text stream: its 1-based number, its text, and whether its bytes were not all valid UTF-8. */
export interface TextLine {
  line: number;
  text: string;
  /** True when some bytes were not UTF-8; they were decoded as U+FFFD. */
  nonUtf8: boolean;
}

const LF = 0x0a;
const CR = 0x0d;

/**
 * Splits a byte stream into lines on `\n` only: a `\r` inside a line is part of the text and a trailing `\r`
 * (CRLF) is dropped. A UTF-8 byte order mark at the start is skipped. Each line is decoded as UTF-8 on its own,
 * so a line with bytes that are not UTF-8 is flagged (and read with U+FFFD) without affecting the others. A last
 * line without a final `\n` is still a line; an empty stream has none.
 */
export async function* splitLines(input: AsyncIterable<Buffer | string>): AsyncGenerator<TextLine> {
  let pending: Buffer[] = [];
  let pendingLength = 0;
  let line = 0;
  let first = true;
  const emit = (bytes: Buffer): TextLine => {
    let start = 0;
    if (first) {
      first = false;
      if (bytes.length >= 3 && bytes[0] === 0xef && bytes[1] === 0xbb && bytes[2] === 0xbf) start = 3;
    }
    let end = bytes.length;
    if (end > start && bytes[end - 1] === CR) end--;
    const body = bytes.subarray(start, end);
    line++;
    return { line, text: body.toString('utf8'), nonUtf8: !isUtf8(body) };
  };
  for await (const chunk of input) {
    const buf = typeof chunk === 'string' ? Buffer.from(chunk, 'utf8') : chunk;
    let from = 0;
    for (let nl = buf.indexOf(LF, from); nl !== -1; nl = buf.indexOf(LF, from)) {
      const piece = buf.subarray(from, nl);
      if (pendingLength > 0) {
        pending.push(piece);
        yield emit(Buffer.concat(pending, pendingLength + piece.length));
        pending = [];
        pendingLength = 0;
      } else {
        yield emit(piece);
      }
      from = nl + 1;
    }
    if (from < buf.length) {
      // Copied: the stream may reuse its chunk's memory.
      const rest = Buffer.from(buf.subarray(from));
      pending.push(rest);
      pendingLength += rest.length;
    }
  }
  if (pendingLength > 0) yield emit(Buffer.concat(pending, pendingLength));
}

/** Where the first byte that is not UTF-8 is in `bytes`, as a 1-based line and column (in characters); undefined when all are UTF-8. */
export function firstNonUtf8(bytes: Buffer): { line: number; col: number; byte: number } | undefined {
  if (isUtf8(bytes)) return undefined;
  const offset = invalidUtf8Offsets(bytes, 0, 1)[0] ?? 0;
  const before = bytes.subarray(0, offset);
  const lineStart = before.lastIndexOf(LF) + 1;
  let line = 1;
  for (let i = before.indexOf(LF); i !== -1; i = before.indexOf(LF, i + 1)) line++;
  const col = bytes.subarray(lineStart, offset).toString('utf8').length + 1;
  return { line, col, byte: bytes[offset]! };
}

/** Offsets (plus `base`) of the bytes that start an invalid UTF-8 sequence, at most `limit` of them. */
export function invalidUtf8Offsets(bytes: Buffer | Uint8Array, base = 0, limit = Infinity): number[] {
  const out: number[] = [];
  let i = 0;
  const n = bytes.length;
  while (i < n && out.length < limit) {
    const b = bytes[i]!;
    if (b < 0x80) {
      i++;
      continue;
    }
    let need = 0;
    let lo = 0x80;
    let hi = 0xbf;
    if (b >= 0xc2 && b <= 0xdf) need = 1;
    else if (b >= 0xe0 && b <= 0xef) {
      need = 2;
      if (b === 0xe0) lo = 0xa0;
      if (b === 0xed) hi = 0x9f;
    } else if (b >= 0xf0 && b <= 0xf4) {
      need = 3;
      if (b === 0xf0) lo = 0x90;
      if (b === 0xf4) hi = 0x8f;
    } else {
      out.push(base + i);
      i++;
      continue;
    }
    let ok = true;
    for (let k = 1; k <= need; k++) {
      const c = bytes[i + k];
      const [l, h] = k === 1 ? [lo, hi] : [0x80, 0xbf];
      if (c === undefined || c < l || c > h) {
        ok = false;
        break;
      }
    }
    if (ok) i += need + 1;
    else {
      out.push(base + i);
      i++;
    }
  }
  return out;
}

/**
 * Follows a byte stream chunk by chunk and records the offsets of bytes that are not UTF-8, so that a parser
 * reading the same stream can tell which of its records had them. Valid chunks cost one native check.
 */
export class Utf8Tracker {
  /** Offsets of invalid sequences not yet taken by `takeBefore`, in increasing order. */
  private offsets: number[] = [];
  private carry: Buffer = Buffer.alloc(0);
  private offset = 0;

  push(chunk: Buffer): void {
    const buf = this.carry.length > 0 ? Buffer.concat([this.carry, chunk]) : chunk;
    // An incomplete sequence at the end waits for the next chunk.
    let cut = buf.length;
    for (let i = buf.length - 1; i >= Math.max(0, buf.length - 3); i--) {
      const b = buf[i]!;
      if (b < 0x80) break;
      if (b >= 0xc0) {
        const need = b >= 0xf0 ? 4 : b >= 0xe0 ? 3 : 2;
        if (buf.length - i < need) cut = i;
        break;
      }
    }
    const body = buf.subarray(0, cut);
    if (!isUtf8(body)) for (const o of invalidUtf8Offsets(body, this.offset)) this.offsets.push(o);
    this.offset += cut;
    this.carry = Buffer.from(buf.subarray(cut));
  }

  /** Call at the end of the stream: a sequence cut short by the end is not UTF-8. */
  end(): void {
    if (this.carry.length > 0) this.offsets.push(this.offset);
    this.offset += this.carry.length;
    this.carry = Buffer.alloc(0);
  }

  /** Whether any invalid byte lies before `end` (an offset into the stream); forgets those. */
  takeBefore(end: number): boolean {
    let k = 0;
    while (k < this.offsets.length && this.offsets[k]! < end) k++;
    if (k === 0) return false;
    this.offsets.splice(0, k);
    return true;
  }
}
