/** Threads asked for with SENTIMENT_THREADS (a positive integer), or undefined: each engine then picks its own default. */
export function askedThreads(env: NodeJS.ProcessEnv = process.env): number | undefined {
  const asked = Number(env.SENTIMENT_THREADS);
  return Number.isInteger(asked) && asked >= 1 ? asked : undefined;
}
