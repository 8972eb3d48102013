import { Command, Flags } from '@oclif/core';
import { ConfigError, UsageError } from '../config/experiment.js';
import { StoppedEarly, isUserError } from '../core/errors.js';
import { explainSystemError } from '../core/system-errors.js';
import { defaultCacheDir, defaultRunsDir } from '../core/project.js';

/**
 * Shared error handling: user errors print their message and exit 1 (2 for wrong usage), with a
 * stack trace only under --verbose; anything else is a bug and prints its stack.
 */
export abstract class SentimentCommand extends Command {
  static override baseFlags = {
    verbose: Flags.boolean({ description: 'Show stack traces and extra detail for errors.', default: false }),
  };

  protected get verbose(): boolean {
    return this.argv.includes('--verbose');
  }

  /**
   * Ctrl-C and SIGTERM abort the returned signal, after saying `message` (unless it is null: the command
   * says it); a second one exits 130 at once. The command checks `signal.aborted` and exits 130
   * (`this.exit(130)`) when it has stopped.
   */
  protected interruptible(message: string | null): { signal: AbortSignal; abort(): void; dispose(): void } {
    const controller = new AbortController();
    const onSignal = () => {
      if (controller.signal.aborted) process.exit(130);
      if (message !== null) process.stderr.write(`\ninterrupted: ${message}\n`);
      controller.abort(new Error('interrupted'));
    };
    process.on('SIGINT', onSignal);
    process.on('SIGTERM', onSignal);
    return {
      signal: controller.signal,
      /** Stops the command as a first Ctrl-C would, without saying so (its caller says why). */
      abort: () => controller.abort(new Error('interrupted')),
      dispose() {
        process.off('SIGINT', onSignal);
        process.off('SIGTERM', onSignal);
      },
    };
  }

  /** Whether the command printed anything on stdout (with --json: its one JSON document). */
  private wroteStdout = false;

  override log(message?: string, ...args: unknown[]): void {
    this.wroteStdout = true;
    super.log(message, ...args);
  }

  /**
   * With --json, a failure is a JSON document on stdout too, `{"error": message, "exit": code}`, unless
   * the command already printed its document (cache verify's report, infer's rows read so far).
   */
  private failJson(err: Error & { code?: unknown }, exit: number): void {
    if (!this.argv.includes('--json') || this.wroteStdout || err.code === 'EEXIT') return;
    this.wroteStdout = true;
    process.stdout.write(`${JSON.stringify({ error: isUserError(err) ? err.toString() : err.message, exit })}\n`);
  }

  protected override async catch(thrown: Error & { oclif?: { exit?: number } }): Promise<unknown> {
    // A full disk or a permission problem is the user's to fix, not a bug: no stack trace.
    const err = explainSystemError(thrown) as Error & { oclif?: { exit?: number } };
    if (err.oclif?.exit !== undefined && !isUserError(err)) {
      this.failJson(err, err.oclif.exit);
      return super.catch(err);
    }
    if (err instanceof StoppedEarly) {
      this.failJson(err, StoppedEarly.EXIT);
      process.stderr.write(`Stopped early: ${err.reason}\n`);
      return this.exit(StoppedEarly.EXIT);
    }
    this.failJson(err, err instanceof UsageError ? 2 : 1);
    if (err instanceof ConfigError) {
      process.stderr.write(`${err.message}\n`);
      const n = err.problems.length;
      process.stderr.write(`${n} problem${n === 1 ? '' : 's'} found\n`);
    } else if (isUserError(err)) {
      process.stderr.write(`Error: ${err.toString()}\n`);
    } else {
      process.stderr.write(`${err.stack ?? err.message}\n`);
    }
    if (this.verbose && err.stack && isUserError(err)) process.stderr.write(`${err.stack}\n`);
    return this.exit(err instanceof UsageError ? 2 : 1);
  }
}

/**
 * Where caches and runs go: flag, else environment, else under the project root (the nearest folder up
 * from the current one holding `.sentiment/`, else `package.json` or `.git`, else the current folder).
 */
export const locationFlags = {
  'cache-dir': Flags.string({
    description: 'Cache of stage outputs; by default .sentiment/cache in the project root: the nearest folder up from the current one that holds a .sentiment/ folder, else a package.json or .git, else the current folder.',
    env: 'SENTIMENT_CACHE_DIR',
    default: async () => defaultCacheDir(),
  }),
  'runs-dir': Flags.string({
    description: 'Where run folders are written; by default runs/ in the project root (found as for --cache-dir).',
    env: 'SENTIMENT_RUNS_DIR',
    default: async () => defaultRunsDir(),
  }),
};

export const setFlag = Flags.string({
  description: 'Override a setting, KEY=VALUE (VALUE read as YAML); repeatable. Validated like the file.',
  multiple: true,
  multipleNonGreedy: true,
  default: [],
});
