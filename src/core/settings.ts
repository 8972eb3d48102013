/** Threads asked for with SENTIMENT_THREADS (a positive integer), or undefined: each engine then picks its own default. */
export function askedThreads(env: NodeJS.ProcessEnv = process.env): number | undefined {
  const asked = Number(env.SENTIMENT_THREADS);
  return Number.isInteger(asked) && asked >= 1 ? asked : undefined;
}

/**
 * Settings from the environment, read once (by the runner) and handed to what needs them. None of
 * them changes a result, so none is part of a cache key: SENTIMENT_THREADS only sets how many
 * threads tokenize, encode and the GRU kernel use.
 */
export interface Settings {
  /** SENTIMENT_THREADS, when set. */
  threads: number | undefined;
}

export function readSettings(env: NodeJS.ProcessEnv = process.env): Settings {
  return { threads: askedThreads(env) };
}
