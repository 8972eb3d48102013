// Exports an encode entry's features.arrow as raw float32 per split (<split>.f32, token vectors one
// after another) with <split>.json ({hidden, lengths, labels, ids}), for bench/torch_head_reference.py.
// Usage: tsx bench/export-features.ts <features.arrow> <out-dir>
import { createWriteStream } from 'node:fs';
import { mkdir, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { readFeatures } from '../src/features/features.js';

const [file, outDir] = process.argv.slice(2);
if (!file || !outDir) throw new Error('usage: tsx bench/export-features.ts <features.arrow> <out-dir>');
await mkdir(outDir, { recursive: true });
const splits = new Map<string, { out: ReturnType<typeof createWriteStream>; lengths: number[]; labels: number[]; ids: string[] }>();
let hidden = 0;
for await (const b of readFeatures(file)) {
  hidden = b.width;
  for (let i = 0; i < b.id.length; i++) {
    let s = splits.get(b.split[i]);
    if (!s) splits.set(b.split[i], (s = { out: createWriteStream(path.join(outDir, `${b.split[i]}.f32`)), lengths: [], labels: [], ids: [] }));
    const f = b.features[i];
    if (!s.out.write(Buffer.from(f.buffer, f.byteOffset, f.byteLength))) await new Promise<void>((r) => s!.out.once('drain', () => r()));
    s.lengths.push(b.length[i]);
    s.labels.push(b.label[i]);
    s.ids.push(b.id[i]);
  }
}
for (const [split, s] of splits) {
  await new Promise<void>((r) => s.out.end(() => r()));
  await writeFile(path.join(outDir, `${split}.json`), JSON.stringify({ hidden, lengths: s.lengths, labels: s.labels, ids: s.ids }));
}
console.log(JSON.stringify({ hidden, rows: Object.fromEntries([...splits].map(([k, v]) => [k, v.lengths.length])) }));
