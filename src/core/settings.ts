/** Threads asked for with SENTIMENT_THREADS (a positive integer), or undefined: each engine then picks its own default. */
export function askedThreads(env: NodeJS.ProcessEnv = process.env): number | undefined {
  const asked = Number(env.SENTIMENT_THREADS);
  return Number.isInteger(asked) && asked >= 1 ? asked : undefined;
}

/**
 * Whether ONNX Runtime's idle threads should spin, asked with SENTIMENT_SPINNING (1/true or 0/false), or
 * undefined: each command's default (on, except in `serve`). Off is faster when other processes share
 * the cores, on when they are idle (README: `SENTIMENT_SPINNING`; `npm run bench:spinning`).
 */
export function askedSpinning(env: NodeJS.ProcessEnv = process.env): boolean | undefined {
  const asked = env.SENTIMENT_SPINNING?.trim().toLowerCase();
  if (asked === '1' || asked === 'true') return true;
  if (asked === '0' || asked === 'false') return false;
  return undefined;
}

/**
 * Every setting taken from the environment, read here and nowhere else. None of them changes a
 * result, so none is part of a cache key: SENTIMENT_THREADS only sets how many threads tokenize,
 * encode and the GRU kernel use, SENTIMENT_SPINNING whether ONNX Runtime's idle threads spin (read by
 * src/core/onnxruntime.ts, with the threads); the others say where downloads come from (a dataset's
 * checksum is checked, a model's files are fingerprinted).
 */
export interface Settings {
  /** SENTIMENT_THREADS, when set. */
  threads: number | undefined;
}

export function readSettings(env: NodeJS.ProcessEnv = process.env): Settings {
  return { threads: askedThreads(env) };
}

/** Where `imdb` is downloaded from: SENTIMENT_IMDB_URL / SENTIMENT_IMDB_SHA256 override the defaults (tests, mirrors). */
export function imdbOverrides(env: NodeJS.ProcessEnv = process.env): { url?: string; sha256?: string } {
  return { url: env.SENTIMENT_IMDB_URL || undefined, sha256: env.SENTIMENT_IMDB_SHA256?.toLowerCase() || undefined };
}

/** The Hugging Face hub's address (HF_ENDPOINT, as the Hugging Face libraries read it). */
export function hubEndpoint(env: NodeJS.ProcessEnv = process.env): string {
  return (env.HF_ENDPOINT ?? 'https://huggingface.co').replace(/\/+$/, '');
}

/** The home folder, for MODEL paths starting with ~. */
export function homeDir(env: NodeJS.ProcessEnv = process.env): string {
  return env.HOME ?? '~';
}
