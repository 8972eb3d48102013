import type { DataInfo } from './data.js';
import type { EncodeInfo } from './encode.js';
import type { InferInfo } from './infer.js';
import type { TokenizeInfo } from './tokenize.js';
import type { TrainInfo } from './train.js';
import type { Metrics } from '../training/metrics.js';

/** What each stage's `produce` returns, kept as its manifest's `info`: typed for the stages downstream. */
export interface StageOutputs {
  data: DataInfo;
  tokenize: TokenizeInfo;
  encode: EncodeInfo;
  train: TrainInfo;
  evaluate: Metrics & { files: string[] };
  infer: InferInfo;
}
