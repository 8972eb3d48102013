import { Adam } from './adam.js';
import { selectBackend, type BackendSetting, type SelectedBackend } from './backend.js';
import { directionLayers } from './direction-layers.js';
import type { ActivationLayout, GruGradients, GruKernel, GruLayerKernel, GruWeights, LayerActivations } from './kernel.js';
import { Random, STREAM_DROPOUT, STREAM_INIT } from './random.js';
import { createOrtGruKernel } from './ort-kernel.js';
import { createTfjsGruKernel } from './tfjs-kernel.js';

export interface HeadSettings {
  inputSize: number;
  hiddenSize: number;
  layers: number;
  bidirectional: boolean;
  dropout: number;
  learningRate: number;
  seed: number;
}

export interface Batch {
  /** [batch, steps, inputSize] row-major, zero padded. */
  x: Float32Array;
  /** True lengths, 1..steps. */
  lengths: Int32Array;
  /** 0/1 per row; needed for training and gradients. */
  labels?: Float32Array;
  batch: number;
  steps: number;
}

export interface NamedTensor {
  shape: number[];
  data: Float32Array;
}

export interface HeadGradients {
  /** Mean BCE-with-logits over the batch. */
  loss: number;
  logits: Float32Array;
  /** By PyTorch state_dict name. */
  grads: Record<string, Float32Array>;
  /** d loss / d x, [batch, steps, inputSize], when asked for. */
  dx?: Float32Array;
}

/** What resuming training needs besides the weights: Adam's moments and step, and the dropout stream. */
export interface HeadTrainingState {
  step: number;
  expAvg: Record<string, Float32Array>;
  expAvgSq: Record<string, Float32Array>;
  dropoutRng: number[];
}

export interface Head {
  readonly settings: HeadSettings;
  /** The engine that runs it (onnxruntime, tensorflow-gpu, tensorflow, wasm or cpu). */
  readonly backend: string;
  /** The backend in words, for logs: e.g. "onnxruntime (onnxruntime-node, CPU)". */
  readonly backendDescription: string;
  readonly kernel: string;
  /** Forward in training mode (dropout), backward, one Adam step; loss is the mean BCE over the batch. */
  trainStep(b: Batch): Promise<{ loss: number; logits: Float32Array }>;
  /** Logits in eval mode (no dropout). */
  predict(b: Batch): Promise<Float32Array>;
  /** Loss, logits and gradients without updating anything; eval mode (no dropout) unless `train`. */
  gradients(b: Batch, options?: { train?: boolean; inputGrad?: boolean }): Promise<HeadGradients>;
  /** Copies, by PyTorch state_dict name: rnn.weight_ih_l0 … rnn.bias_hh_l{N−1}_reverse, out.weight [1, H·dirs], out.bias [1]. */
  getWeights(): Record<string, NamedTensor>;
  /** Every parameter, with PyTorch's names and shapes; Adam's state is kept. */
  setWeights(w: Record<string, NamedTensor>): void;
  getTrainingState(): HeadTrainingState;
  /** Adam's learning rate from the next step on (a schedule's value; settings.learningRate is the base). */
  setLearningRate(lr: number): void;
  setTrainingState(state: HeadTrainingState): void;
  /** Frees the head and its kernel (ONNX Runtime sessions); neither may be used after. */
  dispose(): void;
}

/** Parameters in PyTorch's state_dict order, for nn.GRU(batch_first=True) as `rnn` and nn.Linear(H·dirs, 1) as `out`. */
export function parameterShapes(s: HeadSettings): { name: string; shape: number[] }[] {
  const H = s.hiddenSize;
  const dirs = s.bidirectional ? 2 : 1;
  const shapes: { name: string; shape: number[] }[] = [];
  for (let l = 0; l < s.layers; l++) {
    const input = l === 0 ? s.inputSize : H * dirs;
    for (let d = 0; d < dirs; d++) {
      const suffix = `l${l}${d === 1 ? '_reverse' : ''}`;
      shapes.push(
        { name: `rnn.weight_ih_${suffix}`, shape: [3 * H, input] },
        { name: `rnn.weight_hh_${suffix}`, shape: [3 * H, H] },
        { name: `rnn.bias_ih_${suffix}`, shape: [3 * H] },
        { name: `rnn.bias_hh_${suffix}`, shape: [3 * H] },
      );
    }
  }
  shapes.push({ name: 'out.weight', shape: [1, H * dirs] }, { name: 'out.bias', shape: [1] });
  return shapes;
}

