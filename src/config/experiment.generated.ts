/* Generated from schemas/ by scripts/gen-types.mjs; do not edit. Run `npm run gen:types`. */

/**
 * A sentiment experiment: a frozen pretrained BERT encoder feeding a (bi)directional GRU head. The first ten keys are the original PyTorch project's settings, with its defaults; the rest are extensions.
 */
export interface ExperimentConfig {
  /**
   * true: train, evaluate, then predict TEXT. false: only predict TEXT with the head already trained for this config.
   */
  TRAIN?: boolean;
  /**
   * Text whose sentiment is predicted at the end of a run.
   */
  TEXT?: string;
  /**
   * Training batch size (examples per optimiser step).
   */
  BATCH_SIZE?: number;
  /**
   * Training epochs.
   */
  N_EPOCHS?: number;
  /**
   * Seed for the train/valid split, subsets, initialisation, dropout and shuffling.
   */
  SEED?: number;
  /**
   * Bidirectional GRU.
   */
  BIDIRECTIONAL?: boolean;
  /**
   * GRU hidden size.
   */
  HIDDEN_DIM?: number;
  /**
   * Width of the output layer. Must be 1: the head is a binary classifier with one logit.
   */
  OUTPUT_DIM?: 1;
  /**
   * Stacked GRU layers.
   */
  N_LAYERS?: number;
  /**
   * Dropout probability between GRU layers and before the linear layer, in [0, 1).
   */
  DROPOUT?: number;
  /**
   * Encoder: a Hugging Face model id (for example Xenova/bert-base-uncased, downloaded when online) or a local folder in the Hugging Face layout (config.json, tokenizer.json, onnx/model.onnx). Relative paths are resolved from the experiment file's folder (from the current folder for --set).
   */
  MODEL?: string;
  /**
   * Dataset: `imdb` (downloads aclImdb_v1.tar.gz when online), a path (an aclImdb folder, an aclImdb_v1.tar.gz, a JSONL or CSV file, or a folder holding train.* and test.*), or a mapping with the path and how to read it.
   */
  DATASET?: string | DatasetSpec;
  /**
   * Maximum tokens per text including [CLS] and [SEP]; longer texts keep their head.
   */
  MAX_LENGTH?: number;
  /**
   * Adam learning rate (the base of LR_SCHEDULE).
   */
  LEARNING_RATE?: number;
  /**
   * How the learning rate changes over the training steps: constant (the original's), or linear / cosine decay from LEARNING_RATE to 0 at the last step, after LR_WARMUP.
   */
  LR_SCHEDULE?: 'constant' | 'linear' | 'cosine';
  /**
   * Fraction of the training steps over which the learning rate rises linearly from 0 to LEARNING_RATE (0: no warm-up).
   */
  LR_WARMUP?: number;
  /**
   * Stop training after this many epochs without a better valid loss (null: train all N_EPOCHS, as the original does). The head kept is the best one either way.
   */
  PATIENCE?: number | null;
  /**
   * Fraction of the training examples held out as the valid split (0.3 gives 17,500 / 7,500 on IMDB).
   */
  VALID_RATIO?: number;
  /**
   * Use a deterministic, class-balanced subset of this many training examples (before the valid split); null uses all.
   */
  MAX_TRAIN_EXAMPLES?: number | null;
  /**
   * Use a deterministic, class-balanced subset of this many test examples; null uses all.
   */
  MAX_TEST_EXAMPLES?: number | null;
  /**
   * The class whose probability the model outputs (label 1). One of the dataset's two classes; `negative` by default, as in the original (outputs near 1 mean negative).
   */
  TARGET?: string;
  /**
   * How the encoder's per-token features are stored in the cache.
   */
  ENCODER_DTYPE?: 'float16' | 'float32';
  /**
   * int8: run the encoder with its weight matrices quantized to 8-bit integers (ONNX Runtime's dynamic quantization: activations quantized per call, a scale per output column), made once from MODEL's onnx/model.onnx and kept in the cache. Several times faster on CPUs with AVX512-VNNI or AVX-VNNI; changes the features slightly, so it is off by default. none: the model's float32 weights.
   */
  ENCODER_QUANTIZE?: 'none' | 'int8';
  /**
   * Training engine for the GRU head. onnxruntime runs the repo's GRU graphs on onnxruntime-node (CPU) and starts no tfjs; tensorflow-gpu and tensorflow are tfjs-node (optional packages); wasm and cpu are tfjs's WebAssembly and plain JavaScript backends. auto takes tensorflow-gpu, else tensorflow when installed, else onnxruntime. An explicitly requested backend that cannot load is an error.
   */
  BACKEND?: 'auto' | 'onnxruntime' | 'tensorflow-gpu' | 'tensorflow' | 'wasm' | 'cpu';
  /**
   * Where the encoder runs. auto picks the best available; an explicitly requested device that is unavailable is an error.
   */
  DEVICE?: 'auto' | 'cpu' | 'cuda' | 'webgpu';
}
/**
 * Where a dataset is and how to read it.
 */
