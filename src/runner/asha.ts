import type { SweepConfig } from '../config/experiment.generated.js';
import type { EpochRecord } from '../training/trained-head.js';

/** Whether a trial goes on after an epoch, and when not, why (shown with the trial). */
export interface Verdict {
  stop: boolean;
  reason?: string;
}

/** The sweep file's `early_stop`, as written (defaults applied by `earlyStopPolicy`). */
export type EarlyStop = NonNullable<SweepConfig['early_stop']>;

/** `early_stop` with its defaults filled in. */
export type EarlyStopPolicy = Required<EarlyStop>;

export function earlyStopPolicy(e: EarlyStop): EarlyStopPolicy {
  return { method: e.method, metric: e.metric ?? 'valid_loss', min_epochs: e.min_epochs ?? 1, reduction_factor: e.reduction_factor ?? 3 };
}

/** The rungs a trial of `maxEpochs` passes: min_epochs × reduction_factor^k, below its last epoch (which has nothing left to save). */
export function rungEpochs(policy: EarlyStopPolicy, maxEpochs: number): number[] {
  const rungs: number[] = [];
  for (let r = policy.min_epochs; r < maxEpochs; r *= policy.reduction_factor) rungs.push(r);
  return rungs;
}

/**
 * The values recorded at each rung, shared by every process that runs a sweep's trials (in memory for
 * one machine, in Redis for a queue). `recordAndRead` is atomic: it returns the values other trials
 * recorded at that rung before this trial first did, and records this trial's value unless it already
 * has one (the first value stays), so a trial replayed after a resume gets the same answer again.
 */
export interface RungStore {
  recordAndRead(rung: number, trialId: string, value: number): Promise<number[]>;
}

export class MemoryRungStore implements RungStore {
  private readonly rungs = new Map<number, { trial: string; value: number }[]>();

  async recordAndRead(rung: number, trialId: string, value: number): Promise<number[]> {
    const list = this.rungs.get(rung) ?? [];
    this.rungs.set(rung, list);
    let at = list.findIndex((e) => e.trial === trialId);
    if (at < 0) {
      list.push({ trial: trialId, value });
      at = list.length - 1;
    }
    return list.slice(0, at).map((e) => e.value);
  }
}

/** The q-quantile (0..1) of values, interpolated linearly between the closest ranks (numpy's default). */
export function quantile(values: number[], q: number): number {
  const sorted = [...values].sort((a, b) => a - b);
  const at = q * (sorted.length - 1);
  const lo = Math.floor(at);
  const hi = Math.ceil(at);
  return sorted[lo] + (sorted[hi] - sorted[lo]) * (at - lo);
}

/**
 * ASHA's rule (as Ray Tune's ASHAScheduler applies it, asynchronously): at a rung, a trial goes on
 * when no value was recorded there before it, or when its value is at least as good as the cutoff
 * that keeps the best 1/reduction_factor of the earlier ones; otherwise it stops. Epochs that are not
 * rungs always go on. The first trials to reach a rung therefore always pass it: with one process
 * the order of the trials decides, as in ASHA.
 */
export async function ashaVerdict(policy: EarlyStopPolicy, store: RungStore, trialId: string, record: EpochRecord, maxEpochs: number): Promise<Verdict> {
  if (!rungEpochs(policy, maxEpochs).includes(record.epoch)) return { stop: false };
  const lowerIsBetter = policy.metric === 'valid_loss';
  const value = record[policy.metric];
  const earlier = await store.recordAndRead(record.epoch, trialId, value);
  if (earlier.length === 0) return { stop: false };
  const keep = 1 / policy.reduction_factor;
  const cutoff = quantile(earlier, lowerIsBetter ? keep : 1 - keep);
  const behind = lowerIsBetter ? value > cutoff : value < cutoff;
  if (!behind) return { stop: false };
  // Enough digits that a value just behind the cutoff does not print as equal to it.
  let digits = 4;
  while (digits < 10 && value.toFixed(digits) === cutoff.toFixed(digits)) digits++;
  const show = (x: number) => (lowerIsBetter ? x.toFixed(digits) : `${(100 * x).toFixed(Math.max(2, digits - 2))}%`);
  return {
    stop: true,
    reason: `${policy.metric} ${show(value)} is behind the cutoff ${show(cutoff)} at the epoch-${record.epoch} rung (the best 1/${policy.reduction_factor} of ${earlier.length} earlier trial${earlier.length === 1 ? '' : 's'})`,
  };
}
