import type { Stage } from '../runner/stage.js';
import { dataStage } from './data.js';
import { encodeStage } from './encode.js';
import { tokenizeStage } from './tokenize.js';

/** The pipeline's stages in run order. */
export const STAGES: Stage[] = [dataStage, tokenizeStage, encodeStage];
