// Writes the quickstart's offline inputs into examples/: a tiny BERT-architecture encoder (Hugging Face
// layout with onnx/model.onnx) and a small synthetic review set, both deterministic. The same code makes
// the unit tests' fixtures.
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { makeTinyBert } from '../test/fixtures/tiny-bert.js';
import { makeReviews } from '../test/fixtures/reviews.js';

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..', 'examples');
await makeTinyBert(path.join(root, 'tiny-bert'));
await makeReviews(path.join(root, 'reviews'));
