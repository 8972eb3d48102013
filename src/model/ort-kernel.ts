import type * as Ort from 'onnxruntime-common';
import { createSession, intraOpThreads, onnxruntime } from '../core/onnxruntime.js';
import { checkWeights } from './gru-steps.js';
import type { ActivationLayout, GruLayerForwardResult, GruLayerGradients, GruLayerKernel, GruLayerShape, GruNetworkGradients, GruWeights } from './kernel.js';
import { Graph, encodeModel } from './onnx-graph.js';

/**
 * The GRU on ONNX Runtime (onnxruntime-node's CPU provider, MLAS GEMMs) as whole graphs written here:
 * per layer and direction, the input projection of every step as one MatMul, an ONNX Scan over time
 * whose body is one step (a [B, H]×[H, 3H] product and the gate math, plus, when training, the factors
 * backward needs), and in backward a Scan back through time and the weight gradients as a few large
 * products. A training step is one session run for the whole network (gruTrainStepModel) and
 * evaluation another (gruFusedPredictModel, on ONNX's own GRU operator; gruPredictModel is its Scan
 * twin): handing activations to JS and back cost more than the arithmetic. Layers can also run one by one (forward/backward), as the tfjs kernel does. The formulas
 * are PyTorch's GRU and its BPTT (as gru-steps.ts), in float32; activations are time-major inside.
 * Padded steps are masked by multiplying with 0/1, so the first layer's padding is zeroed first.
 */
export const ORT_KERNEL_NAME = 'ort-scan';

/** Intra-op threads (src/core/onnxruntime.ts's policy): SENTIMENT_THREADS when set, else one per logical core. */
export function ortKernelThreads(env: NodeJS.ProcessEnv = process.env): number {
  return intraOpThreads('gru-kernel', env)!;
}

/** ONNX Scan direction: 1 runs the time axis last-to-first. */
const scanDirection = (backwardInTime: boolean) => (backwardInTime ? 1 : 0);

/** What a layer graph is specialised for; each combination is its own session. */
export interface LayerGraphOptions {
  input: number;
  hidden: number;
  directions: 1 | 2;
  /** batch-major for the first layer (the batch's features), time-major above it. */
  inputLayout: ActivationLayout;
  /** Whether the input is multiplied by dropout multipliers XMask (time-major input only). */
  inputMask: boolean;
}

/** The layer's input as the GRU sees it, [T, B, In]: X transposed if batch-major, times XMask if given. */
function layerInput(g: Graph, o: LayerGraphOptions): { XIn: string; XMask?: string } {
  if (o.inputMask && o.inputLayout !== 'time-major') throw new Error('GRU kernel: dropout multipliers need a time-major input');
  const X = g.input('X', 'float', o.inputLayout === 'batch-major' ? ['B', 'T', o.input] : ['T', 'B', o.input]);
  const Xt = o.inputLayout === 'batch-major' ? g.op1('Transpose', [X], { perm: [1, 0, 2] }) : X;
  if (!o.inputMask) return { XIn: Xt };
  const XMask = g.input('XMask', 'float', ['T', 'B', o.input]);
  return { XIn: g.op1('Mul', [Xt, XMask]), XMask };
}

/** Direction d's slice [d·H, (d+1)·H) of the last axis (axis `axis`), or the tensor itself with one direction. */
function directionSlice(g: Graph, o: LayerGraphOptions, t: string, d: number, axis: number): string {
  if (o.directions === 1) return t;
  const H = o.hidden;
  return g.op1('Slice', [t, g.int64s([d * H]), g.int64s([(d + 1) * H]), g.int64s([axis])]);
}

/** Input names of direction d's weights; `prefix` tells layers apart in a whole-network graph. */
const weightNames = (d: number, prefix = '') => ({ Wih: `${prefix}Wih${d}`, Whh: `${prefix}Whh${d}`, Bih: `${prefix}Bih${d}`, Bhh: `${prefix}Bhh${d}` });

/** Per direction: C [T, B, 4H], Z and HP [T, B, H] (see addLayerForward). */
interface FactorNames {
  C: string;
  Z: string;
  HP: string;
}

/**
 * Adds one layer's forward pass to `g` over XIn [T, B, In] with mask M [T, B, 1] (1 on real steps) and
 * zero state H0 [B, H], declaring the weight inputs. Returns Y [T, B, D·H] (0 on padding), Last [B, D·H]
 * and, with `keep`, what backward needs of each direction, computed in the step while its values are
 * in cache: C = (∂h/∂a_n, ∂h/∂a_r, ∂h/∂a_z, ∂h/∂(W_hn h + b_hn)) = ((1−z)(1−n²), C_n·hn·r(1−r),
 * (h_prev−n)·z(1−z), C_n·r), zero on padding; Z (1 on padding, so dh passes through unchanged) and HP
 * (the state each step started from).
 */
