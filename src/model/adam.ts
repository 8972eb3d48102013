export interface AdamOptions {
  lr: number;
  beta1?: number;
  beta2?: number;
  eps?: number;
}

export interface AdamState {
  step: number;
  expAvg: Float32Array[];
  expAvgSq: Float32Array[];
}

const f32 = Math.fround;

/**
 * torch.optim.Adam (no weight decay, no amsgrad) updating Float32Array parameters in place: float32
 * storage, rounded where torch stores a tensor, bias corrections in double as torch computes them.
 */
export class Adam {
  /** The learning rate of the next step (a schedule may change it between steps, as torch's schedulers do). */
  lr: number;
  readonly beta1: number;
  readonly beta2: number;
  readonly eps: number;
  step = 0;
  readonly expAvg: Float32Array[];
  readonly expAvgSq: Float32Array[];

  constructor(
    readonly params: Float32Array[],
    options: AdamOptions,
  ) {
    this.lr = options.lr;
    this.beta1 = options.beta1 ?? 0.9;
    this.beta2 = options.beta2 ?? 0.999;
    this.eps = options.eps ?? 1e-8;
    this.expAvg = params.map((p) => new Float32Array(p.length));
    this.expAvgSq = params.map((p) => new Float32Array(p.length));
  }

  update(grads: Float32Array[]): void {
    if (grads.length !== this.params.length) throw new Error(`Adam: ${grads.length} gradients for ${this.params.length} parameters`);
    this.step++;
    const { beta1, beta2, eps } = this;
    const stepSize = this.lr / (1 - beta1 ** this.step);
    const bias2Sqrt = Math.sqrt(1 - beta2 ** this.step);
    for (let k = 0; k < this.params.length; k++) {
      const p = this.params[k];
      const g = grads[k];
      const m = this.expAvg[k];
      const v = this.expAvgSq[k];
      if (g.length !== p.length) throw new Error(`Adam: gradient ${k} has ${g.length} values, parameter has ${p.length}`);
      for (let i = 0; i < p.length; i++) {
        const gi = g[i];
        const mi = f32(f32(m[i] * beta1) + f32(gi * (1 - beta1)));
        const vi = f32(f32(v[i] * beta2) + f32(f32(gi * gi) * (1 - beta2)));
        m[i] = mi;
        v[i] = vi;
        const denom = f32(f32(Math.sqrt(vi) / bias2Sqrt) + eps);
        p[i] = f32(p[i] - stepSize * f32(mi / denom));
      }
    }
  }

  getState(): AdamState {
    return { step: this.step, expAvg: this.expAvg.map((a) => a.slice()), expAvgSq: this.expAvgSq.map((a) => a.slice()) };
  }

  setState(state: AdamState): void {
    if (state.expAvg.length !== this.params.length || state.expAvgSq.length !== this.params.length) throw new Error('Adam: state does not match the parameters');
    state.expAvg.forEach((a, k) => {
      if (a.length !== this.params[k].length || state.expAvgSq[k].length !== a.length) throw new Error(`Adam: state of parameter ${k} has the wrong size`);
      this.expAvg[k].set(a);
      this.expAvgSq[k].set(state.expAvgSq[k]);
    });
    this.step = state.step;
  }
}
