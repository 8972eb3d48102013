/**
 * A process that ends before its command finished must never exit 0. Node exits with 13 when a
 * top-level await never settles, but a dependency's exit hook (signal-exit, loaded by
 * write-file-atomic and listr2's cursor handling) can turn that into 0. `beforeExit` fires only
 * when the event loop ran dry (not on an explicit `process.exit`), so a command still unfinished
 * then has stalled: the guard says what was in progress and makes the exit code 1.
 */

export interface ExitGuard {
  /** The command returned (or threw and was handled): exiting is expected from now on. */
  finished(): void;
}

import { currentActivity, setActivity } from '../core/activity.js';

export { setActivity };

export function guardExit(command: string, stream: NodeJS.WritableStream = process.stderr): ExitGuard {
  let done = false;
  let stalled = false;
  const onBeforeExit = () => {
    if (done || stalled) return;
    stalled = true;
    stream.write(
      `Error: stopped before finishing ${currentActivity() ?? command}: the process ran out of work while a step was still waiting ` +
        '(an engine or library never answered). Nothing was half-written to the cache; rerun the command, and report this with --verbose output if it repeats.\n',
    );
  };
  const onExit = () => {
    if (stalled) process.exitCode = 1;
  };
  process.on('beforeExit', onBeforeExit);
  process.on('exit', onExit);
  return {
    finished() {
      done = true;
    },
  };
}
