import { writeFile } from 'node:fs/promises';
import path from 'node:path';
import type { Stage } from './stage.js';
import type { Experiment } from '../config/experiment.js';
import { createPredictor, type Prediction } from '../inference/predictor.js';
import { encoderInputs, quantizeInputs, quantizeRead } from './encode.js';
import { tokenizerInputs } from './tokenize.js';
import { loadTrainedHead } from '../training/trained-head.js';

export const PREDICTION_FILE = 'prediction.json';

/** Predicts TEXT with the trained head, as the original does at the end of a run. */
/** infer's manifest info: TEXT's prediction. */
export interface InferInfo extends Prediction {
  files: string[];
}

export const inferStage: Stage<'infer', { TEXT: string; MAX_LENGTH: number; ENCODER_DTYPE: Experiment['ENCODER_DTYPE']; ENCODER_QUANTIZE: ReturnType<typeof quantizeRead>; TARGET: string }, 'data' | 'train'> = {
  name: 'infer',
  version: 1,
  upstream: ['data', 'train'],
  reads: (config) => ({ TEXT: config.TEXT, MAX_LENGTH: config.MAX_LENGTH, ENCODER_DTYPE: config.ENCODER_DTYPE, ENCODER_QUANTIZE: quantizeRead(config), TARGET: config.TARGET }),
  // The same model files tokenize and encode read.
  async inputs(ctx) {
    return { ...(await tokenizerInputs(ctx)), ...(await encoderInputs(ctx)), ...quantizeInputs(ctx.reads) };
  },
  async produce(ctx) {
    const { head } = await loadTrainedHead(ctx.upstream.train.dir);
    const classes = ctx.upstream.data.manifest.info.classes;
    const { TEXT, ...prediction } = ctx.reads;
    const predictor = await createPredictor({
      config: { ...prediction, MODEL: ctx.sources.model.value, DEVICE: ctx.settings.device },
      modelBaseDir: ctx.sources.model.baseDir,
      cacheRoot: ctx.sources.cacheRoot,
      head,
      classes,
    });
    try {
      const [prediction] = await predictor.predict([TEXT]);
      await writeFile(path.join(ctx.dir, PREDICTION_FILE), JSON.stringify(prediction, null, 2));
      ctx.progress.log(`"${prediction.text}": ${prediction.probability.toFixed(4)} → ${prediction.label}`);
      return { ...prediction, files: [PREDICTION_FILE] };
    } finally {
      await predictor.dispose();
      head.dispose();
    }
  },
};
