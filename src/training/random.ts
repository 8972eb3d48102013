import { uniformInt } from 'pure-rand/distribution/uniformInt';
import { xoroshiro128plus } from 'pure-rand/generator/xoroshiro128plus';

/** A seeded generator for one purpose (e.g. epoch 3's shuffling), independent of every other purpose. */
export function seededGenerator(seed: number, ...purpose: number[]) {
  let mixed = seed >>> 0;
  for (const p of purpose) mixed = (Math.imul(mixed ^ (p + 0x9e3779b9), 0x85ebca6b) ^ (mixed >>> 13)) >>> 0;
  return xoroshiro128plus(mixed);
}

/** Fisher–Yates shuffle in place with a seeded generator. */
export function shuffleInPlace<T>(items: T[], rng: ReturnType<typeof xoroshiro128plus>): T[] {
  for (let i = items.length - 1; i > 0; i--) {
    const j = uniformInt(rng, 0, i);
    [items[i], items[j]] = [items[j], items[i]];
  }
  return items;
}