export interface DatasetSpec {
  /**
   * `imdb`, an aclImdb folder, an aclImdb_v1.tar.gz, a JSONL/CSV file (the training file; see test and test_ratio), or a folder holding train.* and test.*.
   */
  path: string;
  /**
   * A separate JSONL/CSV test file, when path is a single training file.
   */
  test?: string;
  /**
   * When there is no test file: the fraction of rows held out (deterministically, from SEED) as the test split.
   */
  test_ratio?: number;
  /**
   * Column (CSV) or field (JSONL) holding the text.
   */
  text_column?: string;
  /**
   * Column or field holding the label.
   */
  label_column?: string;
  /**
   * Column or field holding a unique row id. When absent, ids are line numbers (IMDB's JSONL `id` repeats across classes, so it is not used by default).
   */
  id_column?: string;
  /**
   * Names of the two classes: the first for raw label 0 (or false, or below threshold), the second for raw label 1 (or true, or at/above threshold). String labels equal to a class name map to it.
   *
   * @minItems 2
   * @maxItems 2
   */
  classes?: [string, string];
  /**
   * Numeric labels at or above this value are the second class (for scores such as Ethos's isHate).
   */
  threshold?: number;
  /**
   * CSV field delimiter; detected from the header line (comma, semicolon or tab) when absent.
   */
  delimiter?: string;
}

/**
 * Many experiments from one base: overrides common to all trials (set), a cartesian product (grid) and/or explicit trials, or a random search (search). Each trial's settings are validated like an experiment file before anything runs.
 */
export interface SweepConfig {
  /**
   * The experiment file the trials start from, relative to the sweep file.
   */
  base: string;
  /**
   * Overrides common to every trial (experiment keys).
   */
  set?: {};
  /**
   * Experiment keys with lists of values: one trial per combination.
   */
  grid?: {
    /**
     * @minItems 1
     */
    [k: string]: [unknown, ...unknown[]];
  };
  /**
   * Explicit trials, each a mapping of experiment keys; run after the grid's.
   */
  trials?: {}[];
  /**
   * Sample the trials instead of listing them (not with grid or trials; set applies under the sampled values). Keys are sampled in the order written, so the same file and seed give the same trials.
   */
  search?: {
    /**
     * How trials are sampled: random draws from each key's distribution.
     */
    method: 'random';
    /**
     * How many trials to sample.
     */
    trials: number;
    /**
     * Seed of the sampling; default: the sweep's SEED (its set.SEED, else the base experiment's SEED). A --set SEED changes the trials' training, not which trials are sampled.
     */
    seed?: number;
    /**
     * Experiment keys, each with exactly one distribution: choice, uniform, loguniform or int.
     */
    space: {
      [k: string]: Distribution;
    };
  };
  /**
   * Stop trials that fall behind (ASHA: asynchronous successive halving over epochs). At each rung (min_epochs, min_epochs × reduction_factor, …, below the trial's N_EPOCHS) a trial goes on only if its metric is among the best 1/reduction_factor of the values recorded at that rung so far; otherwise it is recorded as `stopped` with the epochs it trained.
   */
  early_stop?: {
    /**
     * The early-stopping method.
     */
    method: 'asha';
    /**
     * What is compared at a rung: the epoch's valid loss (lower is better) or valid accuracy (higher is better).
     */
    metric?: 'valid_loss' | 'valid_accuracy';
    /**
     * The first rung: every trial trains at least this many epochs.
     */
    min_epochs?: number;
    /**
     * Each rung keeps about 1/reduction_factor of the trials; rungs are min_epochs × reduction_factor^k epochs.
     */
    reduction_factor?: number;
  };
}
/**
 * Exactly one of choice, uniform, loguniform, int.
 */
export interface Distribution {
  /**
   * One of these values, each equally likely.
   *
   * @minItems 1
   */
  choice?: [unknown, ...unknown[]];
  /**
   * [low, high]: a number drawn uniformly, low <= x < high.
   *
   * @minItems 2
   * @maxItems 2
   */
  uniform?: [number, number];
  /**
   * [low, high], 0 < low < high: a number whose logarithm is uniform, low <= x < high (for learning rates).
   *
   * @minItems 2
   * @maxItems 2
   */
  loguniform?: [number, number];
  /**
   * [low, high]: an integer drawn uniformly, both ends included.
   *
   * @minItems 2
   * @maxItems 2
   */
  int?: [number, number];
}
