import type { GruKernel, GruLayerForwardResult, GruLayerGradients, GruLayerKernel, LayerActivations } from './kernel.js';

/** [rows, H] + [rows, H] → [rows, 2H]: forward then backward state per row, as nn.GRU lays out its output. */
function interleave(a: Float32Array, b: Float32Array, rows: number, H: number): Float32Array {
  const out = new Float32Array(rows * 2 * H);
  for (let r = 0; r < rows; r++) {
    out.set(a.subarray(r * H, (r + 1) * H), r * 2 * H);
    out.set(b.subarray(r * H, (r + 1) * H), r * 2 * H + H);
  }
  return out;
}

function deinterleave(x: Float32Array, rows: number, H: number): [Float32Array, Float32Array] {
  const a = new Float32Array(rows * H);
  const b = new Float32Array(rows * H);
  for (let r = 0; r < rows; r++) {
    a.set(x.subarray(r * 2 * H, r * 2 * H + H), r * H);
    b.set(x.subarray(r * 2 * H + H, (r + 1) * 2 * H), r * H);
  }
  return [a, b];
}

function multiply(a: Float32Array, mask: Float32Array): Float32Array {
  const out = new Float32Array(a.length);
  for (let i = 0; i < a.length; i++) out[i] = a[i] * mask[i];
  return out;
}

interface DirectionsSaved {
  saved: unknown[];
  mask?: Float32Array;
  rows: number;
  hidden: number;
  inputSize: number;
}

const batchMajor = (data: Float32Array): LayerActivations => ({ layout: 'batch-major', data });

/**
 * A layer kernel from a kernel of one direction: each direction in turn, outputs interleaved and
 * dropout applied in JS, everything batch-major. This is how the tfjs kernel runs a layer.
 */
export function directionLayers(kernel: GruKernel): GruLayerKernel {
  return {
    name: kernel.name,
    layout: 'batch-major',

    async forward(input, shape, lengths, weights, inputMask, keep): Promise<GruLayerForwardResult> {
      const { batch: B, steps: T, hidden: H, directions: D } = shape;
      let x = input instanceof Float32Array ? input : input.data;
      if (inputMask) x = multiply(x, inputMask);
      const outputs: Float32Array[] = [];
      const lasts: Float32Array[] = [];
      const saved: unknown[] = [];
      for (let d = 0; d < D; d++) {
        const r = await kernel.forward(x, shape, lengths, weights[d], d === 1, keep);
        outputs.push(r.output);
        lasts.push(r.last);
        saved.push(r.saved);
      }
      const output = D === 1 ? outputs[0] : interleave(outputs[0], outputs[1], B * T, H);
      const last = D === 1 ? lasts[0] : interleave(lasts[0], lasts[1], B, H);
      const record: DirectionsSaved = { saved, mask: inputMask, rows: B * T, hidden: H, inputSize: shape.input };
      return { output: batchMajor(output), last, saved: keep ? record : undefined };
    },

    async backward(savedValue, dOutput, dLast, inputGrad): Promise<GruLayerGradients> {
      const s = savedValue as DirectionsSaved;
      const D = s.saved.length;
      const B = dLast.length / (D * s.hidden);
      const dOutputs = !dOutput ? [undefined, undefined] : D === 1 ? [dOutput.data] : deinterleave(dOutput.data, s.rows, s.hidden);
      const dLasts = D === 1 ? [dLast] : deinterleave(dLast, B, s.hidden);
      const dInput = inputGrad ? new Float32Array(s.rows * s.inputSize) : undefined;
      const grads = [];
      for (let d = 0; d < D; d++) {
        const g = await kernel.backward(s.saved[d], dOutputs[d], dLasts[d], inputGrad);
        if (dInput && g.dx) for (let i = 0; i < dInput.length; i++) dInput[i] += g.dx[i];
        grads.push(g);
      }
      if (dInput && s.mask) for (let i = 0; i < dInput.length; i++) dInput[i] *= s.mask[i];
      return { dInput: dInput && batchMajor(dInput), grads };
    },
  };
}