/** Mean BCE with logits in double, in the stable form max(z, 0) − z·y + log(1 + e^−|z|). */
function meanBce(logits: Float32Array, labels: Float32Array): number {
  let loss = 0;
  for (let r = 0; r < logits.length; r++) {
    const z = logits[r];
    loss += Math.max(z, 0) - z * labels[r] + Math.log1p(Math.exp(-Math.abs(z)));
  }
  return loss / logits.length;
}

/** One layer's gradients (per direction) stored under PyTorch's state_dict names. */
function nameLayerGradients(grads: Record<string, Float32Array>, l: number, layer: GruGradients[]): void {
  layer.forEach((d, dir) => {
    const suffix = `l${l}${dir === 1 ? '_reverse' : ''}`;
    grads[`rnn.weight_ih_${suffix}`] = d.dWih;
    grads[`rnn.weight_hh_${suffix}`] = d.dWhh;
    grads[`rnn.bias_ih_${suffix}`] = d.dBih;
    grads[`rnn.bias_hh_${suffix}`] = d.dBhh;
  });
}

function checkSettings(s: HeadSettings): void {
  const positive = (v: number) => Number.isInteger(v) && v >= 1;
  const problems: string[] = [];
  if (!positive(s.inputSize)) problems.push(`inputSize ${s.inputSize}`);
  if (!positive(s.hiddenSize)) problems.push(`hiddenSize ${s.hiddenSize}`);
  if (!positive(s.layers)) problems.push(`layers ${s.layers}`);
  if (!(s.dropout >= 0 && s.dropout < 1)) problems.push(`dropout ${s.dropout} (must be in [0, 1))`);
  if (!(s.learningRate > 0)) problems.push(`learningRate ${s.learningRate}`);
  if (!Number.isInteger(s.seed) || s.seed < 0) problems.push(`seed ${s.seed}`);
  if (problems.length) throw new Error(`head settings: ${problems.join(', ')}`);
}

function checkBatch(b: Batch, inputSize: number, needLabels: boolean): void {
  const problems: string[] = [];
  if (!Number.isInteger(b.batch) || b.batch < 1 || !Number.isInteger(b.steps) || b.steps < 1) problems.push(`batch ${b.batch} × steps ${b.steps}`);
  if (b.x.length !== b.batch * b.steps * inputSize) problems.push(`x has ${b.x.length} values, expected ${b.batch}×${b.steps}×${inputSize}`);
  if (b.lengths.length !== b.batch) problems.push(`${b.lengths.length} lengths for ${b.batch} rows`);
  else for (const l of b.lengths) if (l < 1 || l > b.steps) problems.push(`length ${l} outside [1, ${b.steps}]`);
  if (needLabels && b.labels?.length !== b.batch) problems.push(b.labels ? `${b.labels.length} labels for ${b.batch} rows` : 'no labels');
  if (problems.length) throw new Error(`head batch: ${problems.join('; ')}`);
}


interface ForwardPass {
  logits: Float32Array;
  /** [B, H·dirs] after dropout: the linear layer's input. */
  features: Float32Array;
  featureMask?: Float32Array;
  /** What each layer's kernel kept for backward. */
  saved: unknown[];
}

/**
 * The BiGRU head with PyTorch semantics: nn.GRU over the padded batch masked by true lengths
 * (as a packed sequence), the top layer's final forward and backward states concatenated, dropout,
 * nn.Linear to one logit, BCE-with-logits, torch.optim.Adam.
 */
export async function createHead(
  settings: HeadSettings,
  options: {
    backend?: BackendSetting;
    kernel?: GruKernel | GruLayerKernel;
    /** For the default onnxruntime kernel: whether its idle threads spin (default true). */
    allowSpinning?: boolean;
  } = {},
): Promise<Head> {
  checkSettings(settings);
  const selected = await selectBackend(options.backend ?? 'auto');
  const kernel = options.kernel ?? defaultKernel(selected, options.allowSpinning);
  return new GruHead({ ...settings }, selected.name, selected.description, 'layout' in kernel ? kernel : directionLayers(kernel));
}

