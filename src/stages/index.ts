import type { Stage } from '../runner/stage.js';
import { dataStage } from './data.js';
import { tokenizeStage } from './tokenize.js';

/** The pipeline's stages in run order. */
export const STAGES: Stage[] = [dataStage, tokenizeStage];
