import os from 'node:os';
import type * as Ort from 'onnxruntime-common';
import { onnxruntimeRequire } from '../runner/onnxruntime.js';
import { askedThreads } from '../runner/threads.js';
import { GruBackwardSteps, GruForwardSteps, checkShapes, isGruSaved } from './gru-steps.js';
import type { GruForwardResult, GruGradients, GruKernel } from './kernel.js';

/**
 * The same explicit BPTT as tfjs-kernel.ts (gate math in plain JS on Float32Arrays, identical
 * formulas), but every matrix product runs through an ONNX Runtime InferenceSession holding one Gemm
 * node (onnxruntime-node, MLAS sgemm). Transposed operands are free there (Gemm transA/transB), so no
 * weight or activation is transposed in JS: per layer and direction one [B·T, In]×[3H, In]ᵀ input
 * projection, one [B, H]×[3H, H]ᵀ product per step, in backward one [B, 3H]×[3H, H] per step, then
 * dW_ih = dGiᵀ·x, dW_hh = dGhᵀ·h_prev and dx = dGi·W_ih.
 */
export const ORT_KERNEL_NAME = 'ort-bptt';


type OrtModule = typeof Ort;

/** Intra-op threads: SENTIMENT_THREADS when set, else one per logical core. */
export function ortKernelThreads(env: NodeJS.ProcessEnv = process.env): number {
  return askedThreads(env) ?? os.availableParallelism();
}

// ---------------------------------------------------------------------------------------------
// A minimal protobuf writer for the one-node ONNX models (field numbers from onnx/onnx.proto).
// Hand-written rather than through protobufjs, which is only a devDependency here.

const utf8 = new TextEncoder();

function varint(n: number): number[] {
  const out: number[] = [];
  while (n > 0x7f) {
    out.push((n & 0x7f) | 0x80);
    n = Math.floor(n / 128);
  }
  out.push(n);
  return out;
}

function fieldVarint(field: number, value: number): number[] {
  return [...varint(field << 3), ...varint(value)];
}

function fieldBytes(field: number, bytes: ArrayLike<number>): number[] {
  return [...varint((field << 3) | 2), ...varint(bytes.length), ...Array.from(bytes)];
}

const fieldString = (field: number, s: string) => fieldBytes(field, utf8.encode(s));

const ONNX_FLOAT = 1;
const ATTR_INT = 2;

/** ValueInfoProto for a float matrix with symbolic dims. */
function matrixInfo(name: string, dims: [string, string]): number[] {
  const shape = dims.flatMap((d) => fieldBytes(1, fieldString(2, d))); // TensorShapeProto.dim { dim_param }
  const tensorType = [...fieldVarint(1, ONNX_FLOAT), ...fieldBytes(2, shape)];
  return [...fieldString(1, name), ...fieldBytes(2, fieldBytes(1, tensorType))];
}

function intAttr(name: string, value: number): number[] {
  return [...fieldString(1, name), ...fieldVarint(3, value), ...fieldVarint(20, ATTR_INT)];
}

type Variant = 'nn' | 'nt' | 'tn';

/** Y = op(A)·op(B) as one Gemm (no C), any sizes: 'nt' is A·Bᵀ, 'tn' is Aᵀ·B. */
export function gemmModel(variant: Variant): Uint8Array {
  const transA = variant === 'tn' ? 1 : 0;
  const transB = variant === 'nt' ? 1 : 0;
  const node = [
    ...fieldString(1, 'A'),
    ...fieldString(1, 'B'),
    ...fieldString(2, 'Y'),
    ...fieldString(3, 'gemm'),
    ...fieldString(4, 'Gemm'),
    ...fieldBytes(5, intAttr('transA', transA)),
    ...fieldBytes(5, intAttr('transB', transB)),
  ];
  const graph = [
    ...fieldBytes(1, node),
    ...fieldString(2, `gemm_${variant}`),
    ...fieldBytes(11, matrixInfo('A', transA ? ['K', 'M'] : ['M', 'K'])),
    ...fieldBytes(11, matrixInfo('B', transB ? ['N', 'K'] : ['K', 'N'])),
    ...fieldBytes(12, matrixInfo('Y', ['M', 'N'])),
  ];
  const model = [
    ...fieldVarint(1, 8), // ir_version
    ...fieldString(2, 'sentiment-ort-gru-kernel'),
    ...fieldBytes(7, graph),
    ...fieldBytes(8, [...fieldString(1, ''), ...fieldVarint(2, 13)]), // opset_import
  ];
  return Uint8Array.from(model);
}

// ---------------------------------------------------------------------------------------------

/** x with the rows b·T + t of padded steps zeroed (a copy only when there is padding), so NaN there cannot reach dW_ih. */
function maskPadding(x: Float32Array, lengths: Int32Array, steps: number, input: number): Float32Array {
  if (lengths.every((l) => l === steps)) return x;
  const out = x.slice();
  lengths.forEach((len, b) => out.fill(0, (b * steps + len) * input, (b + 1) * steps * input));
  return out;
}

/** Seconds inside session.run (matmul + call overhead), split by pass, and whole forward/backward calls. */
export interface OrtKernelProfile {
  matmulSeconds: number;
  calls: number;
  forwardSeconds: number;
  forwardMatmulSeconds: number;
  backwardSeconds: number;
  backwardMatmulSeconds: number;
}