function addLayerForward(g: Graph, prefix: string, o: LayerGraphOptions, XIn: string, M: string, H0: string, keep: boolean) {
  const H = o.hidden;
  const ys: string[] = [];
  const lasts: string[] = [];
  const factors: FactorNames[] = [];
  for (let d = 0; d < o.directions; d++) {
    const n = weightNames(d, prefix);
    const [Wih, Whh, Bih, Bhh] = [g.input(n.Wih, 'float', [3 * H, o.input]), g.input(n.Whh, 'float', [3 * H, H]), g.input(n.Bih, 'float', [3 * H]), g.input(n.Bhh, 'float', [3 * H])];
    // The input projection of every step at once: one [T·B, In]×[In, 3H] product.
    const GI = g.op1('Add', [g.op1('MatMul', [XIn, g.op1('Transpose', [Wih])]), Bih]);

    // One step. Padding (mask 0) must leave h exactly as it was: h' = h − (m(1−z)) ⊙ (h − n) does, with
    // h − n finite (the first layer's padding is zeroed before it gets here).
    const name = `${prefix}step${d}`;
    const body = new Graph(name);
    const h = body.input(`${name}/h`);
    const gi = body.input(`${name}/gi`);
    const m = body.input(`${name}/m`);
    const one = body.scalar(1);
    const rzN = body.int64s([2 * H, H]);
    const [giRZ, giN] = body.op('Split', [gi, rzN], { axis: 1 }, 2);
    const [ghRZ, ghN] = body.op('Split', [body.op1('Gemm', [h, Whh, Bhh], { transB: 1 }), rzN], { axis: 1 }, 2);
    const [r, z] = body.op('Split', [body.op1('Sigmoid', [body.op1('Add', [giRZ, ghRZ])]), body.int64s([H, H])], { axis: 1 }, 2);
    const nGate = body.op1('Tanh', [body.op1('Add', [giN, body.op1('Mul', [r, ghN])])]);
    const hMinusN = body.op1('Sub', [h, nGate]);
    const keepNew = body.op1('Mul', [body.op1('Sub', [one, z]), m]); // m(1−z)
    const hOut = body.op1('Sub', [h, body.op1('Mul', [keepNew, hMinusN])]);
    const outputs = [hOut, body.op1('Mul', [hOut, m])];
    if (keep) {
      const cn = body.op1('Mul', [keepNew, body.op1('Sub', [one, body.op1('Mul', [nGate, nGate])])]);
      const chn = body.op1('Mul', [cn, r]);
      const cr = body.op1('Mul', [body.op1('Mul', [chn, ghN]), body.op1('Sub', [one, r])]);
      const cz = body.op1('Mul', [hMinusN, body.op1('Mul', [z, keepNew])]);
      outputs.push(body.op1('Concat', [cn, cr, cz, chn], { axis: 1 }), body.op1('Sub', [one, keepNew]), body.op1('Identity', [h]));
    }
    for (const out of outputs) body.output(out);

    const names = [`${prefix}Last${d}`, `${prefix}Y${d}`, ...(keep ? [`${prefix}C${d}`, `${prefix}Z${d}`, `${prefix}HP${d}`] : [])];
    const dir = scanDirection(d === 1);
    g.op('Scan', [H0, GI, M], { body, num_scan_inputs: 2, scan_input_directions: [dir, dir], scan_output_directions: Array(names.length - 1).fill(dir) }, names);
    ys.push(names[1]);
    lasts.push(names[0]);
    if (keep) factors.push({ C: names[2], Z: names[3], HP: names[4] });
  }
  const Y = o.directions === 2 ? g.op1('Concat', ys, { axis: 2 }) : ys[0];
  const Last = o.directions === 2 ? g.op1('Concat', lasts, { axis: 1 }) : lasts[0];
  return { Y, Last, factors };
}

/**
 * Adds one layer's BPTT to `g` from what addLayerForward kept (`factors`), given DY [T, B, D·H] (0 on
 * padding; none = 0) and DLast [B, D·H] (none = 0, then `zeros` [B, H] starts the state). Returns per
 * direction the names of dW_ih, dW_hh, db_ih, db_hh (PyTorch's gate order) and, with `inputGrad`, DX
 * [T, B, In] (before any dropout on the input).
 *
 * A step is g = dh + dy, D = g ⊙ C in four blocks (dA_n, dA_r, dA_z, dA_hn) and dh' = g ⊙ z + dG_h·W_hh
 * with dG_h = D[H:4H] (r, z, hn: W_hh's order); dG_i = D[0:3H] is in the order n, r, z, so W_ih's gate
 * blocks are rotated to match for dx, and dW_ih's and db_ih's back.
 */
