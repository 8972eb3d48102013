import { resolveModelFolder, TOKENIZER_FILES } from '../core/model-files.js';
import type { Experiment } from '../config/experiment.js';
import { ENCODER_FILES, encodeRows, loadEncoder, type Encoder } from '../encoder/encoder.js';
import { float16ArrayToFloat32, float32ArrayToFloat16 } from '../core/float16.js';
import type { Head } from '../model/index.js';
import { padRows } from '../training/batches.js';
import { sigmoid } from '../training/metrics.js';
import { loadTokenizer, type TextTokenizer } from '../encoder/tokenizer.js';
import { quantizedEncoder } from '../encoder/quantize.js';

/** A prediction for one text: the probability of TARGET, and the class it implies. */
export interface Prediction {
  text: string;
  probability: number;
  label: string;
}

export interface Predictor {
  predict(texts: string[]): Promise<Prediction[]>;
  /** The head's logit for TARGET per text, in input order (what metrics such as the loss are computed on). */
  logits(texts: string[]): Promise<number[]>;
  /** Where the encoder runs (DEVICE as resolved) and its width (values per token). */
  encoder: { device: string; width: number };
  dispose(): Promise<void>;
}

/**
 * Tokenizer → frozen encoder → head, as in training: texts are truncated like the tokenize stage, and
 * features are rounded to float16 when that is how the head saw them in training.
 */
export async function createPredictor(options: {
  /** What prediction reads of the config: the model, how texts were truncated and features stored, TARGET, DEVICE. */
  config: Pick<Experiment, 'MODEL' | 'MAX_LENGTH' | 'ENCODER_DTYPE' | 'TARGET' | 'DEVICE'> & { ENCODER_QUANTIZE?: Experiment['ENCODER_QUANTIZE'] };
  modelBaseDir: string;
  cacheRoot: string;
  head: Head;
  /** The dataset's two classes; labels name TARGET or the other one. */
  classes: [string, string];
  batchSize?: number;
  /** Whether the encoder's ONNX Runtime threads spin when idle (default true); a server turns it off. */
  allowSpinning?: boolean;
}): Promise<Predictor> {
  const { config, head } = options;
  const folder = await resolveModelFolder(config.MODEL, options.modelBaseDir, options.cacheRoot, {
    required: [...TOKENIZER_FILES.required, ...ENCODER_FILES.required],
    optional: [...TOKENIZER_FILES.optional, ...ENCODER_FILES.optional],
  });
  const tokenizer: TextTokenizer = await loadTokenizer(folder.dir, config.MAX_LENGTH);
  // The encoder the features were computed with in training: MODEL's, or its quantized copy in the cache.
  const encoderDir = (await quantizedEncoder(folder.dir, config.ENCODER_QUANTIZE ?? 'none', options.cacheRoot)).dir;
  const encoder: Encoder = await loadEncoder(encoderDir, { device: config.DEVICE, allowSpinning: options.allowSpinning });
  const other = options.classes.find((c) => c !== config.TARGET) ?? `not ${config.TARGET}`;
  const batchSize = options.batchSize ?? 128;
  async function logitsOf(texts: string[]): Promise<number[]> {
    const features = await encodeRows(encoder, texts.map((t) => tokenizer.encode(t)));
    if (config.ENCODER_DTYPE === 'float16') features.forEach((f) => float16ArrayToFloat32(float32ArrayToFloat16(f), f));
    // Head batches of similar lengths (little padding); answers go back in input order.
    const order = features.map((_, i) => i).sort((a, b) => features[a].length - features[b].length);
    const out: number[] = new Array(texts.length);
    for (let start = 0; start < order.length; start += batchSize) {
      const batch = order.slice(start, start + batchSize);
      const rows = batch.map((i) => ({ id: String(i), label: 0, features: features[i], length: features[i].length / encoder.width }));
      const logits = await head.predict(padRows(rows, encoder.width));
      batch.forEach((i, k) => (out[i] = logits[k]));
    }
    return out;
  }
  return {
    logits: logitsOf,
    encoder: { device: encoder.device, width: encoder.width },
    async predict(texts) {
      return (await logitsOf(texts)).map((logit, i) => {
        const probability = sigmoid(logit);
        return { text: texts[i], probability, label: probability >= 0.5 ? config.TARGET : other };
      });
    },
    async dispose() {
      await encoder.dispose();
    },
  };
}
