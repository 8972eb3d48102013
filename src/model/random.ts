/** Purposes of the head's random streams: each is independent of the others for the same SEED. */
export const STREAM_INIT = 1;
export const STREAM_DROPOUT = 2;

/** sfc32 seeded through splitmix32 from (seed, stream): deterministic, and fast enough for dropout's millions of draws per step. */
export class Random {
  private a: number;
  private b: number;
  private c: number;
  private d: number;

  constructor(seed: number, stream: number) {
    let s = (seed >>> 0) ^ Math.imul(stream + 1, 0x9e3779b9);
    const next = () => {
      s = (s + 0x9e3779b9) | 0;
      let z = s;
      z = Math.imul(z ^ (z >>> 16), 0x85ebca6b);
      z = Math.imul(z ^ (z >>> 13), 0xc2b2ae35);
      return (z ^ (z >>> 16)) >>> 0;
    };
    this.a = next();
    this.b = next();
    this.c = next();
    this.d = next();
    for (let i = 0; i < 12; i++) this.nextUint32();
  }

  nextUint32(): number {
    const t = (((this.a + this.b) | 0) + this.d) | 0;
    this.d = (this.d + 1) | 0;
    this.a = this.b ^ (this.b >>> 9);
    this.b = (this.c + (this.c << 3)) | 0;
    this.c = (this.c << 21) | (this.c >>> 11);
    this.c = (this.c + t) | 0;
    return t >>> 0;
  }

  /** Uniform in [0, 1). */
  nextFloat(): number {
    return this.nextUint32() / 4294967296;
  }

  /**
   * out[i] = nextFloat() ≥ p ? keep : 0 for i in [from, to), the same draws as calling nextFloat() in order,
   * with the state in locals: dropout draws millions per step.
   */
  fillDropout(out: Float32Array, p: number, keep: number, from = 0, to = out.length): void {
    const threshold = p * 4294967296; // nextUint32() / 2³² ≥ p exactly when nextUint32() ≥ p·2³²
    let { a, b, c, d } = this;
    for (let i = from; i < to; i++) {
      const t = (((a + b) | 0) + d) | 0;
      d = (d + 1) | 0;
      a = b ^ (b >>> 9);
      b = (c + (c << 3)) | 0;
      c = (c << 21) | (c >>> 11);
      c = (c + t) | 0;
      out[i] = t >>> 0 >= threshold ? keep : 0;
    }
    this.a = a;
    this.b = b;
    this.c = c;
    this.d = d;
  }

  /** Uniform in [low, high), as torch's uniform_. */
  uniform(low: number, high: number): number {
    return low + (high - low) * this.nextFloat();
  }

  /** Standard normal (Box–Muller). */
  normal(): number {
    const u = 1 - this.nextFloat();
    return Math.sqrt(-2 * Math.log(u)) * Math.cos(2 * Math.PI * this.nextFloat());
  }

  getState(): [number, number, number, number] {
    return [this.a, this.b, this.c, this.d];
  }

  setState(state: readonly number[]): void {
    [this.a, this.b, this.c, this.d] = state.map((v) => v | 0);
  }
}