function addLayerBackward(g: Graph, prefix: string, o: LayerGraphOptions, XIn: string, factors: FactorNames[], DY: string | undefined, DLast: string | undefined, zeros: string, inputGrad: boolean) {
  const H = o.hidden;
  const rows = (t: string, width: number) => g.op1('Reshape', [t, g.int64s([-1, width])]);
  const XRows = rows(XIn, o.input);
  const axis0 = g.int64s([0]);
  const grads: { dWih: string; dWhh: string; dBih: string; dBhh: string }[] = [];
  let DX: string | undefined;
  for (let d = 0; d < o.directions; d++) {
    const w = weightNames(d, prefix);
    const { C, Z, HP } = factors[d];
    const name = `${prefix}bstep${d}`;
    const body = new Graph(name);
    const dh = body.input(`${name}/dh`);
    const dy = DY ? body.input(`${name}/dy`) : undefined;
    const c = body.input(`${name}/c`);
    const z = body.input(`${name}/z`);
    const grad = dy ? body.op1('Add', [dh, dy]) : body.op1('Identity', [dh]);
    const D4 = body.op1('Reshape', [body.op1('Mul', [c, body.op1('Unsqueeze', [grad, body.int64s([1])])]), body.int64s([-1, 4 * H])]);
    const axis1 = body.int64s([1]);
    const dGi = body.op1('Slice', [D4, body.int64s([0]), body.int64s([3 * H]), axis1]);
    const dGh = body.op1('Slice', [D4, body.int64s([H]), body.int64s([4 * H]), axis1]);
    const carried = body.op1('Gemm', [dGh, w.Whh, body.op1('Mul', [grad, z])]);
    for (const out of [carried, dGi, dGh]) body.output(out);

    const dir = scanDirection(d === 0);
    const scanInputs = [...(DY ? [directionSlice(g, o, DY, d, 2)] : []), g.op1('Reshape', [C, g.int64s([0, 0, 4, H])]), Z];
    const [, DGi, DGh] = g.op('Scan', [DLast ? directionSlice(g, o, DLast, d, 1) : zeros, ...scanInputs], {
      body,
      num_scan_inputs: scanInputs.length,
      scan_input_directions: Array(scanInputs.length).fill(dir),
      scan_output_directions: [dir, dir],
    }, 3);
    const DGiRows = rows(DGi, 3 * H);
    const DGhRows = rows(DGh, 3 * H);
    const toRZN = (t: string, axis: number) => {
      const [n, rz] = g.op('Split', [t, g.int64s([H, 2 * H])], { axis }, 2);
      return g.op1('Concat', [rz, n], { axis });
    };
    grads.push({
      dWih: toRZN(g.op1('Gemm', [DGiRows, XRows], { transA: 1 }), 0),
      dWhh: g.op1('Gemm', [DGhRows, rows(HP, H)], { transA: 1 }),
      dBih: toRZN(g.op1('ReduceSum', [DGiRows, axis0], { keepdims: 0 }), 0),
      dBhh: g.op1('ReduceSum', [DGhRows, axis0], { keepdims: 0 }),
    });
    if (inputGrad) {
      // dx = Σ_d dG_i·W_ih (blocks n, r, z), the second direction accumulated by Gemm's C.
      const [wRZ, wN] = g.op('Split', [w.Wih, g.int64s([2 * H, H])], { axis: 0 }, 2);
      const WihNRZ = g.op1('Concat', [wN, wRZ], { axis: 0 });
      DX = DX ? g.op1('Gemm', [DGiRows, WihNRZ, DX]) : g.op1('MatMul', [DGiRows, WihNRZ]);
    }
  }
  return { grads, DX: DX && g.op1('Reshape', [DX, g.op1('Shape', [XIn])]) };
}

/**
 * Forward over one layer (the layer-by-layer API). The head trains and predicts through the whole-network
 * graphs (gruTrainStepModel, gruPredictModel); the layer graphs stay because GruLayerKernel requires them
 * and test/model/ort-kernel.test.ts checks each layer's forward and backward against the tfjs kernel and
 * PyTorch with them, which pins down the same addLayerForward/addLayerBackward the network graphs are built
 * from. Inputs X, [XMask],
 * M [T, B, 1] (1 on real steps), H0 [B, H] (zeros) and per direction d Wih{d}, Whh{d}, Bih{d}, Bhh{d}.
 * Outputs Y [T, B, D·H], Last [B, D·H] and with `keep` C{d}, Z{d}, HP{d} for gruLayerBackwardModel.
 */
export function gruLayerForwardModel(o: LayerGraphOptions, keep: boolean): Uint8Array {
  const H = o.hidden;
  const g = new Graph('forward');
  const { XIn } = layerInput(g, o);
  const M = g.input('M', 'float', ['T', 'B', 1]);
  const H0 = g.input('H0', 'float', ['B', H]);
  const { Y, Last, factors } = addLayerForward(g, '', o, XIn, M, H0, keep);
  g.op1('Identity', [Y], {}, 'Y');
  g.op1('Identity', [Last], {}, 'Last');
  g.output('Y', 'float', ['T', 'B', o.directions * H]);
  g.output('Last', 'float', ['B', o.directions * H]);
  for (const f of factors) {
    g.output(f.C, 'float', ['T', 'B', 4 * H]);
    g.output(f.Z, 'float', ['T', 'B', H]);
    g.output(f.HP, 'float', ['T', 'B', H]);
  }
  return encodeModel(g);
}

/**
 * BPTT over one layer from gruLayerForwardModel's outputs. Inputs X, [XMask], H0 (zeros), per direction
 * Wih{d}, Whh{d}, C{d}, Z{d}, HP{d}, then [DY [T, B, D·H], 0 on padding] and DLast [B, D·H]. Outputs per
 * direction DWih{d}, DWhh{d}, DBih{d}, DBhh{d} and, with `inputGrad`, DX shaped and laid out like X,
 * times XMask.
 */
