import { readFile, writeFile } from 'node:fs/promises';
import { DamagedEntryError, messageOf } from '../core/errors.js';

/** A named float32 tensor, as a head's weights are kept. */
export interface NamedTensor {
  shape: number[];
  data: Float32Array;
}

/**
 * Writes tensors in the safetensors format (8-byte little-endian header length, JSON header, raw data),
 * so PyTorch (`safetensors.torch.load_file`) can read a trained head as it is.
 */
export async function writeSafetensors(file: string, tensors: Record<string, NamedTensor>, metadata: Record<string, string> = {}): Promise<void> {
  const names = Object.keys(tensors).sort();
  const header: Record<string, unknown> = { __metadata__: metadata };
  let offset = 0;
  for (const name of names) {
    const bytes = tensors[name].data.byteLength;
    header[name] = { dtype: 'F32', shape: tensors[name].shape, data_offsets: [offset, offset + bytes] };
    offset += bytes;
  }
  let json = JSON.stringify(header);
  json += ' '.repeat((8 - (json.length % 8)) % 8); // keeps the data 8-byte aligned
  const head = Buffer.from(json, 'utf8');
  const out = Buffer.alloc(8 + head.length + offset);
  out.writeBigUInt64LE(BigInt(head.length), 0);
  head.copy(out, 8);
  let at = 8 + head.length;
  for (const name of names) {
    const { data } = tensors[name];
    Buffer.from(data.buffer, data.byteOffset, data.byteLength).copy(out, at);
    at += data.byteLength;
  }
  await writeFile(file, out);
}

/**
 * Reads a safetensors file. One that is truncated, overwritten or not safetensors at all is a
 * DamagedEntryError naming the file (the pipeline recomputes the cache entry holding it).
 */
export async function readSafetensors(file: string): Promise<{ tensors: Record<string, NamedTensor>; metadata: Record<string, string> }> {
  let buf: Buffer;
  try {
    buf = await readFile(file);
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === 'ENOENT') throw new DamagedEntryError(file, 'is missing', { cause: e });
    throw e;
  }
  const damaged = (reason: string, cause?: unknown) => new DamagedEntryError(file, `is not a valid safetensors file (${reason})`, { cause });
  if (buf.length < 8) throw damaged(`${buf.length} bytes`);
  const headerLength = buf.readBigUInt64LE(0);
  if (headerLength < 2n || headerLength > BigInt(buf.length - 8)) throw damaged(`header length ${headerLength} does not fit in ${buf.length} bytes`);
  let header: Record<string, { dtype: string; shape: number[]; data_offsets: [number, number] }>;
  try {
    header = JSON.parse(buf.subarray(8, 8 + Number(headerLength)).toString('utf8'));
  } catch (e) {
    throw damaged(`its header is not JSON: ${messageOf(e)}`, e);
  }
  if (typeof header !== 'object' || header === null || Array.isArray(header)) throw damaged('its header is not a JSON object');
  const base = 8 + Number(headerLength);
  const tensors: Record<string, NamedTensor> = {};
  let metadata: Record<string, string> = {};
  for (const [name, entry] of Object.entries(header)) {
    if (name === '__metadata__') {
      metadata = entry as unknown as Record<string, string>;
      continue;
    }
    if (typeof entry !== 'object' || entry === null || !Array.isArray(entry.shape) || !Array.isArray(entry.data_offsets)) throw damaged(`tensor ${name} has no shape or data_offsets`);
    if (entry.dtype !== 'F32') throw new DamagedEntryError(file, `tensor ${name} is ${entry.dtype}; only F32 is supported`);
    const [start, end] = entry.data_offsets;
    const count = entry.shape.reduce((n, d) => n * d, 1);
    if (!Number.isInteger(start) || !Number.isInteger(end) || start < 0 || end < start || base + end > buf.length || end - start !== 4 * count) {
      throw damaged(`tensor ${name}: data_offsets ${JSON.stringify(entry.data_offsets)} do not fit its shape ${JSON.stringify(entry.shape)} and the file's ${buf.length} bytes`);
    }
    const data = new Float32Array(count);
    new Uint8Array(data.buffer).set(buf.subarray(base + start, base + end));
    tensors[name] = { shape: entry.shape, data };
  }
  return { tensors, metadata };
}