export const emptyProfile = (): OrtKernelProfile => ({ matmulSeconds: 0, calls: 0, forwardSeconds: 0, forwardMatmulSeconds: 0, backwardSeconds: 0, backwardMatmulSeconds: 0 });

export interface OrtKernelOptions {
  /** Intra-op threads (default ortKernelThreads()). */
  threads?: number;
  /** Whether ORT's pool threads spin between runs (default false: on few cores they would steal the JS gate math's CPU). */
  spinning?: boolean;
  /** Accumulates seconds spent inside session.run and counts calls, for profiling. */
  profile?: OrtKernelProfile;
}

/** The kernel on onnxruntime-node's CPU provider. Sessions (three, one per transpose variant, symbolic dims) are made on first use. */
export function createOrtGruKernel(options: OrtKernelOptions = {}): GruKernel {
  const ort = onnxruntimeRequire()('onnxruntime-node') as OrtModule;
  const threads = options.threads ?? ortKernelThreads();
  const sessions = new Map<Variant, Promise<Ort.InferenceSession>>();
  const session = (variant: Variant): Promise<Ort.InferenceSession> => {
    let s = sessions.get(variant);
    if (!s) {
      s = ort.InferenceSession.create(gemmModel(variant), {
        executionProviders: ['cpu'],
        intraOpNumThreads: threads,
        interOpNumThreads: 1,
        executionMode: 'sequential',
        graphOptimizationLevel: 'all',
        extra: { session: { intra_op: { allow_spinning: options.spinning ? '1' : '0' } } },
      });
      sessions.set(variant, s);
    }
    return s;
  };
  const profile = options.profile;

  /** op(a)·op(b): a is [m, k] ('nn', 'nt') or [k, m] ('tn'); b is [k, n] ('nn', 'tn') or [n, k] ('nt'). Returns [m, n]. */
  const gemm = async (variant: Variant, a: Float32Array, m: number, k: number, b: Float32Array, n: number): Promise<Float32Array> => {
    const s = await session(variant);
    const A = new ort.Tensor('float32', a, variant === 'tn' ? [k, m] : [m, k]);
    const B = new ort.Tensor('float32', b, variant === 'nt' ? [n, k] : [k, n]);
    const start = profile ? performance.now() : 0;
    const { Y } = await s.run({ A, B });
    if (profile) {
      profile.matmulSeconds += (performance.now() - start) / 1000;
      profile.calls++;
    }
    return Y.data as Float32Array;
  };

  const timed = <A extends unknown[], R>(pass: 'forward' | 'backward', f: (...args: A) => Promise<R>) =>
    async (...args: A): Promise<R> => {
      if (!profile) return f(...args);
      const start = performance.now();
      const before = profile.matmulSeconds;
      try {
        return await f(...args);
      } finally {
        profile[`${pass}Seconds`] += (performance.now() - start) / 1000;
        profile[`${pass}MatmulSeconds`] += profile.matmulSeconds - before;
      }
    };

  const kernel: GruKernel = {
    name: ORT_KERNEL_NAME,

    async forward(x, shape, lengths, w, reverse, keepForBackward): Promise<GruForwardResult> {
      checkShapes(x, shape, lengths, w);
      const { batch: B, steps: T, input: In, hidden: H } = shape;
      const G = 3 * H;
      const gi = await gemm('nt', x, B * T, In, w.wih, G);
      const steps = new GruForwardSteps(x, shape, lengths, w, reverse, keepForBackward, gi);
      for (let s = 0; s < steps.maxLength; s++) {
        const t = steps.timeAt(s);
        steps.step(t, await gemm('nt', steps.h, B, H, w.whh, G));
      }
      return { output: steps.output, last: steps.h, saved: steps.saved() };
    },

    async backward(savedValue, dOutput, dLast, inputGrad): Promise<GruGradients> {
      if (!isGruSaved(savedValue)) throw new Error('GRU kernel: backward needs what forward saved with keepForBackward');
      const { x, shape, lengths, w } = savedValue;
      const { batch: B, steps: T, input: In, hidden: H } = shape;
      const G = 3 * H;
      const BT = B * T;
      const steps = new GruBackwardSteps(savedValue, dOutput, dLast);
      for (let s = 0; s < steps.maxLength; s++) {
        steps.step(steps.timeAt(s));
        steps.addRecurrent(await gemm('nn', steps.dGhStep, B, G, w.whh, H));
      }
      // dW = dGᵀ·input straight from Gemm's transA. Padding rows of x are zeroed first, so whatever
      // they hold (even NaN) cannot reach dW_ih through 0·x.
      const dWih = await gemm('tn', steps.dGi, G, BT, maskPadding(x, lengths, T, In), In);
      const dWhh = await gemm('tn', steps.dGh, G, BT, steps.hPrev, H);
      const dx = inputGrad ? await gemm('nn', steps.dGi, BT, G, w.wih, In) : undefined;
      return { dx, dWih, dWhh, dBih: Float32Array.from(steps.dBih), dBhh: Float32Array.from(steps.dBhh) };
    },
  };
  return { name: ORT_KERNEL_NAME, forward: timed('forward', kernel.forward), backward: timed('backward', kernel.backward) };
}