export function gruLayerBackwardModel(o: LayerGraphOptions, hasDOutput: boolean, inputGrad: boolean): Uint8Array {
  const H = o.hidden;
  const g = new Graph('backward');
  const { XIn, XMask } = layerInput(g, o);
  const H0 = g.input('H0', 'float', ['B', H]);
  const factors = Array.from({ length: o.directions }, (_, d) => {
    g.input(`Wih${d}`, 'float', [3 * H, o.input]);
    g.input(`Whh${d}`, 'float', [3 * H, H]);
    return { C: g.input(`C${d}`, 'float', ['T', 'B', 4 * H]), Z: g.input(`Z${d}`, 'float', ['T', 'B', H]), HP: g.input(`HP${d}`, 'float', ['T', 'B', H]) };
  });
  const DY = hasDOutput ? g.input('DY', 'float', ['T', 'B', o.directions * H]) : undefined;
  const DLast = g.input('DLast', 'float', ['B', o.directions * H]);
  const { grads, DX } = addLayerBackward(g, '', o, XIn, factors, DY, DLast, H0, inputGrad);
  grads.forEach((names, d) => {
    for (const [key, out, dims] of [['dWih', 'DWih', [3 * H, o.input]], ['dWhh', 'DWhh', [3 * H, H]], ['dBih', 'DBih', [3 * H]], ['dBhh', 'DBhh', [3 * H]]] as const) {
      g.op1('Identity', [names[key]], {}, `${out}${d}`);
      g.output(`${out}${d}`, 'float', [...dims]);
    }
  });
  if (DX) {
    let dx = DX;
    if (XMask) dx = g.op1('Mul', [dx, XMask]);
    if (o.inputLayout === 'batch-major') dx = g.op1('Transpose', [dx], { perm: [1, 0, 2] });
    g.op1('Identity', [dx], {}, 'DX');
    g.output('DX', 'float', o.inputLayout === 'batch-major' ? ['B', 'T', o.input] : ['T', 'B', o.input]);
  }
  return encodeModel(g);
}

/** What a whole-network training graph is specialised for. */
export interface NetworkGraphOptions {
  input: number;
  hidden: number;
  layers: number;
  directions: 1 | 2;
  /** Whether dropout multipliers come in (l{l}.XMask for layers above the first, FeatMask). */
  dropout: boolean;
  inputGrad: boolean;
}

const layerPrefix = (l: number) => `l${l}.`;

/**
 * One training step's loss and gradients in one graph, so nothing the backward pass needs leaves ONNX
 * Runtime: every layer's forward, dropout, the linear layer, the gradient of mean BCE, and backward through
 * all of it. Inputs X [B, T, In] (0 on padding), M [T, B, 1], H0 [B, H] (zeros), Labels [B], Scale (1/B),
 * per layer and direction l{l}.Wih{d}, Whh, Bih, Bhh, OutW [1, D·H], OutB [1] and, with dropout,
 * l{l}.XMask [T, B, D·H] (l ≥ 1) and FeatMask [B, D·H]. Outputs Logits [B], l{l}.dWih{d} (and dWhh,
 * dBih, dBhh), DOutW, DOutB and, with `inputGrad`, DX [B, T, In].
 */
export function gruTrainStepModel(o: NetworkGraphOptions): Uint8Array {
  const H = o.hidden;
  const g = new Graph('step');
  const { H0, outW, layers, features, featMask, logits: z } = addNetworkForward(g, o, true);
  const labels = g.input('Labels', 'float', ['B']);
  const scale = g.input('Scale', 'float', []);
  // The gradient of mean BCE with logits, (σ(z) − y)/B (the loss itself is left to the caller, in double).
  const dz = g.op1('Unsqueeze', [g.op1('Mul', [g.op1('Sub', [g.op1('Sigmoid', [z]), labels]), scale]), g.int64s([1])]);
  g.op1('Gemm', [dz, features], { transA: 1 }, 'DOutW');
  g.op1('ReduceSum', [dz, g.int64s([0])], { keepdims: 0 }, 'DOutB');
  const dFeatures = g.op1('MatMul', [dz, outW]);
  let DLast: string | undefined = featMask ? g.op1('Mul', [dFeatures, featMask]) : dFeatures;
  let DY: string | undefined;
  for (let l = o.layers - 1; l >= 0; l--) {
    const { opts, XIn, XMask, factors } = layers[l];
    const b = addLayerBackward(g, layerPrefix(l), opts, XIn, factors, DY, DLast, H0, l > 0 || o.inputGrad);
    b.grads.forEach((names, d) => {
      for (const key of ['dWih', 'dWhh', 'dBih', 'dBhh'] as const) g.op1('Identity', [names[key]], {}, `${layerPrefix(l)}${key}${d}`);
    });
    DY = b.DX && XMask ? g.op1('Mul', [b.DX, XMask]) : b.DX;
    DLast = undefined;
  }
  for (let l = 0; l < o.layers; l++) {
    const In = layers[l].opts.input;
    for (let d = 0; d < o.directions; d++) {
      g.output(`${layerPrefix(l)}dWih${d}`, 'float', [3 * H, In]);
      g.output(`${layerPrefix(l)}dWhh${d}`, 'float', [3 * H, H]);
      g.output(`${layerPrefix(l)}dBih${d}`, 'float', [3 * H]);
      g.output(`${layerPrefix(l)}dBhh${d}`, 'float', [3 * H]);
    }
  }
  g.output('DOutW', 'float', [1, o.directions * H]);
  g.output('DOutB', 'float', [1]);
  if (o.inputGrad && DY) {
    g.op1('Transpose', [DY], { perm: [1, 0, 2] }, 'DX');
    g.output('DX', 'float', ['B', 'T', o.input]);
  }
  return encodeModel(g);
}

