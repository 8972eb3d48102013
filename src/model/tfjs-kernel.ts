import type * as tfjs from '@tensorflow/tfjs';
import type { GruForwardResult, GruGradients, GruKernel, GruShape, GruWeights } from './kernel.js';

type Tf = typeof tfjs;

/**
 * Explicit BPTT: tfjs does only the matrix products, plain JS the gates, on Float32Arrays. Why, as
 * measured on tfjs-backend-wasm: slicing one step out of a large tensor costs ~20 ms there, and only
 * plain A×B products are fast (transposed operands and batched products are ~10× slower); JS gates
 * cost about what a chain of a dozen tfjs ops would. Per layer and direction that is one
 * [B·T, In]×[In, 3H] input projection, one [B, H]×[H, 3H] product per step, and in backward one
 * [B, 3H]×[3H, H] per step plus the products for dW_ih, dW_hh and dx.
 */
export const TFJS_KERNEL_NAME = 'tfjs-bptt';

const SAVED = Symbol('tfjs-bptt saved');
const ROWS_PER_CHUNK = 2048;

interface Saved {
  [SAVED]: true;
  x: Float32Array;
  shape: GruShape;
  lengths: Int32Array;
  w: GruWeights;
  reverse: boolean;
  output: Float32Array;
  /** Gate activations and W_hn h + b_hn per (b, t), rows b·T + t, [B·T, H] each. */
  r: Float32Array;
  z: Float32Array;
  n: Float32Array;
  hn: Float32Array;
}

/** dst[j, i] = src[i, j] for a rows×cols row-major matrix (cache-blocked); rows with keepRow[i] = 0 become zeros. */
export function transpose(src: Float32Array, rows: number, cols: number, keepRow?: Uint8Array): Float32Array {
  const dst = new Float32Array(rows * cols);
  const block = 16;
  for (let i0 = 0; i0 < rows; i0 += block) {
    const i1 = Math.min(rows, i0 + block);
    for (let j0 = 0; j0 < cols; j0 += block) {
      const j1 = Math.min(cols, j0 + block);
      for (let i = i0; i < i1; i++) {
        if (keepRow && !keepRow[i]) continue;
        const from = i * cols;
        for (let j = j0; j < j1; j++) dst[j * rows + i] = src[from + j];
      }
    }
  }
  return dst;
}

/** 1 for the rows b·T + t of real steps (t < len), 0 for padding. */
function realRows(lengths: Int32Array, steps: number): Uint8Array {
  const keep = new Uint8Array(lengths.length * steps);
  lengths.forEach((len, b) => keep.fill(1, b * steps, b * steps + len));
  return keep;
}

function maxOf(lengths: Int32Array): number {
  let max = 0;
  for (let i = 0; i < lengths.length; i++) if (lengths[i] > max) max = lengths[i];
  return max;
}

function checkShapes(x: Float32Array, s: GruShape, lengths: Int32Array, w: GruWeights): void {
  const G = 3 * s.hidden;
  const problems: string[] = [];
  if (x.length !== s.batch * s.steps * s.input) problems.push(`x has ${x.length} values, expected ${s.batch}×${s.steps}×${s.input}`);
  if (lengths.length !== s.batch) problems.push(`${lengths.length} lengths for a batch of ${s.batch}`);
  for (const l of lengths) if (l < 0 || l > s.steps) problems.push(`length ${l} outside [0, ${s.steps}]`);
  if (w.wih.length !== G * s.input || w.whh.length !== G * s.hidden || w.bih.length !== G || w.bhh.length !== G) problems.push('weights do not match the shape');
  if (problems.length) throw new Error(`GRU kernel: ${problems.join('; ')}`);
}

/**
 * The kernel on an initialised tfjs backend. `backendName` is tfjs's name for it: each call makes it
 * the active one first, since tfjs has one global backend and heads on different backends may coexist.
 */
