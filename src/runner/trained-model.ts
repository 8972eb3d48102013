import { existsSync } from 'node:fs';
import { copyFile, cp, mkdir, readdir, readFile, rm, stat, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { createHash } from 'node:crypto';
import canonicalize from 'canonicalize';
import writeFileAtomic from 'write-file-atomic';
import { Cache, type CacheEntry, type StageKey } from '../core/cache.js';
import { loadExperiment, type Experiment, type LoadedExperiment } from '../config/experiment.js';
import { UserError } from '../core/errors.js';
import { checkFolderOption } from '../core/system-errors.js';
import { planStages, stagesUntil } from './pipeline.js';
import type { AnyStage } from '../stages/stage.js';
import { resolveModelFolder, TOKENIZER_FILES } from '../core/model-files.js';

/** A trained model: found through the cache for an experiment (and the index runs record), or an export folder; opened for prediction, or exported. */

export interface InferRequest {
  /** The pipeline's stages, to find the trained head's entries by key. */
  stages: AnyStage[];
  /** An experiment file (finds its head through the cache), or… */
  config?: string;
  /** …a folder written by `sentiment export`. */
  model?: string;
  sets: string[];
  cacheDir: string;
  /** Whether ONNX Runtime's idle threads spin (default true); `serve` turns it off (see SessionOptionsRequest). */
  allowSpinning?: boolean;
}

/** What `sentiment export` writes next to head.safetensors, head.json and encoder/. */
interface ExportedModel {
  format: 1;
  experiment: string;
  config: Experiment;
  classes: [string, string];
  /** When the head was trained (its train entry's time); absent in exports made before it was recorded. */
  trainedAt?: string;
}

const EXPORT_MANIFEST = 'sentiment-model.json';

/** The stages whose entries a trained head needs, as the index records them. */
const TRAINED_STAGES = ['data', 'tokenize', 'encode', 'train'] as const;
type TrainedKeys = Record<(typeof TRAINED_STAGES)[number], StageKey>;

/** `<cache>/index/<id>.json`: the keys a run that trained this experiment used (see trainedIndexId). */
interface TrainedIndex {
  format: 1;
  experiment: string;
  keys: TrainedKeys;
  createdAt: string;
}

export const INDEX_DIR = 'index';

/**
 * What identifies an experiment's trained head without fingerprints of external files, so it can be found
 * after its dataset was moved: the version and config values of every stage up to train, and DATASET and
 * MODEL as given with the folders they resolve against. SHA-256 of its canonical JSON.
 */
export function trainedIndexId(experiment: LoadedExperiment, stages: AnyStage[]): string {
  const { config, baseDirs } = experiment;
  const identity = {
    stages: Object.fromEntries(stagesUntil(stages, 'train').map((s) => [s.name, { version: s.version, config: s.reads(config) }])),
    DATASET: { value: config.DATASET ?? null, baseDir: baseDirs.DATASET ?? process.cwd() },
    MODEL: { value: config.MODEL ?? null, baseDir: baseDirs.MODEL ?? process.cwd() },
  };
  return createHash('sha256').update(canonicalize(identity) ?? '').digest('hex');
}

/**
 * Records, after a run completed the train stage, which entries it used, so `infer --config` and `export
 * --config` find the head from the cache alone (written atomically; the latest run wins). `paths` are the
 * run's stage entry folders.
 */
export async function recordTrainedIndex(experiment: LoadedExperiment, stages: AnyStage[], cacheDir: string, paths: Partial<Record<string, string>>): Promise<void> {
  const cache = new Cache(path.resolve(cacheDir));
  const keys: Partial<TrainedKeys> = {};
  for (const name of TRAINED_STAGES) {
    const at = paths[name] ? cache.entryOf(path.join(paths[name], 'manifest.json')) : undefined;
    if (!at || at.stage !== name) return;
    keys[name] = at.key;
  }
  const record: TrainedIndex = { format: 1, experiment: experiment.name, keys: keys as TrainedKeys, createdAt: new Date().toISOString() };
  const dir = path.join(cache.root, INDEX_DIR);
  await mkdir(dir, { recursive: true });
  await writeFileAtomic(path.join(dir, `${trainedIndexId(experiment, stages)}.json`), `${JSON.stringify(record, null, 2)}\n`);
}

/** The entries the index names for this experiment, when it has a record and every entry is intact. */
async function indexedEntries(experiment: LoadedExperiment, stages: AnyStage[], cache: Cache): Promise<{ train: CacheEntry; data: CacheEntry } | undefined> {
  let record: TrainedIndex;
  try {
    record = JSON.parse(await readFile(path.join(cache.root, INDEX_DIR, `${trainedIndexId(experiment, stages)}.json`), 'utf8')) as TrainedIndex;
  } catch {
    return undefined;
  }
  if (record?.format !== 1 || typeof record.keys !== 'object' || record.keys === null) return undefined;
  const found: Partial<Record<string, CacheEntry>> = {};
  for (const name of TRAINED_STAGES) {
    const key = record.keys[name];
    if (typeof key !== 'string' || !/^[0-9a-f]{64}$/.test(key)) return undefined;
    const entry = await cache.lookup(name, key);
    if (!entry) return undefined;
    found[name] = entry;
  }
  return { train: found.train!, data: found.data! };
}

/**
 * The cache entries `sentiment run` made for this config (same --set overrides): found by planning every
 * stage's key as a run would; when that cannot be done because an input is gone (the dataset was moved),
 * through the index the run recorded (recordTrainedIndex), so only the cache is needed.
 */
async function trainedEntries(configFile: string, sets: string[], cacheDir: string, stages: AnyStage[]): Promise<{ config: Experiment; modelBaseDir: string; train: CacheEntry; data: CacheEntry; name: string }> {
  const experiment = loadExperiment(configFile, sets);
  await checkFolderOption('--cache-dir', cacheDir);
  const cache = new Cache(path.resolve(cacheDir));
  let found: { train?: CacheEntry; data?: CacheEntry };
  // Why the plan could not be made (an input that cannot be read), when the index has no record either.
  let unplanned: string | undefined;
  try {
    const plan = await planStages(experiment, stagesUntil(stages, 'train'), cache);
    found = { train: plan.find((p) => p.stage.name === 'train')!.entry, data: plan.find((p) => p.stage.name === 'data')!.entry };
  } catch (e) {
    if (!(e instanceof UserError)) throw e;
    // An input is gone (say the dataset was moved): the index the run recorded needs only the cache.
    found = (await indexedEntries(experiment, stages, cache)) ?? {};
    unplanned = e.message;
  }
  const { train, data } = found;
  if (!train || !data) {
    const command = ['sentiment run', configFile, ...sets.map((s) => `--set ${JSON.stringify(s).slice(1, -1)}`)].join(' ');
    const exportCommand = ['sentiment export --config', configFile, ...sets.map((s) => `--set ${JSON.stringify(s).slice(1, -1)}`), '--out DIR'].join(' ');
    throw new UserError(`${configFile}: no trained head for this config${sets.length ? ' and these --set overrides' : ''} in ${path.resolve(cacheDir)}${unplanned ? ` (nor could its key be computed: ${unplanned})` : ''}. Train it first with: ${command}`, [
      `To use a trained model elsewhere (another machine, without its dataset or this cache), write it to a folder with \`${exportCommand}\` and predict with \`sentiment infer --model DIR\`.`,
    ]);
  }
  return { config: experiment.config, modelBaseDir: experiment.baseDirs.MODEL ?? process.cwd(), train, data, name: experiment.name };
}

/** Where a trained model is and what it was trained with, found without loading it. */
export interface TrainedModel {
  /** The resolved config the head was trained with. */
  config: Experiment;
  classes: [string, string];
  /** The folder with head.safetensors and head.json. */
  headDir: string;
  /** What relative MODEL paths are relative to. */
  modelBaseDir: string;
  experiment: string;
  trainedAt: string | null;
}

/**
 * Finds the trained model of a config (through the cache) or an exported folder, reading only small
 * files: bad input (a missing or invalid config, one never trained, a folder that is no export) fails
 * here, before anything is loaded.
 */
export async function findTrainedModel(req: InferRequest): Promise<TrainedModel> {
  let config: Experiment;
  let classes: [string, string];
  let headDir: string;
  let modelBaseDir: string;
  let experiment: string;
  let trainedAt: string | null;
  if (req.model) {
    const dir = path.resolve(req.model);
    const manifestFile = path.join(dir, EXPORT_MANIFEST);
    if (!existsSync(manifestFile)) throw new UserError(`--model ${req.model}: not a folder written by \`sentiment export\` (no ${EXPORT_MANIFEST})`);
    const exported = JSON.parse(await readFile(manifestFile, 'utf8')) as ExportedModel;
    config = { ...exported.config, MODEL: path.join(dir, 'encoder') };
    classes = exported.classes;
    headDir = dir;
    modelBaseDir = dir;
    experiment = exported.experiment;
    trainedAt = exported.trainedAt ?? null;
  } else {
    const found = await trainedEntries(req.config!, req.sets, req.cacheDir, req.stages);
    config = found.config;
    classes = (found.data.manifest.info as { classes: [string, string] }).classes;
    headDir = found.train.dir;
    modelBaseDir = found.modelBaseDir;
    experiment = found.name;
    trainedAt = found.train.manifest.createdAt;
  }
  return { config, classes, headDir, modelBaseDir, experiment, trainedAt };
}

/** Loads tokenizer, encoder and head once, for a config (via the cache) or an exported folder (`found`: already found by findTrainedModel). */
export async function openPredictor(req: InferRequest, found?: TrainedModel) {
  const { createPredictor } = await import('../inference/predictor.js');
  const { loadTrainedHead } = await import('../training/trained-head.js');
  const { config, classes, headDir, modelBaseDir, experiment, trainedAt } = found ?? (await findTrainedModel(req));
  const { head, info } = await loadTrainedHead(headDir, config.BACKEND, { allowSpinning: req.allowSpinning });
  const predictor = await createPredictor({ config, modelBaseDir, cacheRoot: path.resolve(req.cacheDir), head, classes, allowSpinning: req.allowSpinning });
  return {
    predictor,
    /** The resolved config the head was trained with (its DATASET says how that dataset's labels were read). */
    config,
    /** The dataset's two classes; the head's label 1 is config.TARGET. */
    classes,
    /** The experiment's name, the head's settings and training summary (head.json), and when it was trained (null: unknown). */
    experiment,
    head: info,
    trainedAt,
    async close() {
      await predictor.dispose();
      head.dispose();
    },
  };
}

/**
 * --out of `sentiment export` must be a new or empty folder; one an earlier export wrote is replaced
 * only with `force` (`--force`).
 */
export async function checkExportFolder(outDir: string, options: { force?: boolean } = {}): Promise<void> {
  const info = await stat(outDir).catch(() => undefined);
  if (!info) return;
  if (!info.isDirectory()) throw new UserError(`--out ${outDir}: is a file; export writes a folder, so give a new folder name`);
  const entries = await readdir(outDir);
  if (entries.length === 0) return;
  if (!entries.includes(EXPORT_MANIFEST)) {
    throw new UserError(`--out ${outDir}: the folder is not empty and was not written by \`sentiment export\` (no ${EXPORT_MANIFEST}); give a new or empty folder`);
  }
  if (!options.force) throw new UserError(`--out ${outDir}: holds a model exported earlier; give --force to replace it, or a new folder`);
}

/**
 * Writes a self-contained model folder: the head, its settings and the resolved config, the dataset's
 * classes, and a copy of the encoder's files (tokenizer, config, ONNX weights) under encoder/.
 */
export async function exportModel(
  configFile: string,
  sets: string[],
  cacheDir: string,
  outDir: string,
  stages: AnyStage[],
  options: { force?: boolean } = {},
): Promise<{ dir: string; files: string[] }> {
  await checkExportFolder(outDir, options);
  const found = await trainedEntries(configFile, sets, cacheDir, stages);
  const { ENCODER_FILES } = await import('../encoder/encoder.js');
  const folder = await resolveModelFolder(found.config.MODEL, found.modelBaseDir, path.resolve(cacheDir), {
    required: [...TOKENIZER_FILES.required, ...ENCODER_FILES.required],
    optional: [...TOKENIZER_FILES.optional, ...ENCODER_FILES.optional],
  });
  const dir = path.resolve(outDir);
  // Replacing an earlier export (--force): what it wrote goes, so no file of another encoder stays behind.
  for (const f of [EXPORT_MANIFEST, 'head.safetensors', 'head.json', 'encoder']) await rm(path.join(dir, f), { recursive: true, force: true });
  await mkdir(path.join(dir, 'encoder'), { recursive: true });
  const files = [...TOKENIZER_FILES.required, ...TOKENIZER_FILES.optional, ...ENCODER_FILES.required, ...ENCODER_FILES.optional].filter((f, i, all) => all.indexOf(f) === i);
  const copied: string[] = [];
  for (const f of files) {
    if (!existsSync(path.join(folder.dir, f))) continue;
    await mkdir(path.dirname(path.join(dir, 'encoder', f)), { recursive: true });
    await cp(path.join(folder.dir, f), path.join(dir, 'encoder', f));
    copied.push(`encoder/${f}`);
  }
  for (const f of ['head.safetensors', 'head.json']) await copyFile(path.join(found.train.dir, f), path.join(dir, f));
  const manifest: ExportedModel = {
    format: 1,
    experiment: found.name,
    config: found.config,
    classes: (found.data.manifest.info as { classes: [string, string] }).classes,
    trainedAt: found.train.manifest.createdAt,
  };
  await writeFile(path.join(dir, EXPORT_MANIFEST), JSON.stringify(manifest, null, 2));
  return { dir, files: [EXPORT_MANIFEST, 'head.safetensors', 'head.json', ...copied] };
}