/** Evaluation: every layer forward and the linear layer in one graph; inputs as gruTrainStepModel's without labels and masks, output Logits [B]. */
export function gruPredictModel(o: Omit<NetworkGraphOptions, 'dropout' | 'inputGrad'>): Uint8Array {
  const g = new Graph('predict');
  addNetworkForward(g, { ...o, dropout: false }, false);
  return encodeModel(g);
}

/**
 * Evaluation on ONNX's own `GRU` operator instead of a Scan: ONNX Runtime's fused kernel runs the time
 * loop in C++, where a Scan pays per step for a subgraph call, which dominates a forward pass (it has no
 * backward, so training keeps the Scan graphs). Inputs X [B, T, In], Lengths [B] (int32, each in 0..T),
 * the weights as gruPredictModel's, OutW, OutB; output Logits [B]. linear_before_reset = 1 is PyTorch's
 * n = tanh(W_in x + b_in + r ⊙ (W_hn h + b_hn)); ONNX orders the gate blocks z, r, n where PyTorch has
 * r, z, n, so each weight's rows are gathered into ONNX's order in the graph (a copy per run, negligible
 * next to the GEMMs). With sequence_lens the reverse direction starts at each row's last real step, as
 * a packed sequence does, and Y_h holds each direction's final state.
 */
export function gruFusedPredictModel(o: Omit<NetworkGraphOptions, 'dropout' | 'inputGrad'>): Uint8Array {
  const g = new Graph('predict');
  const H = o.hidden;
  const F = o.directions * H;
  const X = g.input('X', 'float', ['B', 'T', o.input]);
  const lengths = g.input('Lengths', 'int32', ['B']);
  const outW = g.input('OutW', 'float', [1, F]);
  const outB = g.input('OutB', 'float', [1]);
  const range = (from: number, to: number) => Array.from({ length: to - from }, (_, i) => from + i);
  const onnxGateOrder = g.int64s([...range(H, 2 * H), ...range(0, H), ...range(2 * H, 3 * H)]);
  const axis0 = g.int64s([0]);
  /** Both directions' tensors stacked on a new first axis, gate blocks reordered along `gateAxis`. */
  const stacked = (names: string[], gateAxis: number) => {
    const t = g.op1('Concat', names.map((n) => g.op1('Unsqueeze', [n, axis0])), { axis: 0 });
    return g.op1('Gather', [t, onnxGateOrder], { axis: gateAxis });
  };
  let input = g.op1('Transpose', [X], { perm: [1, 0, 2] });
  let last = '';
  for (let l = 0; l < o.layers; l++) {
    const In = l === 0 ? o.input : F;
    const w = Array.from({ length: o.directions }, (_, d) => {
      const n = weightNames(d, layerPrefix(l));
      return { Wih: g.input(n.Wih, 'float', [3 * H, In]), Whh: g.input(n.Whh, 'float', [3 * H, H]), Bih: g.input(n.Bih, 'float', [3 * H]), Bhh: g.input(n.Bhh, 'float', [3 * H]) };
    });
    const W = stacked(w.map((d) => d.Wih), 1);
    const R = stacked(w.map((d) => d.Whh), 1);
    const B = g.op1('Concat', [stacked(w.map((d) => d.Bih), 1), stacked(w.map((d) => d.Bhh), 1)], { axis: 1 });
    const top = l === o.layers - 1;
    const [Y, Yh] = g.op('GRU', [input, W, R, B, lengths], { hidden_size: H, linear_before_reset: 1, direction: o.directions === 2 ? 'bidirectional' : 'forward' }, top ? ['', `${layerPrefix(l)}Yh`] : [`${layerPrefix(l)}Y`, '']);
    // Y [T, D, B, H] → [T, B, D·H], the next layer's input; Y_h [D, B, H] → [B, D·H], the features.
    if (top) last = g.op1('Reshape', [g.op1('Transpose', [Yh], { perm: [1, 0, 2] }), g.int64s([0, -1])]);
    else input = g.op1('Reshape', [g.op1('Transpose', [Y], { perm: [0, 2, 1, 3] }), g.int64s([0, 0, -1])]);
  }
  g.op1('Reshape', [g.op1('Gemm', [last, outW, outB], { transB: 1 }), g.int64s([-1])], {}, 'Logits');
  g.output('Logits', 'float', ['B']);
  return encodeModel(g);
}

/**
 * What both whole-network graphs share: inputs X, M, H0, OutW, OutB (and with dropout l{l}.XMask,
 * FeatMask), every layer's forward, and the linear layer, whose output is the graph output Logits [B].
 */
