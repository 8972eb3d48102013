// `sentiment validate`: the schema, then what `run` would reject in its first seconds (a DATASET or local
// MODEL that is not there, a MAX_LENGTH the model cannot take), for experiment and sweep files alike.
// Nothing is downloaded: `imdb` and hub model ids are accepted as written.
import path from 'node:path';
import { ConfigError, loadExperiment, parseExperimentFile, type LoadedExperiment, type Problem } from '../config/experiment.js';
import { isUserError } from '../core/errors.js';
import { TOKENIZER_FILES, isLocalModel, resolveModelFolder } from '../core/model-files.js';
import { describeDataset } from '../data/index.js';
import { ENCODER_FILES } from '../encoder/encoder.js';
import { modelMaxLength } from '../encoder/tokenizer.js';
import { loadSweep } from './sweep-file.js';

export interface ValidatedFile {
  file: string;
  /** Trials checked, for a sweep file. */
  trials?: number;
}

export interface Validation {
  ok: ValidatedFile[];
  /** Every problem of every file, in file order. */
  problems: Problem[];
}

/** A sweep file is told apart from an experiment file by its `base:` key. */
function isSweepFile(file: string): boolean {
  const parsed = parseExperimentFile(file, []);
  return parsed !== undefined && Object.hasOwn(parsed.values, 'base');
}

/**
 * Validates each file (an experiment, or a sweep and each of its trials, with `sets` applied) and checks
 * its DATASET, MODEL and MAX_LENGTH on disk, collecting every problem rather than stopping at the first.
 */
export async function validateFiles(files: string[], sets: string[] = [], cwd = process.cwd()): Promise<Validation> {
  const ok: ValidatedFile[] = [];
  const problems: Problem[] = [];
  const checks = new Checks();
  for (const file of files) {
    const found: Problem[] = [];
    let trials: number | undefined;
    try {
      if (isSweepFile(file)) {
        // --set applies to every trial, last, as `sentiment sweep --set` does.
        const sweep = loadSweep(file, cwd, sets);
        trials = sweep.trials.length;
        for (const trial of sweep.trials) found.push(...(await checks.experiment(trial.experiment)));
      } else {
        found.push(...(await checks.experiment(loadExperiment(file, sets, cwd))));
      }
    } catch (e) {
      if (!(e instanceof ConfigError)) throw e;
      found.push(...e.problems);
    }
    problems.push(...found);
    if (found.length === 0) ok.push({ file, ...(trials !== undefined ? { trials } : {}) });
  }
  // The same --set flag, or a base experiment shared by sweep trials, fails the same way: report it once.
  return { ok, problems: dedupe(problems) };
}

function dedupe(problems: Problem[]): Problem[] {
  const seen = new Set<string>();
  return problems.filter((p) => {
    const id = `${p.where}|${p.key}|${p.message}`;
    if (seen.has(id)) return false;
    seen.add(id);
    return true;
  });
}

/** A check's outcome without its position: the key it concerns (DATASET, DATASET.test, …) and why. */
type Finding = { key: string; message: string };

/** The on-disk checks, each computed once per distinct input (sweep trials mostly share them). */
class Checks {
  private readonly datasets = new Map<string, Promise<Finding[]>>();
  private readonly models = new Map<string, Promise<{ findings: Finding[]; dir?: string }>>();
  private readonly limits = new Map<string, Promise<number | undefined>>();

  async experiment(experiment: LoadedExperiment): Promise<Problem[]> {
    const { config, baseDirs } = experiment;
    const locate = (key: string) => experiment.locate?.(key.split('.')) ?? { where: experiment.file };
    const toProblem = (f: Finding): Problem => ({ ...locate(f.key), key: f.key, message: f.message });

    const datasetDir = baseDirs.DATASET ?? path.dirname(path.resolve(experiment.file));
    const datasetId = JSON.stringify([datasetDir, config.DATASET]);
    if (!this.datasets.has(datasetId)) this.datasets.set(datasetId, checkDataset(config.DATASET, datasetDir));
    const problems = (await this.datasets.get(datasetId)!).map(toProblem);

    const modelDir = baseDirs.MODEL ?? path.dirname(path.resolve(experiment.file));
    if (isLocalModel(config.MODEL, modelDir)) {
      const modelId = JSON.stringify([modelDir, config.MODEL]);
      if (!this.models.has(modelId)) this.models.set(modelId, checkModel(config.MODEL, modelDir));
      const { findings, dir } = await this.models.get(modelId)!;
      problems.push(...findings.map(toProblem));
      if (dir) {
        if (!this.limits.has(dir)) this.limits.set(dir, modelMaxLength(dir).catch(() => undefined));
        const limit = await this.limits.get(dir)!;
        if (limit !== undefined && config.MAX_LENGTH > limit) {
          const tooLong = `is longer than this model accepts (${limit} tokens, from ${dir})`;
          // Left to its default: point at MODEL, which made the default too long.
          const written = experiment.locate?.(['MAX_LENGTH']);
          problems.push(
            written
              ? { ...written, key: 'MAX_LENGTH', message: `${config.MAX_LENGTH} ${tooLong}` }
              : { ...locate('MODEL'), key: 'MAX_LENGTH', message: `the default (${config.MAX_LENGTH}) ${tooLong}; set MAX_LENGTH to at most ${limit}` },
          );
        }
      }
    }
    return problems.sort((a, b) => (a.line ?? 0) - (b.line ?? 0) || (a.col ?? 0) - (b.col ?? 0));
  }
}

/** What describeDataset (the data stage's first step) rejects; `imdb` passes without a network check. */
async function checkDataset(dataset: LoadedExperiment['config']['DATASET'], baseDir: string): Promise<Finding[]> {
  try {
    await describeDataset(dataset, baseDir);
    return [];
  } catch (e) {
    if (!isUserError(e)) throw e;
    return [finding(e.message, typeof dataset === 'string' ? 'DATASET' : 'DATASET.path')];
  }
}

/** A local MODEL folder with the files the tokenizer and the encoder read. */
async function checkModel(model: string, baseDir: string): Promise<{ findings: Finding[]; dir?: string }> {
  const files = { required: [...TOKENIZER_FILES.required, ...ENCODER_FILES.required] };
  try {
    // A local folder is only looked at: resolveModelFolder downloads for hub ids alone, and the cache is unused.
    const { dir } = await resolveModelFolder(model, baseDir, baseDir, files);
    return { findings: [], dir };
  } catch (e) {
    if (!isUserError(e)) throw e;
    return { findings: [finding(e.message, 'MODEL')] };
  }
}

/** A UserError's `KEY: message` split into its key (DATASET.test, say) and the rest. */
function finding(message: string, fallbackKey: string): Finding {
  const m = /^([A-Z][A-Z_]*(?:\.[a-z_]+)?): ([\s\S]*)$/.exec(message);
  return m ? { key: m[1], message: m[2] } : { key: fallbackKey, message };
}
