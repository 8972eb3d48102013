/**
 * The engine-agnostic seam of the head, on plain row-major Float32Arrays: `GruKernel` is one GRU layer
 * in one direction, forward and explicit backward (BPTT), which the tfjs kernel implements;
 * `GruLayerKernel` is one layer in both directions, which the ONNX Runtime kernel implements (and may
 * take the whole network's pass at once). Gates and weight layout are PyTorch's.
 */

/** One layer, one direction, in PyTorch's layout: gate blocks r, z, n along the first axis. */
export interface GruWeights {
  /** [3H, In] */
  wih: Float32Array;
  /** [3H, H] */
  whh: Float32Array;
  /** [3H] */
  bih: Float32Array;
  /** [3H] */
  bhh: Float32Array;
}

export interface GruShape {
  batch: number;
  steps: number;
  input: number;
  hidden: number;
}

export interface GruForwardResult {
  /** [B, T, H]; zero at padded steps (as pad_packed_sequence gives). */
  output: Float32Array;
  /** [B, H]: the state after the last real step of each row (t = len−1 forward, t = 0 reverse). */
  last: Float32Array;
  /** What backward needs; only with keepForBackward. Holds references to x, the weights and output: don't modify them before backward. */
  saved?: unknown;
}

export interface GruGradients {
  /** [B, T, In]; only when asked for (the first layer's input, frozen features, needs none). */
  dx?: Float32Array;
  dWih: Float32Array;
  dWhh: Float32Array;
  dBih: Float32Array;
  dBhh: Float32Array;
}

export interface GruKernel {
  readonly name: string;
  /**
   * One layer, one direction over a zero-padded batch x [B, T, In] with true lengths. Padded steps
   * leave the state unchanged; `reverse` runs from t = len−1 down to 0 starting from h = 0.
   */
  forward(
    x: Float32Array,
    shape: GruShape,
    lengths: Int32Array,
    w: GruWeights,
    reverse: boolean,
    keepForBackward: boolean,
  ): Promise<GruForwardResult>;
  /** Gradients from dOutput [B, T, H] (undefined = zero) and dLast [B, H]. */
  backward(saved: unknown, dOutput: Float32Array | undefined, dLast: Float32Array, inputGrad: boolean): Promise<GruGradients>;
}

/**
 * Where a layer's activations and dropout multipliers lie in memory: [B, T, F] (batch-major) or
 * [T, B, F] (time-major). The batch's features are always batch-major.
 */
export type ActivationLayout = 'batch-major' | 'time-major';

/** A layer's output, or the gradient of a layer's input, in the layout of the kernel that made it. */
export interface LayerActivations {
  readonly layout: ActivationLayout;
  readonly data: Float32Array;
}

export interface GruLayerShape extends GruShape {
  directions: 1 | 2;
}

export interface GruLayerForwardResult {
  /** [·, ·, D·H]: per step the forward state then the backward one (nn.GRU's output layout); 0 on padding. */
  output: LayerActivations;
  /** [B, D·H]: each direction's final state (forward at t = len−1, backward at t = 0), in that order. */
  last: Float32Array;
  saved?: unknown;
}

export interface GruLayerGradients {
  /** Gradient of the layer's input: for the first layer [B, T, In] batch-major, when asked; above it, the layer below's dOutput. */
  dInput?: LayerActivations;
  /** Per direction; `dx` unused. */
  grads: GruGradients[];
}

export interface GruNetworkGradients {
  logits: Float32Array;
  /** [layer][direction]; `dx` unused. */
  layers: GruGradients[][];
  outWeight: Float32Array;
  outBias: Float32Array;
  /** d loss / d features [B, T, In], when asked. */
  dx?: Float32Array;
}

/**
 * One whole layer (one or both directions) with dropout on its input: the unit the head drives. The
 * first layer's input is the batch's features ([B, T, In], batch-major); each layer above gets the
 * `output` of the one below, in the kernel's own `layout`.
 */
export interface GruLayerKernel {
  readonly name: string;
  readonly layout: ActivationLayout;
  forward(
    input: Float32Array | LayerActivations,
    shape: GruLayerShape,
    lengths: Int32Array,
    weights: GruWeights[],
    /** Dropout multipliers for the input (0 or 1/(1−p)), same size and `layout` as the input; none for the first layer. */
    inputMask: Float32Array | undefined,
    keepForBackward: boolean,
  ): Promise<GruLayerForwardResult>;
  /** From dOutput (undefined = zero; must be 0 on padding) and dLast [B, D·H]; dInput (masked like the input) when `inputGrad`. */
  backward(saved: unknown, dOutput: LayerActivations | undefined, dLast: Float32Array, inputGrad: boolean): Promise<GruLayerGradients>;
  /**
   * Optional: a whole training pass in one call (every layer forward with dropout, the linear layer,
   * the gradient of mean BCE with logits, backward), for kernels where handing activations back and forth per layer
   * costs more than the arithmetic. Masks as for `forward`: `layers[l]` for l ≥ 1 in the kernel's
   * layout, `features` [B, D·H]; both absent without dropout.
   */
  gradients?(
    batch: { x: Float32Array; lengths: Int32Array; labels: Float32Array },
    shape: GruLayerShape & { layers: number },
    weights: GruWeights[][],
    out: { weight: Float32Array; bias: Float32Array },
    masks: { layers: (Float32Array | undefined)[]; features?: Float32Array },
    inputGrad: boolean,
  ): Promise<GruNetworkGradients>;
  /** Optional, likewise: logits in evaluation mode in one call. */
  predict?(batch: { x: Float32Array; lengths: Int32Array }, shape: GruLayerShape & { layers: number }, weights: GruWeights[][], out: { weight: Float32Array; bias: Float32Array }): Promise<Float32Array>;
  /** Frees what the kernel holds (sessions); it must not be used after. */
  release?(): Promise<void>;
}