function addNetworkForward(g: Graph, o: Omit<NetworkGraphOptions, 'inputGrad'>, keep: boolean) {
  const F = o.directions * o.hidden;
  const X = g.input('X', 'float', ['B', 'T', o.input]);
  const M = g.input('M', 'float', ['T', 'B', 1]);
  const H0 = g.input('H0', 'float', ['B', o.hidden]);
  const outW = g.input('OutW', 'float', [1, F]);
  const outB = g.input('OutB', 'float', [1]);
  const layers: { opts: LayerGraphOptions; XIn: string; XMask?: string; factors: FactorNames[] }[] = [];
  let input = g.op1('Transpose', [X], { perm: [1, 0, 2] });
  let last = '';
  for (let l = 0; l < o.layers; l++) {
    const opts: LayerGraphOptions = { input: l === 0 ? o.input : F, hidden: o.hidden, directions: o.directions, inputLayout: l === 0 ? 'batch-major' : 'time-major', inputMask: l > 0 && o.dropout };
    const XMask = opts.inputMask ? g.input(`${layerPrefix(l)}XMask`, 'float', ['T', 'B', F]) : undefined;
    const XIn = XMask ? g.op1('Mul', [input, XMask]) : input;
    const f = addLayerForward(g, layerPrefix(l), opts, XIn, M, H0, keep);
    layers.push({ opts, XIn, XMask, factors: f.factors });
    input = f.Y;
    last = f.Last;
  }
  const featMask = o.dropout ? g.input('FeatMask', 'float', ['B', F]) : undefined;
  const features = featMask ? g.op1('Mul', [last, featMask]) : last;
  const logits = g.op1('Reshape', [g.op1('Gemm', [features, outW, outB], { transB: 1 }), g.int64s([-1])], {}, 'Logits');
  g.output('Logits', 'float', ['B']);
  return { H0, outW, layers, features, featMask, logits };
}

/** [T, B, 1]: 1 where t < length, else 0. */
function realSteps(lengths: Int32Array, steps: number): Float32Array {
  const B = lengths.length;
  const m = new Float32Array(steps * B);
  for (let t = 0; t < steps; t++) for (let b = 0; b < B; b++) m[t * B + b] = t < lengths[b] ? 1 : 0;
  return m;
}

/**
 * x [B, T, In] with padded steps set to 0: the graphs rely on finite padding (0·NaN is NaN). A copy
 * only when some padded value is not already 0.
 */
function zeroPadding(x: Float32Array, lengths: Int32Array, steps: number, input: number): Float32Array {
  const padded = (b: number) => [(b * steps + lengths[b]) * input, (b + 1) * steps * input] as const;
  const clean = lengths.every((_, b) => {
    const [from, to] = padded(b);
    for (let i = from; i < to; i++) if (x[i] !== 0) return false;
    return true;
  });
  if (clean) return x;
  const out = x.slice();
  lengths.forEach((_, b) => out.fill(0, ...padded(b)));
  return out;
}

const SAVED = Symbol('ORT GRU layer state');

interface OrtLayerSaved {
  [SAVED]: true;
  options: LayerGraphOptions;
  x: Float32Array;
  inputMask?: Float32Array;
  shape: GruLayerShape;
  weights: GruWeights[];
  /** Per direction: C [T, B, 4H], Z and HP [T, B, H] (see gruLayerForwardModel). */
  factors: { C: Float32Array; Z: Float32Array; HP: Float32Array }[];
}

const isSaved = (v: unknown): v is OrtLayerSaved => typeof v === 'object' && v !== null && (v as OrtLayerSaved)[SAVED] === true;

/** Seconds inside session.run, split by pass, and the number of runs, for profiling. */
export interface OrtKernelProfile {
  calls: number;
  forwardSeconds: number;
  backwardSeconds: number;
  networkSeconds: number;
}

export const emptyProfile = (): OrtKernelProfile => ({ calls: 0, forwardSeconds: 0, backwardSeconds: 0, networkSeconds: 0 });

export interface OrtKernelOptions {
  /** Intra-op threads (default ortKernelThreads()). */
  threads?: number;
  /** Accumulates seconds spent inside session.run and counts calls. */
  profile?: OrtKernelProfile;
  /** Writes ONNX Runtime's per-node trace of each session to `<prefix>-<session>_<time>.json` (see endTraces). */
  traceFilePrefix?: string;
  /** How predict runs the GRU: ONNX's fused GRU operator (default) or the Scan graph training uses. */
  predictGraph?: 'fused' | 'scan';
  /** Whether ONNX Runtime's idle threads spin (default true); see SessionOptionsRequest. */
  allowSpinning?: boolean;
}

