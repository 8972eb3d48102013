import { StoppedEarly } from '../core/errors.js';
import { TRIAL_IPC_ENV, type TrialMessage } from '../runner/executor.js';
import type { Verdict } from '../runner/asha.js';
import type { RunObserver } from '../stages/stage.js';

/**
 * The run's side of a sweep trial (see runTrialProcess): when a sweep or worker started this run with
 * an IPC channel, each epoch goes to it and training waits for its verdict; a stop throws StoppedEarly.
 * When the channel closes (the sweep or worker died), `onParentGone` stops the run as Ctrl-C would, so no
 * orphaned trial trains on for nobody. Undefined for a run started any other way.
 */
export function trialObserver(onParentGone: () => void): RunObserver | undefined {
  if (process.env[TRIAL_IPC_ENV] !== '1' || !process.send || !process.channel) return undefined;
  const channel = process.channel;
  let waiting: ((verdict: Verdict) => void) | undefined;
  process.on('message', (m: TrialMessage) => {
    if (m?.type === 'verdict') waiting?.(m.verdict);
  });
  process.on('disconnect', () => {
    waiting?.({ stop: true, reason: 'the sweep that started this trial is gone' });
    onParentGone();
  });
  // Listening refs the channel: only hold the process open while a verdict is awaited.
  channel.unref();
  return {
    async afterEpoch(record, epochs) {
      if (!process.connected) return;
      channel.ref();
      const verdict = await new Promise<Verdict>((resolve) => {
        waiting = resolve;
        process.send!({ type: 'epoch', record, epochs } satisfies TrialMessage);
      }).finally(() => {
        waiting = undefined;
        channel.unref();
      });
      if (verdict.stop) throw new StoppedEarly(verdict.reason ?? 'the sweep stopped it');
    },
  };
}
