/** Reports per-batch progress of a long stage. */
export interface Progress {
  /**
   * `done` of `total` units (rows, bytes, ...) so far; the renderer adds rate and ETA. A new `phase`
   * restarts the rate; `note` (such as the running loss) is only shown.
   */
  update(done: number, total: number | undefined, unit: string, phase?: string, note?: string): void;
  /** A line for the run log (and the terminal when not on a TTY). */
  log(message: string): void;
}

/** What a step shows while it runs: its title, a line of progress that each update replaces, and log lines that stay. */
export interface StepDisplay {
  title: string;
  output: string;
  /** A line worth keeping (an epoch's losses, a warning): shown under the step for the rest of the run. */
  log(line: string): void;
}

export interface Step {
  title: string;
  run(display: StepDisplay): Promise<void>;
}

/**
 * Shows steps as they run, in order, and stops at the first that fails (rethrowing its error). The CLI
 * draws them with listr2 (src/cli); `plainSteps` writes lines to a stream.
 */
export interface StepRenderer {
  run(steps: Step[]): Promise<void>;
}

/** Plain lines, as listr2's simple renderer writes them: `❯ title`, `› output`, `✔ title` / `✖ title [FAILED: …]`. */
export function plainSteps(stream: NodeJS.WritableStream): StepRenderer {
  return {
    async run(steps) {
      for (const step of steps) {
        stream.write(`❯ ${step.title}\n`);
        const display: StepDisplay = {
          title: step.title,
          set output(line: string) {
            stream.write(`› ${line}\n`);
          },
          get output() {
            return '';
          },
          log(line: string) {
            stream.write(`› ${line}\n`);
          },
        };
        try {
          await step.run(display);
        } catch (e) {
          stream.write(`✖ ${display.title} [FAILED: ${e instanceof Error ? e.message : String(e)}]\n`);
          throw e;
        }
        stream.write(`✔ ${display.title}\n`);
      }
    },
  };
}