/** The layer kernel on onnxruntime-node's CPU provider; a session per graph variant, made on first use. */
export function createOrtGruKernel(options: OrtKernelOptions = {}): GruLayerKernel {
  const ort = onnxruntime();
  const threads = options.threads ?? ortKernelThreads();
  const predictGraph = options.predictGraph ?? 'fused';
  const sessions = new Map<string, Promise<Ort.InferenceSession>>();
  const session = (key: string, model: () => Uint8Array): Promise<Ort.InferenceSession> => {
    let s = sessions.get(key);
    if (!s) {
      // Session options (CPU provider, memory patterns off) come from src/core/onnxruntime.ts.
      s = createSession(model(), 'gru-kernel', { threads, allowSpinning: options.allowSpinning, profileFilePrefix: options.traceFilePrefix && `${options.traceFilePrefix}-${key}` });
      sessions.set(key, s);
    }
    return s;
  };
  const profile = options.profile;
  const run = async (pass: 'forward' | 'backward' | 'network', s: Ort.InferenceSession, feeds: Record<string, Ort.Tensor>) => {
    const start = profile ? performance.now() : 0;
    const out = await s.run(feeds);
    if (profile) {
      profile[`${pass}Seconds`] += (performance.now() - start) / 1000;
      profile.calls++;
    }
    return out;
  };
  const f32 = (data: Float32Array, dims: number[]) => new ort.Tensor('float32', data, dims);
  const key = (o: LayerGraphOptions) => `${o.input}:${o.hidden}:${o.directions}:${o.inputLayout}:${+o.inputMask}`;

  /**
   * What the whole-network graphs take: the features (padding zeroed), every weight, and the true
   * lengths as the graph wants them: the Scan graphs a 0/1 mask M and a zero state H0, the fused
   * graph the lengths themselves.
   */
  const networkFeeds = (
    batch: { x: Float32Array; lengths: Int32Array },
    shape: GruLayerShape & { layers: number },
    weights: GruWeights[][],
    out: { weight: Float32Array; bias: Float32Array },
    lengthsAs: 'mask' | 'lengths' = 'mask',
  ) => {
    const { batch: B, steps: T, input: In, hidden: H, directions: D, layers: L } = shape;
    if (weights.length !== L || weights.some((w) => w.length !== D)) throw new Error(`GRU kernel: weights for ${L} layers of ${D} directions expected`);
    if (batch.x.length !== B * T * In || batch.lengths.length !== B) throw new Error(`GRU kernel: a batch of ${B}×${T}×${In} features with ${B} lengths expected`);
    const feeds: Record<string, Ort.Tensor> = {
      X: f32(zeroPadding(batch.x, batch.lengths, T, In), [B, T, In]),
      OutW: f32(out.weight, [1, D * H]),
      OutB: f32(out.bias, [1]),
      ...(lengthsAs === 'mask'
        ? { M: f32(realSteps(batch.lengths, T), [T, B, 1]), H0: f32(new Float32Array(B * H), [B, H]) }
        : { Lengths: new ort.Tensor('int32', batch.lengths, [B]) }),
    };
    weights.forEach((layer, l) =>
      layer.forEach((w, d) => {
        const input = l === 0 ? In : D * H;
        checkWeights(w, input, H);
        const n = weightNames(d, layerPrefix(l));
        feeds[n.Wih] = f32(w.wih, [3 * H, input]);
        feeds[n.Whh] = f32(w.whh, [3 * H, H]);
        feeds[n.Bih] = f32(w.bih, [3 * H]);
        feeds[n.Bhh] = f32(w.bhh, [3 * H]);
      }),
    );
    return feeds;
  };

  return {
    name: ORT_KERNEL_NAME,
    layout: 'time-major',

    async predict(batch, shape, weights, out): Promise<Float32Array> {
      const { input: In, hidden: H, directions: D, layers: L } = shape;
      const o = { input: In, hidden: H, layers: L, directions: D };
      if (predictGraph === 'fused') {
        const s = await session(`q${In}:${H}:${L}:${D}`, () => gruFusedPredictModel(o));
        const result = await run('network', s, networkFeeds(batch, shape, weights, out, 'lengths'));
        return result.Logits.data as Float32Array;
      }
      const s = await session(`p${In}:${H}:${L}:${D}`, () => gruPredictModel(o));
      const result = await run('network', s, networkFeeds(batch, shape, weights, out));
      return result.Logits.data as Float32Array;
    },

    async gradients(batch, shape, weights, out, masks, inputGrad): Promise<GruNetworkGradients> {
      const { batch: B, steps: T, hidden: H, directions: D, layers: L } = shape;
      const dropout = masks.features !== undefined;
      const o: NetworkGraphOptions = { input: shape.input, hidden: H, layers: L, directions: D, dropout, inputGrad };
      const s = await session(`n${shape.input}:${H}:${L}:${D}:${+dropout}:${+inputGrad}`, () => gruTrainStepModel(o));
      const feeds: Record<string, Ort.Tensor> = { ...networkFeeds(batch, shape, weights, out), Labels: f32(batch.labels, [B]), Scale: f32(Float32Array.of(1 / B), []) };
      if (dropout) {
        feeds.FeatMask = f32(masks.features!, [B, D * H]);
        for (let l = 1; l < L; l++) feeds[`${layerPrefix(l)}XMask`] = f32(masks.layers[l]!, [T, B, D * H]);
      }
      const result = await run('network', s, feeds);
      const data = (name: string) => result[name].data as Float32Array;
      return {
        logits: data('Logits'),
        layers: weights.map((layer, l) => layer.map((_, d) => {
          const p = layerPrefix(l);
          return { dWih: data(`${p}dWih${d}`), dWhh: data(`${p}dWhh${d}`), dBih: data(`${p}dBih${d}`), dBhh: data(`${p}dBhh${d}`) };
        })),
        outWeight: data('DOutW'),
        outBias: data('DOutB'),
        dx: inputGrad ? data('DX') : undefined,
      };
    },

    async release(): Promise<void> {
      const pending = [...sessions.values()];
      sessions.clear();
      for (const s of await Promise.all(pending)) {
        if (options.traceFilePrefix) s.endProfiling();
        await s.release();
      }
    },

    async forward(input, shape, lengths, weights, inputMask, keep): Promise<GruLayerForwardResult> {
      const { batch: B, steps: T, input: In, hidden: H, directions: D } = shape;
      if (weights.length !== D) throw new Error(`GRU kernel: ${weights.length} weight sets for ${D} directions`);
      for (const w of weights) checkWeights(w, In, H);
      if (lengths.length !== B || lengths.some((l) => l < 0 || l > T)) throw new Error(`GRU kernel: lengths must be ${B} values in [0, ${T}]`);
      const first = input instanceof Float32Array;
      if (!first && input.layout !== 'time-major') throw new Error('GRU kernel: a time-major input was expected (the output of this kernel)');
      const raw = first ? input : input.data;
      if (raw.length !== B * T * In) throw new Error(`GRU kernel: input has ${raw.length} values, expected ${B}×${T}×${In}`);
      // Only the first layer's input comes from outside; above it, padding is 0 by construction.
      const x = first ? zeroPadding(raw, lengths, T, In) : raw;
      const o: LayerGraphOptions = { input: In, hidden: H, directions: D, inputLayout: first ? 'batch-major' : 'time-major', inputMask: inputMask !== undefined };
      const s = await session(`f${key(o)}:${+keep}`, () => gruLayerForwardModel(o, keep));
      const xDims = first ? [B, T, In] : [T, B, In];
      const feeds: Record<string, Ort.Tensor> = { X: f32(x, xDims), M: f32(realSteps(lengths, T), [T, B, 1]), H0: f32(new Float32Array(B * H), [B, H]) };
      if (inputMask) feeds.XMask = f32(inputMask, xDims);
      weights.forEach((w, d) => {
        const n = weightNames(d);
        feeds[n.Wih] = f32(w.wih, [3 * H, In]);
        feeds[n.Whh] = f32(w.whh, [3 * H, H]);
        feeds[n.Bih] = f32(w.bih, [3 * H]);
        feeds[n.Bhh] = f32(w.bhh, [3 * H]);
      });
      const out = await run('forward', s, feeds);
      const data = (name: string) => out[name].data as Float32Array;
      const y = data('Y');
      const saved: OrtLayerSaved | undefined = keep
        ? { [SAVED]: true, options: o, x, inputMask, shape, weights, factors: Array.from({ length: D }, (_, d) => ({ C: data(`C${d}`), Z: data(`Z${d}`), HP: data(`HP${d}`) })) }
        : undefined;
      return { output: { layout: 'time-major', data: y }, last: data('Last'), saved };
    },

    async backward(saved, dOutput, dLast, inputGrad): Promise<GruLayerGradients> {
      if (!isSaved(saved)) throw new Error('GRU kernel: backward needs what forward saved with keepForBackward');
      const { options: o, shape } = saved;
      const { batch: B, steps: T, input: In, hidden: H, directions: D } = shape;
      if (dLast.length !== B * D * H) throw new Error('GRU kernel: dLast does not match the forward pass');
      if (dOutput && (dOutput.layout !== 'time-major' || dOutput.data.length !== T * B * D * H)) throw new Error('GRU kernel: dOutput does not match the forward pass');
      const s = await session(`b${key(o)}:${+!!dOutput}:${+inputGrad}`, () => gruLayerBackwardModel(o, dOutput !== undefined, inputGrad));
      const xDims = o.inputLayout === 'batch-major' ? [B, T, In] : [T, B, In];
      const feeds: Record<string, Ort.Tensor> = { X: f32(saved.x, xDims), DLast: f32(dLast, [B, D * H]) };
      if (saved.inputMask) feeds.XMask = f32(saved.inputMask, xDims);
      if (dOutput) feeds.DY = f32(dOutput.data, [T, B, D * H]);
      feeds.H0 = f32(new Float32Array(B * H), [B, H]);
      for (let d = 0; d < D; d++) {
        const { C, Z, HP } = saved.factors[d];
        feeds[`C${d}`] = f32(C, [T, B, 4 * H]);
        feeds[`Z${d}`] = f32(Z, [T, B, H]);
        feeds[`HP${d}`] = f32(HP, [T, B, H]);
        feeds[`Wih${d}`] = f32(saved.weights[d].wih, [3 * H, In]);
        feeds[`Whh${d}`] = f32(saved.weights[d].whh, [3 * H, H]);
      }
      const out = await run('backward', s, feeds);
      const data = (name: string) => out[name].data as Float32Array;
      const grads = Array.from({ length: D }, (_, d) => ({ dWih: data(`DWih${d}`), dWhh: data(`DWhh${d}`), dBih: data(`DBih${d}`), dBhh: data(`DBhh${d}`) }));
      const dInput = inputGrad ? { layout: o.inputLayout, data: data('DX') } : undefined;
      return { dInput, grads };
    },
  };
}
