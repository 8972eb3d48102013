import { writeFile } from 'node:fs/promises';
import path from 'node:path';
import type { Stage } from './stage.js';
import { createPredictor } from '../inference/predictor.js';
import { encodeStage } from './encode.js';
import { tokenizeStage } from './tokenize.js';
import { loadTrainedHead } from '../training/trained-head.js';

export const PREDICTION_FILE = 'prediction.json';

/** Predicts TEXT with the trained head, as the original does at the end of a run. */
export const inferStage: Stage = {
  name: 'infer',
  version: 1,
  upstream: ['data', 'train'],
  reads: (config) => ({ TEXT: config.TEXT, MAX_LENGTH: config.MAX_LENGTH, ENCODER_DTYPE: config.ENCODER_DTYPE, TARGET: config.TARGET }),
  // The same model files tokenize and encode read.
  async inputs(ctx) {
    return { ...(await tokenizeStage.inputs!(ctx)), ...(await encodeStage.inputs!(ctx)) };
  },
  async produce(ctx) {
    const { head } = await loadTrainedHead(ctx.upstream.train!.dir, ctx.config.BACKEND);
    const classes = (ctx.upstream.data!.manifest.info as { classes: [string, string] }).classes;
    const predictor = await createPredictor({ config: ctx.config, modelBaseDir: ctx.experiment.baseDirs.MODEL ?? process.cwd(), cacheRoot: ctx.cache.root, head, classes });
    try {
      const [prediction] = await predictor.predict([ctx.config.TEXT]);
      await writeFile(path.join(ctx.dir, PREDICTION_FILE), JSON.stringify(prediction, null, 2));
      ctx.progress.log(`"${prediction.text}": ${prediction.probability.toFixed(4)} → ${prediction.label}`);
      return { ...prediction, files: [PREDICTION_FILE] };
    } finally {
      await predictor.dispose();
      head.dispose();
    }
  },
};
