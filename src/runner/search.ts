// Random search: trials sampled from a sweep file's `search.space`, reproducibly from a seed.
import { uniformFloat64 } from 'pure-rand/distribution/uniformFloat64';
import { uniformInt } from 'pure-rand/distribution/uniformInt';
import { xoroshiro128plus } from 'pure-rand/generator/xoroshiro128plus';
import type { Distribution } from '../config/experiment.generated.js';

/** The distributions a space entry may name, in the order the schema lists them. */
export const DISTRIBUTIONS = ['choice', 'uniform', 'loguniform', 'int'] as const;
export type DistributionName = (typeof DISTRIBUTIONS)[number];

/** A space entry's single distribution and its argument (schema-valid input). */
export function distributionOf(entry: Distribution): { name: DistributionName; arg: unknown[] } {
  const name = DISTRIBUTIONS.find((d) => entry[d] !== undefined)!;
  return { name, arg: entry[name] as unknown[] };
}

/**
 * What is wrong with a range (uniform / loguniform / int) beyond its shape, which the schema checks:
 * low must be below high, and loguniform's low above 0.
 */
export function rangeProblem(name: DistributionName, arg: unknown[]): string | undefined {
  if (name === 'choice') return undefined;
  const [low, high] = arg as [number, number];
  if (name === 'loguniform' && low <= 0) return `low must be > 0, a logarithm needs it (got [${low}, ${high}])`;
  if (!(low < high)) return `low must be below high (got [${low}, ${high}])`;
  return undefined;
}

/**
 * `trials` samples of `space`, each a mapping of its keys in the order written: the same space, count and
 * seed give the same samples. `int` includes both ends; `uniform` and `loguniform` give low <= x < high.
 */
export function sampleSpace(space: Record<string, Distribution>, trials: number, seed: number): Record<string, unknown>[] {
  const rng = xoroshiro128plus(seed >>> 0);
  const entries = Object.entries(space).map(([key, entry]) => [key, distributionOf(entry)] as const);
  const samples: Record<string, unknown>[] = [];
  for (let t = 0; t < trials; t++) {
    const values: Record<string, unknown> = {};
    for (const [key, { name, arg }] of entries) {
      if (name === 'choice') {
        values[key] = arg[uniformInt(rng, 0, arg.length - 1)];
        continue;
      }
      const [low, high] = arg as [number, number];
      if (name === 'int') values[key] = uniformInt(rng, low, high);
      else if (name === 'uniform') values[key] = below(high, low + (high - low) * uniformFloat64(rng));
      else values[key] = below(high, Math.exp(Math.log(low) + (Math.log(high) - Math.log(low)) * uniformFloat64(rng)));
    }
    samples.push(values);
  }
  return samples;
}

/** Keeps a float draw in [low, high) when rounding lands it on high. */
function below(high: number, x: number): number {
  return x < high ? x : high - Math.abs(high) * Number.EPSILON || -Number.MIN_VALUE;
}

/** A sampled value in a trial label: floats to 3 significant digits (the overrides keep the exact value). */
export function formatSampled(value: unknown): string {
  if (typeof value === 'number' && !Number.isInteger(value)) return String(Number(value.toPrecision(3)));
  return typeof value === 'string' ? value : JSON.stringify(value);
}
