/**
 * The engine-agnostic seam of the head: one GRU layer in one direction, forward and explicit backward
 * (BPTT), on plain row-major Float32Arrays so an implementation may run anywhere (tfjs today; ONNX
 * Runtime sessions or native code later). Gates and weight layout are PyTorch's.
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
