export type LearningRateSchedule = 'constant' | 'linear' | 'cosine';

/**
 * The learning rate for optimizer step `step` (0-based) of `total`, as Hugging Face's schedulers give it
 * (get_{constant,linear,cosine}_schedule_with_warmup): a linear rise from 0 over the first
 * `warmup`·total steps, then constant, or a linear or half-cosine decay to 0 at the last step.
 */
export function learningRateAt(schedule: LearningRateSchedule, base: number, warmup: number, step: number, total: number): number {
  const warmupSteps = Math.round(warmup * total);
  if (step < warmupSteps) return (base * step) / Math.max(1, warmupSteps);
  if (schedule === 'constant') return base;
  const progress = (step - warmupSteps) / Math.max(1, total - warmupSteps);
  if (schedule === 'linear') return base * Math.max(0, 1 - progress);
  return base * Math.max(0, 0.5 * (1 + Math.cos(Math.PI * Math.min(1, progress))));
}
