import type { AnyStage } from './stage.js';
import { dataStage } from './data.js';
import { encodeStage } from './encode.js';
import { evaluateStage } from './evaluate.js';
import { inferStage } from './infer.js';
import { tokenizeStage } from './tokenize.js';
import { trainStage } from './train.js';

/** The pipeline's stages in run order. */
export const STAGES: AnyStage[] = [dataStage, tokenizeStage, encodeStage, trainStage, evaluateStage, inferStage];
