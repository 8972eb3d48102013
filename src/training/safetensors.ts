import { readFile, writeFile } from 'node:fs/promises';

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

export async function readSafetensors(file: string): Promise<{ tensors: Record<string, NamedTensor>; metadata: Record<string, string> }> {
  const buf = await readFile(file);
  const headerLength = Number(buf.readBigUInt64LE(0));
  const header = JSON.parse(buf.subarray(8, 8 + headerLength).toString('utf8')) as Record<string, { dtype: string; shape: number[]; data_offsets: [number, number] }>;
  const base = 8 + headerLength;
  const tensors: Record<string, NamedTensor> = {};
  let metadata: Record<string, string> = {};
  for (const [name, entry] of Object.entries(header)) {
    if (name === '__metadata__') {
      metadata = entry as unknown as Record<string, string>;
      continue;
    }
    if (entry.dtype !== 'F32') throw new Error(`${file}: tensor ${name} is ${entry.dtype}; only F32 is supported`);
    const [start, end] = entry.data_offsets;
    const data = new Float32Array((end - start) / 4);
    new Uint8Array(data.buffer).set(buf.subarray(base + start, base + end));
    tensors[name] = { shape: entry.shape, data };
  }
  return { tensors, metadata };
}