/**
 * The GRU kernel for an engine: onnxruntime runs the repo's ONNX graphs (one session run per training
 * step); a tfjs backend runs tfjs's kernels. The engine alone decides, so the train key (which holds
 * the resolved engine) covers the arithmetic.
 */
function defaultKernel(selected: SelectedBackend, allowSpinning?: boolean): GruKernel | GruLayerKernel {
  return selected.name === 'onnxruntime' ? createOrtGruKernel({ allowSpinning }) : createTfjsGruKernel(selected.tf, selected.tfBackend);
}

class GruHead implements Head {
  readonly kernel: string;
  private readonly params: { name: string; shape: number[]; data: Float32Array }[];
  private readonly byName = new Map<string, Float32Array>();
  private readonly gru: GruWeights[][] = [];
  private readonly outWeight: Float32Array;
  private readonly outBias: Float32Array;
  private readonly adam: Adam;
  private readonly dropoutRng: Random;
  private readonly dirs: number;
  private busy = false;
  private disposed = false;

  constructor(
    readonly settings: HeadSettings,
    readonly backend: string,
    readonly backendDescription: string,
    private readonly gruKernel: GruLayerKernel,
  ) {
    this.kernel = gruKernel.name;
    this.dirs = settings.bidirectional ? 2 : 1;
    const init = new Random(settings.seed, STREAM_INIT);
    const gruBound = 1 / Math.sqrt(settings.hiddenSize);
    const linearBound = 1 / Math.sqrt(settings.hiddenSize * this.dirs);
    // As nn.GRU.reset_parameters and nn.Linear's init (kaiming_uniform(a=√5) = U(±1/√fan_in)), in state_dict order.
    this.params = parameterShapes(settings).map(({ name, shape }) => {
      const data = new Float32Array(shape.reduce((a, b) => a * b, 1));
      const bound = name.startsWith('rnn.') ? gruBound : linearBound;
      for (let i = 0; i < data.length; i++) data[i] = init.uniform(-bound, bound);
      this.byName.set(name, data);
      return { name, shape, data };
    });
    for (let l = 0; l < settings.layers; l++) {
      this.gru.push(
        Array.from({ length: this.dirs }, (_, d) => {
          const suffix = `l${l}${d === 1 ? '_reverse' : ''}`;
          const get = (n: string) => this.byName.get(`rnn.${n}_${suffix}`)!;
          return { wih: get('weight_ih'), whh: get('weight_hh'), bih: get('bias_ih'), bhh: get('bias_hh') };
        }),
      );
    }
    this.outWeight = this.byName.get('out.weight')!;
    this.outBias = this.byName.get('out.bias')!;
    this.adam = new Adam(
      this.params.map((p) => p.data),
      { lr: settings.learningRate },
    );
    this.dropoutRng = new Random(settings.seed, STREAM_DROPOUT);
  }

  async trainStep(b: Batch): Promise<{ loss: number; logits: Float32Array }> {
    return this.exclusive(async () => {
      const { loss, logits, grads } = await this.computeGradients(b, true, false);
      this.adam.update(this.params.map((p) => grads[p.name]));
      return { loss, logits };
    });
  }

  async predict(b: Batch): Promise<Float32Array> {
    return this.exclusive(async () => {
      checkBatch(b, this.settings.inputSize, false);
      if (this.gruKernel.predict) return this.gruKernel.predict(b, this.networkShape(b), this.gru, { weight: this.outWeight, bias: this.outBias });
      return (await this.forward(b, false, false)).logits;
    });
  }

  async gradients(b: Batch, options: { train?: boolean; inputGrad?: boolean } = {}): Promise<HeadGradients> {
    return this.exclusive(() => this.computeGradients(b, options.train ?? false, options.inputGrad ?? false));
  }

  getWeights(): Record<string, NamedTensor> {
    this.checkUsable();
    return Object.fromEntries(this.params.map((p) => [p.name, { shape: [...p.shape], data: p.data.slice() }]));
  }

