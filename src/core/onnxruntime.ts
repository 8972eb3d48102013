import { createRequire } from 'node:module';

/**
 * A require that resolves onnxruntime-node as transformers.js itself does (from its folder), so the
 * encoder and the GRU kernel share one instance of the native binding.
 */
export function onnxruntimeRequire(): NodeRequire {
  const ours = createRequire(import.meta.url);
  try {
    return createRequire(ours.resolve('@huggingface/transformers'));
  } catch {
    return ours;
  }
}
