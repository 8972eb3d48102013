import type * as tfjs from '@tensorflow/tfjs';
import { GruBackwardSteps, GruForwardSteps, checkShapes, isGruSaved, realRows } from './gru-steps.js';
import type { GruForwardResult, GruGradients, GruKernel } from './kernel.js';

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

const ROWS_PER_CHUNK = 2048;

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
      const wihT = tf.tensor2d(transpose(w.wih, G, In), [In, G]);
      let gi: Float32Array;
      try {
        gi = product(x, B * T, In, wihT);
      } finally {
        wihT.dispose();
      }
      const steps = new GruForwardSteps(x, shape, lengths, w, reverse, keepForBackward, gi);
      const whhT = tf.tensor2d(transpose(w.whh, G, H), [H, G]);
      try {
        for (let s = 0; s < steps.longestRow; s++) steps.step(steps.timeAt(s), product(steps.h, B, H, whhT));
      } finally {
        whhT.dispose();
      }
      return { output: steps.output, last: steps.h, saved: steps.saved() };
    },

    async backward(savedValue, dOutput, dLast, inputGrad): Promise<GruGradients> {
      if (!isGruSaved(savedValue)) throw new Error('GRU kernel: backward needs what forward saved with keepForBackward');
      await activate();
      const { x, shape, lengths, w } = savedValue;
      const { batch: B, steps: T, input: In, hidden: H } = shape;
      const G = 3 * H;
      const BT = B * T;
      const steps = new GruBackwardSteps(savedValue, dOutput, dLast);
      const whh = tf.tensor2d(w.whh, [G, H]);
      try {
        for (let s = 0; s < steps.longestRow; s++) {
          steps.step(steps.timeAt(s));
          steps.addRecurrent(product(steps.dGhStep, B, G, whh));
        }
      } finally {
        whh.dispose();
      }
      // dW = dGᵀ·input, computed as (inputᵀ·dG)ᵀ: tfjs-wasm is fast only for plain A×B. Padding rows
      // of x are left out, so whatever they hold (even NaN) cannot reach dW_ih through 0·x.
      const dWihT = transposedProduct(x, In, steps.dGi, G, BT, realRows(lengths, T));
      const dWhhT = transposedProduct(steps.hPrev, H, steps.dGh, G, BT);
      let dx: Float32Array | undefined;
      if (inputGrad) {
        const wih = tf.tensor2d(w.wih, [G, In]);
        try {
          dx = product(steps.dGi, BT, G, wih);
        } finally {
          wih.dispose();
        }
      }
      return {
        dx,
        dWih: transpose(dWihT, In, G),
        dWhh: transpose(dWhhT, H, G),
        dBih: Float32Array.from(steps.dBih),
        dBhh: Float32Array.from(steps.dBhh),
      };
    },
  };
}