export function createTfjsGruKernel(tf: Tf, backendName: string): GruKernel {
  const activate = async () => {
    if (tf.getBackend() !== backendName && !(await tf.setBackend(backendName))) throw new Error(`tfjs backend ${backendName} could not be activated`);
  };

  /** a [m, k] × b [k, n] → [m, n]. */
  const product = (a: Float32Array, m: number, k: number, b: tfjs.Tensor2D): Float32Array => {
    const at = tf.tensor2d(a, [m, k]);
    const c = tf.matMul(at, b);
    try {
      return c.dataSync() as Float32Array;
    } finally {
      at.dispose();
      c.dispose();
    }
  };

  /**
   * aᵀ·b for a [rows, m] and b [rows, n] → [m, n], rows with keepRow[i] = 0 left out. Summed over
   * chunks of rows: with the inner dimension B·T in one piece XNNPACK runs at half speed (41 vs
   * 82 GFLOP/s for 768×16384×768 on 2 threads).
   */
  const transposedProduct = (a: Float32Array, m: number, b: Float32Array, n: number, rows: number, keepRow?: Uint8Array): Float32Array => {
    const sum = new Float64Array(m * n);
    for (let r0 = 0; r0 < rows; r0 += ROWS_PER_CHUNK) {
      const k = Math.min(rows, r0 + ROWS_PER_CHUNK) - r0;
      const bt = tf.tensor2d(b.subarray(r0 * n, (r0 + k) * n), [k, n]);
      try {
        const part = product(transpose(a.subarray(r0 * m, (r0 + k) * m), k, m, keepRow?.subarray(r0, r0 + k)), m, k, bt);
        for (let i = 0; i < part.length; i++) sum[i] += part[i];
      } finally {
        bt.dispose();
      }
    }
    return Float32Array.from(sum);
  };

  return {
    name: TFJS_KERNEL_NAME,

    async forward(x, shape, lengths, w, reverse, keepForBackward): Promise<GruForwardResult> {
      checkShapes(x, shape, lengths, w);
      await activate();
      const { batch: B, steps: T, input: In, hidden: H } = shape;
      const G = 3 * H;
      const BT = B * T;
      const { bih, bhh } = w;
      const wihT = tf.tensor2d(transpose(w.wih, G, In), [In, G]);
      let gi: Float32Array;
      try {
        gi = product(x, BT, In, wihT);
      } finally {
        wihT.dispose();
      }
      const whhT = tf.tensor2d(transpose(w.whh, G, H), [H, G]);
      const output = new Float32Array(BT * H);
      const h = new Float32Array(B * H);
      const keep = keepForBackward;
      const R = new Float32Array(keep ? BT * H : 0);
      const Z = new Float32Array(keep ? BT * H : 0);
      const N = new Float32Array(keep ? BT * H : 0);
      const HN = new Float32Array(keep ? BT * H : 0);
      // r and z see b_ih + b_hh together; n sees them apart (b_hn is inside r ⊙ (W_hn h + b_hn)).
      const biasR = new Float64Array(H);
      const biasZ = new Float64Array(H);
      for (let j = 0; j < H; j++) {
        biasR[j] = bih[j] + bhh[j];
        biasZ[j] = bih[H + j] + bhh[H + j];
      }
      const biasIn = bih.subarray(2 * H);
      const biasHn = bhh.subarray(2 * H);
      const expR = new Float64Array(H);
      const expZ = new Float64Array(H);
      const maxLen = maxOf(lengths);
      try {
        for (let s = 0; s < maxLen; s++) {
          const t = reverse ? maxLen - 1 - s : s;
          const gh = product(h, B, H, whhT);
          for (let b = 0; b < B; b++) {
            if (t >= lengths[b]) continue;
            const row = b * T + t;
            const giR = row * G;
            const giZ = giR + H;
            const giN = giZ + H;
            const ghR = b * G;
            const ghZ = ghR + H;
            const ghN = ghZ + H;
            const hO = b * H;
            const o = row * H;
            // Math.exp dominates; calling it in a tight loop of its own is ~20% faster than inline.
            for (let j = 0; j < H; j++) {
              expR[j] = Math.exp(-(gi[giR + j] + gh[ghR + j] + biasR[j]));
              expZ[j] = Math.exp(-(gi[giZ + j] + gh[ghZ + j] + biasZ[j]));
            }
            for (let j = 0; j < H; j++) {
              const r = 1 / (1 + expR[j]);
              const z = 1 / (1 + expZ[j]);
              const hn = gh[ghN + j] + biasHn[j];
              // tanh through exp: a third faster than Math.tanh in V8, and as exact in float32.
              const n = 1 - 2 / (Math.exp(2 * (gi[giN + j] + biasIn[j] + r * hn)) + 1);
              const next = n + z * (h[hO + j] - n);
              h[hO + j] = next;
              output[o + j] = next;
              if (keep) {
                R[o + j] = r;
                Z[o + j] = z;
                N[o + j] = n;
                HN[o + j] = hn;
              }
            }
          }
        }
      } finally {
        whhT.dispose();
      }
      const saved: Saved | undefined = keep ? { [SAVED]: true, x, shape, lengths, w, reverse, output, r: R, z: Z, n: N, hn: HN } : undefined;
      return { output, last: h, saved };
    },

    async backward(savedValue, dOutput, dLast, inputGrad): Promise<GruGradients> {
      const saved = savedValue as Saved;
      if (!saved || !saved[SAVED]) throw new Error('GRU kernel: backward needs what forward saved with keepForBackward');
      await activate();
      const { x, shape, lengths, w, reverse, output, r: R, z: Z, n: N, hn: HN } = saved;
      const { batch: B, steps: T, input: In, hidden: H } = shape;
      const G = 3 * H;
      const BT = B * T;
      if (dLast.length !== B * H || (dOutput && dOutput.length !== BT * H)) throw new Error('GRU kernel: gradient shapes do not match the forward pass');
      // Pre-activation gradients, rows b·T + t; padded rows stay zero and so contribute nothing.
      const dGi = new Float32Array(BT * G);
      const dGh = new Float32Array(BT * G);
      const hPrev = new Float32Array(BT * H);
      const dh = Float64Array.from(dLast);
      const dGhStep = new Float32Array(B * G);
      const dBih = new Float64Array(G);
      const dBhh = new Float64Array(G);
      const maxLen = maxOf(lengths);
      const whh = tf.tensor2d(w.whh, [G, H]);
      try {
        for (let s = 0; s < maxLen; s++) {
          const t = reverse ? s : maxLen - 1 - s;
          for (let b = 0; b < B; b++) {
            const stepO = b * G;
            const len = lengths[b];
            if (t >= len) {
              dGhStep.fill(0, stepO, stepO + G);
              continue;
            }
            const row = b * T + t;
            const o = row * H;
            const gO = row * G;
            const hO = b * H;
            const prev = reverse ? (t + 1 < len ? (row + 1) * H : -1) : t > 0 ? (row - 1) * H : -1;
            for (let j = 0; j < H; j++) {
              const g = dh[hO + j] + (dOutput ? dOutput[o + j] : 0);
              const r = R[o + j];
              const z = Z[o + j];
              const n = N[o + j];
              const hp = prev >= 0 ? output[prev + j] : 0;
              const dAn = g * (1 - z) * (1 - n * n);
              const dAr = dAn * HN[o + j] * r * (1 - r);
              const dAz = g * (hp - n) * z * (1 - z);
              const dHn = dAn * r;
              dGi[gO + j] = dAr;
              dGi[gO + H + j] = dAz;
              dGi[gO + 2 * H + j] = dAn;
              dGh[gO + j] = dAr;
              dGh[gO + H + j] = dAz;
              dGh[gO + 2 * H + j] = dHn;
              dGhStep[stepO + j] = dAr;
              dGhStep[stepO + H + j] = dAz;
              dGhStep[stepO + 2 * H + j] = dHn;
              dBih[j] += dAr;
              dBih[H + j] += dAz;
              dBih[2 * H + j] += dAn;
              dBhh[j] += dAr;
              dBhh[H + j] += dAz;
              dBhh[2 * H + j] += dHn;
              hPrev[o + j] = hp;
              dh[hO + j] = g * z;
            }
          }
          const recurrent = product(dGhStep, B, G, whh);
          for (let i = 0; i < B * H; i++) dh[i] += recurrent[i];
        }
      } finally {
        whh.dispose();
      }
      // dW = dGᵀ·input, computed as (inputᵀ·dG)ᵀ: tfjs-wasm is fast only for plain A×B. Padding rows
      // of x are left out, so whatever they hold (even NaN) cannot reach dW_ih through 0·x.
      const dWihT = transposedProduct(x, In, dGi, G, BT, realRows(lengths, T));
      const dWhhT = transposedProduct(hPrev, H, dGh, G, BT);
      let dx: Float32Array | undefined;
      if (inputGrad) {
        const wih = tf.tensor2d(w.wih, [G, In]);
        try {
          dx = product(dGi, BT, G, wih);
        } finally {
          wih.dispose();
        }
      }
      return {
        dx,
        dWih: transpose(dWihT, In, G),
        dWhh: transpose(dWhhT, H, G),
        dBih: Float32Array.from(dBih),
        dBhh: Float32Array.from(dBhh),
      };
    },
  };
}
