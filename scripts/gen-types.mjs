// Generates src/config/experiment.generated.ts from schemas/*.schema.json: the schema is the single
// source of truth for config types. `--check` exits 1 if the committed file is stale.
import { compileFromFile } from 'json-schema-to-typescript';
import { readFileSync, writeFileSync, existsSync } from 'node:fs';

const banner = '/* Generated from schemas/ by scripts/gen-types.mjs; do not edit. Run `npm run gen:types`. */';
const opts = { bannerComment: banner, additionalProperties: false, style: { singleQuote: true } };
const parts = [await compileFromFile('schemas/experiment.schema.json', opts)];
if (existsSync('schemas/sweep.schema.json')) {
  parts.push((await compileFromFile('schemas/sweep.schema.json', { ...opts, bannerComment: '' })));
}
const out = parts.join('\n');
const target = 'src/config/experiment.generated.ts';
const current = existsSync(target) ? readFileSync(target, 'utf8') : '';
if (process.argv.includes('--check')) {
  if (current !== out) { console.error(`${target} is stale: run npm run gen:types`); process.exit(1); }
} else if (current !== out) {
  writeFileSync(target, out);
}