  setWeights(w: Record<string, NamedTensor>): void {
    this.checkUsable();
    const problems: string[] = [];
    for (const p of this.params) {
      const t = w[p.name];
      if (!t) problems.push(`${p.name} missing`);
      else if (t.shape.length !== p.shape.length || t.shape.some((v, i) => v !== p.shape[i]) || t.data.length !== p.data.length) {
        problems.push(`${p.name} has shape [${t.shape.join(', ')}], expected [${p.shape.join(', ')}]`);
      }
    }
    for (const name of Object.keys(w)) if (!this.byName.has(name)) problems.push(`${name} is not a parameter of this head`);
    if (problems.length) throw new Error(`head weights do not match the settings: ${problems.join('; ')}`);
    for (const p of this.params) p.data.set(w[p.name].data);
  }

  getTrainingState(): HeadTrainingState {
    this.checkUsable();
    const s = this.adam.getState();
    return {
      step: s.step,
      expAvg: Object.fromEntries(this.params.map((p, k) => [p.name, s.expAvg[k]])),
      expAvgSq: Object.fromEntries(this.params.map((p, k) => [p.name, s.expAvgSq[k]])),
      dropoutRng: this.dropoutRng.getState(),
    };
  }

  setLearningRate(lr: number): void {
    this.checkUsable();
    if (!(lr >= 0) || !Number.isFinite(lr)) throw new Error(`learning rate ${lr}`);
    this.adam.lr = lr;
  }

  setTrainingState(state: HeadTrainingState): void {
    this.checkUsable();
    const missing = this.params.filter((p) => !state.expAvg[p.name] || !state.expAvgSq[p.name]).map((p) => p.name);
    if (missing.length) throw new Error(`head training state lacks ${missing.join(', ')}`);
    this.adam.setState({ step: state.step, expAvg: this.params.map((p) => state.expAvg[p.name]), expAvgSq: this.params.map((p) => state.expAvgSq[p.name]) });
    this.dropoutRng.setState(state.dropoutRng);
  }

  dispose(): void {
    this.disposed = true;
    // The kernel's ONNX Runtime sessions hold their memory arenas until released.
    this.gruKernel.release?.().catch(() => undefined);
  }

  private checkUsable(): void {
    if (this.disposed) throw new Error('head used after dispose()');
  }

  /** One call at a time: a step reads and writes the weights across awaits. */
  private async exclusive<T>(run: () => Promise<T>): Promise<T> {
    this.checkUsable();
    if (this.busy) throw new Error('head: a previous call has not finished (await each call)');
    this.busy = true;
    try {
      return await run();
    } finally {
      this.busy = false;
    }
  }

  /**
   * Dropout multipliers (0 or 1/(1−p)) for [B, T, F] values, drawn in (b, t, f) order whatever the
   * layout, so every kernel drops the same values.
   */
  private dropoutMask(B: number, T: number, F: number, p: number, layout: ActivationLayout): Float32Array {
    const mask = new Float32Array(B * T * F);
    const keep = 1 / (1 - p);
    for (let b = 0; b < B; b++) {
      for (let t = 0; t < T; t++) {
        const at = layout === 'batch-major' ? (b * T + t) * F : (t * B + b) * F;
        this.dropoutRng.fillDropout(mask, p, keep, at, at + F);
      }
    }
    return mask;
  }

  /**
   * One pass's dropout multipliers (none out of training): each layer's input above the first, in the
   * kernel's layout, then the linear layer's input. Whichever way the pass runs, the draws are the same.
   */
  private dropoutMasks(b: Batch, train: boolean): { layers: (Float32Array | undefined)[]; features?: Float32Array } {
    const p = train ? this.settings.dropout : 0;
    const { hiddenSize: H, layers: L } = this.settings;
    const F = H * this.dirs;
    if (p === 0) return { layers: Array(L).fill(undefined) };
    const layers = Array.from({ length: L }, (_, l) => (l > 0 ? this.dropoutMask(b.batch, b.steps, F, p, this.gruKernel.layout) : undefined));
    return { layers, features: this.dropoutMask(b.batch, 1, F, p, 'batch-major') };
  }

