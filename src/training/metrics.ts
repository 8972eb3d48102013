/** Binary classification metrics for label 1 (the TARGET class), from logits. */
export interface SplitMetrics {
  examples: number;
  loss: number;
  accuracy: number;
  precision: number;
  recall: number;
  f1: number;
  /** null when undefined: ROC-AUC needs both classes among the labels. */
  roc_auc: number | null;
}

/** A measure for people: fixed digits, or "—" where it is undefined (null, NaN: JSON writes NaN as null). */
export function formatMeasure(x: number | null | undefined, digits = 4): string {
  return x === null || x === undefined || !Number.isFinite(x) ? '—' : x.toFixed(digits);
}

/** A fraction as a percentage, or "—" where it is undefined. */
export function formatPercent(x: number | null | undefined): string {
  return x === null || x === undefined || !Number.isFinite(x) ? '—' : `${(100 * x).toFixed(2)}%`;
}

/** Mean binary cross-entropy on logits, in the numerically stable form PyTorch uses. */
export function bceWithLogits(logit: number, label: number): number {
  return Math.max(logit, 0) - logit * label + Math.log1p(Math.exp(-Math.abs(logit)));
}

export function sigmoid(x: number): number {
  return 1 / (1 + Math.exp(-x));
}

/** Accumulates predictions batch by batch; `result()` gives the metrics. */
export class MetricsAccumulator {
  private logits: number[] = [];
  private labels: number[] = [];

  add(logits: ArrayLike<number>, labels: ArrayLike<number>): void {
    for (let i = 0; i < logits.length; i++) {
      this.logits.push(logits[i]);
      this.labels.push(labels[i]);
    }
  }

  get count(): number {
    return this.logits.length;
  }

  /** Mean loss and accuracy only (cheap, for per-epoch history). */
  lossAndAccuracy(): { loss: number; accuracy: number } {
    let loss = 0;
    let correct = 0;
    for (let i = 0; i < this.logits.length; i++) {
      loss += bceWithLogits(this.logits[i], this.labels[i]);
      if ((this.logits[i] >= 0 ? 1 : 0) === this.labels[i]) correct++;
    }
    const n = Math.max(1, this.logits.length);
    return { loss: loss / n, accuracy: correct / n };
  }

  /** The confusion matrix at 0.5, and the ROC curve (on probabilities) thinned to at most `maxPoints` points. */
  curves(maxPoints = 200): { confusion: { tp: number; fp: number; fn: number; tn: number }; roc: RocPoint[] } {
    const roc = rocCurve(this.logits.map(sigmoid), this.labels);
    const step = Math.max(1, Math.ceil(roc.length / maxPoints));
    const thinned = roc.filter((_, i) => i % step === 0 || i === roc.length - 1);
    return { confusion: confusionCounts(this.logits, this.labels), roc: thinned };
  }

  result(): SplitMetrics {
    const { loss, accuracy } = this.lossAndAccuracy();
    const { tp, fp, fn } = confusionCounts(this.logits, this.labels);
    const precision = tp + fp > 0 ? tp / (tp + fp) : 0;
    const recall = tp + fn > 0 ? tp / (tp + fn) : 0;
    const f1 = precision + recall > 0 ? (2 * precision * recall) / (precision + recall) : 0;
    const auc = rocAuc(this.logits, this.labels);
    return { examples: this.logits.length, loss, accuracy, precision, recall, f1, roc_auc: Number.isNaN(auc) ? null : auc };
  }
}

/** Counts of the confusion matrix for label 1 (TARGET), predicting 1 where the logit is ≥ 0 (probability ≥ 0.5). */
export function confusionCounts(logits: ArrayLike<number>, labels: ArrayLike<number>): { tp: number; fp: number; fn: number; tn: number } {
  let tp = 0;
  let fp = 0;
  let fn = 0;
  let tn = 0;
  for (let i = 0; i < logits.length; i++) {
    const predicted = logits[i] >= 0 ? 1 : 0;
    if (predicted === 1) {
      if (labels[i] === 1) tp++;
      else fp++;
    } else if (labels[i] === 1) fn++;
    else tn++;
  }
  return { tp, fp, fn, tn };
}

/** One point of a ROC curve: the rates when scores ≥ threshold are predicted 1 (threshold null: nothing is). */
export interface RocPoint {
  fpr: number;
  tpr: number;
  threshold: number | null;
}

/**
 * The ROC curve: one point per distinct score, from the highest down, each counting every example scoring at
 * or above it as predicted 1, after a first point (0, 0) where nothing is (threshold null). Ties move both
 * rates at once. Empty when either class is absent (a rate would divide by zero).
 */
export function rocCurve(scores: ArrayLike<number>, labels: ArrayLike<number>): RocPoint[] {
  const order = Array.from({ length: scores.length }, (_, i) => i).sort((a, b) => scores[b] - scores[a]);
  let positives = 0;
  for (let i = 0; i < labels.length; i++) if (labels[i] === 1) positives++;
  const negatives = labels.length - positives;
  if (positives === 0 || negatives === 0) return [];
  const points: RocPoint[] = [{ fpr: 0, tpr: 0, threshold: null }];
  let tp = 0;
  let fp = 0;
  for (let i = 0; i < order.length; ) {
    const threshold = scores[order[i]];
    for (; i < order.length && scores[order[i]] === threshold; i++) {
      if (labels[order[i]] === 1) tp++;
      else fp++;
    }
    points.push({ fpr: fp / negatives, tpr: tp / positives, threshold });
  }
  return points;
}

/** Area under the ROC curve: the probability that a random positive scores above a random negative (ties count half). */
export function rocAuc(scores: ArrayLike<number>, labels: ArrayLike<number>): number {
  const order = Array.from({ length: scores.length }, (_, i) => i).sort((a, b) => scores[a] - scores[b]);
  let positives = 0;
  let rankSum = 0;
  for (let i = 0; i < order.length; ) {
    let j = i;
    while (j + 1 < order.length && scores[order[j + 1]] === scores[order[i]]) j++;
    const averageRank = (i + j) / 2 + 1; // ranks i+1 .. j+1
    for (let k = i; k <= j; k++) {
      if (labels[order[k]] === 1) {
        positives++;
        rankSum += averageRank;
      }
    }
    i = j + 1;
  }
  const negatives = order.length - positives;
  if (positives === 0 || negatives === 0) return Number.NaN;
  return (rankSum - (positives * (positives + 1)) / 2) / (positives * negatives);
}

export const METRICS_FILE = 'metrics.json';
export const SPLITS = ['train', 'valid', 'test'] as const;

/** metrics.json: the backend, and loss, accuracy, precision, recall, F1 and ROC-AUC per split. */
export interface Metrics {
  backend: string;
  kernel: string;
  best_epoch: number;
  train: SplitMetrics;
  valid: SplitMetrics;
  test: SplitMetrics;
  /** The test split's confusion matrix (label 1 = TARGET) and ROC curve, for the report. */
  test_curves?: { target: string; other: string; confusion: { tp: number; fp: number; fn: number; tn: number }; roc: RocPoint[] };
}
