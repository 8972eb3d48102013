/**
 * Errors a user can fix (bad config, missing files, offline without a local copy). They exit 1 and are
 * printed without a stack trace unless --verbose. Anything else is a bug and keeps its stack.
 */
export class UserError extends Error {
  /** Extra lines (one problem each) shown under the message. */
  readonly details: string[];
  constructor(message: string, details: string[] = [], options?: { cause?: unknown }) {
    super(message, options);
    this.name = 'UserError';
    this.details = details;
  }

  override toString(): string {
    return [this.message, ...this.details.map((d) => `  ${d}`)].join('\n');
  }
}

export function isUserError(e: unknown): e is UserError {
  return e instanceof UserError;
}

/** Message of any thrown value, for wrapping in a UserError with context. */
export function messageOf(e: unknown): string {
  return e instanceof Error ? e.message : String(e);
}

/**
 * Whoever started the run (a sweep's early stopping) ended training after an epoch: not a failure and
 * not done. The command exits with EXIT_STOPPED; nothing of the stopped stage is cached (its checkpoint
 * is kept, so a later run of the same settings goes on from there).
 */
export class StoppedEarly extends UserError {
  static readonly EXIT = 3;
  constructor(readonly reason: string) {
    super(`stopped early: ${reason}`);
    this.name = 'StoppedEarly';
  }
}

/**
 * A file a stage wrote (an Arrow file, head.safetensors, a JSON file of a cache entry) that cannot be
 * decoded: truncated, overwritten, or not what it should be. The pipeline moves the cache entry that
 * holds `file` aside and recomputes it; elsewhere it is a UserError naming the file.
 */
export class DamagedEntryError extends UserError {
  constructor(
    readonly file: string,
    readonly reason: string,
    options?: { cause?: unknown },
  ) {
    super(`${file}: ${reason}; if it is in the cache, \`sentiment cache verify --repair\` removes the damaged entry`, [], options);
    this.name = 'DamagedEntryError';
  }
}