  private async forward(b: Batch, train: boolean, keep: boolean): Promise<ForwardPass> {
    const { batch: B, steps: T } = b;
    const { hiddenSize: H, layers: L } = this.settings;
    const D = this.dirs;
    const masks = this.dropoutMasks(b, train);
    let input: Float32Array | LayerActivations = b.x;
    let inputSize = this.settings.inputSize;
    let last: Float32Array = new Float32Array(0);
    const saved: unknown[] = [];
    for (let l = 0; l < L; l++) {
      const shape = { batch: B, steps: T, input: inputSize, hidden: H, directions: D as 1 | 2 };
      const r = await this.gruKernel.forward(input, shape, b.lengths, this.gru[l], masks.layers[l], keep);
      saved.push(r.saved);
      input = r.output;
      last = r.last;
      inputSize = H * D;
    }
    const F = H * D;
    const featureMask = masks.features;
    const features = featureMask ? last.map((v, i) => v * featureMask[i]) : last;
    const logits = new Float32Array(B);
    for (let r = 0; r < B; r++) {
      let sum = this.outBias[0];
      for (let k = 0; k < F; k++) sum += features[r * F + k] * this.outWeight[k];
      logits[r] = sum;
    }
    return { logits, features, featureMask, saved };
  }

  private networkShape(b: Batch) {
    const { inputSize, hiddenSize, layers } = this.settings;
    return { batch: b.batch, steps: b.steps, input: inputSize, hidden: hiddenSize, directions: this.dirs as 1 | 2, layers };
  }

  /** The whole pass in one kernel call. */
  private async networkGradients(b: Batch, train: boolean, inputGrad: boolean): Promise<HeadGradients> {
    const r = await this.gruKernel.gradients!(
      { x: b.x, lengths: b.lengths, labels: b.labels! },
      this.networkShape(b),
      this.gru,
      { weight: this.outWeight, bias: this.outBias },
      this.dropoutMasks(b, train),
      inputGrad,
    );
    const grads: Record<string, Float32Array> = { 'out.weight': r.outWeight, 'out.bias': r.outBias };
    r.layers.forEach((layer, l) => nameLayerGradients(grads, l, layer));
    const ordered = Object.fromEntries(this.params.map((param) => [param.name, grads[param.name]]));
    return { loss: meanBce(r.logits, b.labels!), logits: r.logits, grads: ordered, dx: r.dx };
  }

  private async computeGradients(b: Batch, train: boolean, inputGrad: boolean): Promise<HeadGradients> {
    checkBatch(b, this.settings.inputSize, true);
    if (this.gruKernel.gradients) return this.networkGradients(b, train, inputGrad);
    const labels = b.labels!;
    const fw = await this.forward(b, train, true);
    const { batch: B } = b;
    const { hiddenSize: H, layers: L } = this.settings;
    const D = this.dirs;
    const F = H * D;
    const loss = meanBce(fw.logits, labels);
    const dLogits = new Float64Array(B);
    for (let r = 0; r < B; r++) {
      const z = fw.logits[r];
      const sigmoid = z >= 0 ? 1 / (1 + Math.exp(-z)) : Math.exp(z) / (1 + Math.exp(z));
      dLogits[r] = (sigmoid - labels[r]) / B;
    }
    const grads: Record<string, Float32Array> = {};
    const dOutWeight = new Float32Array(F);
    let dOutBias = 0;
    const dFeatures = new Float32Array(B * F);
    for (let k = 0; k < F; k++) {
      let sum = 0;
      for (let r = 0; r < B; r++) sum += dLogits[r] * fw.features[r * F + k];
      dOutWeight[k] = sum;
    }
    for (let r = 0; r < B; r++) {
      dOutBias += dLogits[r];
      for (let k = 0; k < F; k++) dFeatures[r * F + k] = dLogits[r] * this.outWeight[k] * (fw.featureMask ? fw.featureMask[r * F + k] : 1);
    }
    let dLast = dFeatures;
    let dOutput: LayerActivations | undefined;
    let dx: Float32Array | undefined;
    for (let l = L - 1; l >= 0; l--) {
      const g = await this.gruKernel.backward(fw.saved[l], dOutput, dLast, l > 0 || inputGrad);
      fw.saved[l] = undefined;
      nameLayerGradients(grads, l, g.grads);
      if (l === 0) dx = g.dInput?.data;
      dOutput = g.dInput;
      dLast = new Float32Array(B * F);
    }
    grads['out.weight'] = dOutWeight;
    grads['out.bias'] = Float32Array.of(dOutBias);
    const ordered = Object.fromEntries(this.params.map((p) => [p.name, grads[p.name]]));
    return { loss, logits: fw.logits, grads: ordered, dx };
  }
}
