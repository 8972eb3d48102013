import { createHash } from 'node:crypto';
import path from 'node:path';
import { ArrowFileWriter, arrow, int8Column, utf8Column } from '../core/arrow.js';
import type { Experiment } from '../config/experiment.js';
import { UserError } from '../core/errors.js';
import type { Sources, Stage } from './stage.js';
import { describeDataset, readExamples, type SourceExample } from '../data/index.js';
import { displayPath } from '../data/types.js';

export const DATA_FILE = 'data.arrow';
export type Split = 'train' | 'valid' | 'test';

export const dataSchema = new arrow.Schema([
  new arrow.Field('id', new arrow.Utf8(), false),
  new arrow.Field('text', new arrow.Utf8(), false),
  new arrow.Field('label', new arrow.Int8(), false),
  new arrow.Field('split', new arrow.Utf8(), false),
]);

/** A labelled example of the data stage's output: label 1 means TARGET. */
export interface Example {
  id: string;
  text: string;
  label: 0 | 1;
  split: Split;
}

/** Deterministic pseudo-random order: SHA-256 of seed, purpose and id. */
function orderKey(seed: number, purpose: string, id: string): string {
  return createHash('sha256').update(`${seed}\0${purpose}\0${id}`).digest('hex');
}

function shuffled<T extends { id: string }>(rows: T[], seed: number, purpose: string): T[] {
  return rows
    .map((row) => ({ row, key: orderKey(seed, purpose, row.id) }))
    .sort((a, b) => (a.key < b.key ? -1 : a.key > b.key ? 1 : 0))
    .map((x) => x.row);
}

/** `size` rows, half of each label where possible (the rest from the larger class), in input order. */
export function balancedSubset<T extends { id: string; label: 0 | 1 }>(rows: T[], size: number, seed: number, purpose: string): T[] {
  if (size >= rows.length) return rows;
  const byLabel = [0, 1].map((label) => shuffled(rows.filter((r) => r.label === label), seed, purpose));
  let take0 = Math.min(byLabel[0].length, Math.ceil(size / 2));
  const take1 = Math.min(byLabel[1].length, size - take0);
  take0 = Math.min(byLabel[0].length, size - take1);
  const chosen = new Set([...byLabel[0].slice(0, take0), ...byLabel[1].slice(0, take1)].map((r) => r.id));
  return rows.filter((r) => chosen.has(r.id));
}

/** Holds out `ratio` of `rows` (by seeded order), keeping input order within each part. */
export function holdOut<T extends { id: string }>(rows: T[], ratio: number, seed: number, purpose: string): { kept: T[]; held: T[] } {
  const count = Math.round(rows.length * ratio);
  const held = new Set(shuffled(rows, seed, purpose).slice(0, count).map((r) => r.id));
  return { kept: rows.filter((r) => !held.has(r.id)), held: rows.filter((r) => held.has(r.id)) };
}

/**
 * Splits source examples into train/valid/test with labels for TARGET: subsets are taken first
 * (MAX_TRAIN_EXAMPLES from the training source, before the valid split), then VALID_RATIO of the
 * training rows become the valid split.
 */
/** What splitting reads: the data stage's reads, and DATASET (named in errors only). */
export type SplitSettings = ReturnType<typeof dataReads> & { DATASET?: Experiment['DATASET'] };

export function splitExamples(source: SourceExample[], classes: [string, string], hasTest: boolean, testRatio: number, config: SplitSettings): Example[] {
  const target = classes.indexOf(config.TARGET);
  if (target < 0) {
    throw new UserError(`TARGET: "${config.TARGET}" is not a class of this dataset; its classes are ${classes.map((c) => `"${c}"`).join(' and ')}`);
  }
  const labelled = source.map((s) => ({ id: s.id, text: s.text, label: (s.classIndex === target ? 1 : 0) as 0 | 1, source: s.source }));
  let train = labelled.filter((r) => r.source === 'train');
  let test = labelled.filter((r) => r.source === 'test');
  if (!hasTest) ({ kept: train, held: test } = holdOut(train, testRatio, config.SEED, 'test'));
  if (config.MAX_TRAIN_EXAMPLES !== null) train = balancedSubset(train, config.MAX_TRAIN_EXAMPLES, config.SEED, 'train-subset');
  if (config.MAX_TEST_EXAMPLES !== null) test = balancedSubset(test, config.MAX_TEST_EXAMPLES, config.SEED, 'test-subset');
  const { kept, held: valid } = holdOut(train, config.VALID_RATIO, config.SEED, 'valid');
  const out = (rows: typeof train, split: Split): Example[] => rows.map((r) => ({ id: r.id, text: r.text, label: r.label, split }));
  const examples = [...out(kept, 'train'), ...out(valid, 'valid'), ...out(test, 'test')];
  for (const split of ['train', 'valid', 'test'] as const) {
    if (!examples.some((e) => e.split === split)) {
      throw new UserError(`DATASET: the ${split} split is empty (check MAX_TRAIN_EXAMPLES, MAX_TEST_EXAMPLES, VALID_RATIO and the dataset's size)`);
    }
  }
  checkBothClasses(examples, classes, target, config);
  return examples;
}

/**
 * Every split must hold both classes: training on one class learns nothing, and valid/test metrics (ROC-AUC,
 * precision) are undefined. Checked before anything is written, naming the dataset, the split and the counts.
 */
function checkBothClasses(examples: Example[], classes: [string, string], target: number, config: SplitSettings): void {
  const counts: Record<Split, [number, number]> = { train: [0, 0], valid: [0, 0], test: [0, 0] };
  for (const e of examples) counts[e.split][e.label]++;
  // label 1 is TARGET (classes[target]), label 0 the other class.
  const names = [classes[1 - target]!, classes[target]!];
  const problems = (['train', 'valid', 'test'] as const)
    .filter((split) => counts[split][0] === 0 || counts[split][1] === 0)
    .map((split) => {
      const order = counts[split][1] > 0 ? [1, 0] : [0, 1];
      return `split "${split}" has only one class (${order.map((l) => `${names[l]}: ${counts[split][l]}`).join(', ')})`;
    });
  if (problems.length === 0) return;
  const shown = typeof config.DATASET === 'string' ? config.DATASET : (config.DATASET as { path?: string } | undefined)?.path;
  throw new UserError(`DATASET${shown ? ` ${shown}` : ''}: ${problems[0]}; a classifier needs both`, [
    ...problems.slice(1).map((p) => `also: ${p}`),
    'check DATASET.label_column, DATASET.classes or DATASET.threshold; with few rows of a class, lower VALID_RATIO or raise MAX_TRAIN_EXAMPLES / MAX_TEST_EXAMPLES',
  ]);
}

const BATCH_ROWS = 2048;

async function writeExamples(file: string, examples: Example[]): Promise<void> {
  const writer = await ArrowFileWriter.create(file, dataSchema);
  for (let start = 0; start < examples.length; start += BATCH_ROWS) {
    const rows = examples.slice(start, start + BATCH_ROWS);
    await writer.write([
      utf8Column(rows.map((r) => r.id)),
      utf8Column(rows.map((r) => r.text)),
      int8Column(Int8Array.from(rows, (r) => r.label)),
      utf8Column(rows.map((r) => r.split)),
    ]);
  }
  await writer.close();
}

function describe(sources: Sources) {
  return describeDataset(sources.dataset.value, sources.dataset.baseDir);
}

export function dataReads(config: Experiment) {
  return {
    SEED: config.SEED,
    VALID_RATIO: config.VALID_RATIO,
    MAX_TRAIN_EXAMPLES: config.MAX_TRAIN_EXAMPLES,
    MAX_TEST_EXAMPLES: config.MAX_TEST_EXAMPLES,
    TARGET: config.TARGET,
  };
}

/** data's manifest info. */
export interface DataInfo {
  rows: number;
  /** Rows per split, and how many of them are TARGET. */
  splits: Record<string, { rows: number; target: number }>;
  /** The dataset's two classes; labels are 1 for TARGET. */
  classes: [string, string];
  target: string;
  non_utf8?: { rows: number; first: string | undefined };
  files: string[];
}

export const dataStage: Stage<'data', ReturnType<typeof dataReads>> = {
  name: 'data',
  // Also covers the dataset readers in src/data: bump it when they change what they read.
  version: 1,
  upstream: [],
  reads: dataReads,
  async inputs(ctx) {
    const desc = await describe(ctx.sources);
    return { dataset: { kind: desc.kind, ...desc.identity, files: desc.inputs.length > 0 ? await ctx.fingerprint(desc.inputs) : {} } };
  },
  async produce(ctx) {
    const desc = await describe(ctx.sources);
    const source: SourceExample[] = [];
    const nonUtf8 = { rows: 0, first: undefined as string | undefined };
    for await (const example of readExamples(desc, {
      downloadsDir: path.join(ctx.sources.cacheRoot, 'downloads'),
      signal: ctx.signal,
      onProgress: (p) => ctx.progress.update(p.done, p.total, p.unit, p.phase === 'download' ? 'download' : 'read'),
      onNonUtf8: (where) => {
        nonUtf8.rows++;
        nonUtf8.first ??= `${displayPath(where.file)}${where.line === undefined ? '' : `:${where.line}`}`;
      },
    })) {
      source.push(example);
    }
    // The description resolved DATASET.test_ratio (and its default) when the source has no test split.
    const examples = splitExamples(source, desc.classes, desc.hasTest, desc.testRatio ?? 0, { ...ctx.reads, DATASET: ctx.sources.dataset.value });
    if (nonUtf8.rows > 0) {
      const n = nonUtf8.rows;
      ctx.progress.log(`warning: ${n.toLocaleString('en-US')} ${n === 1 ? 'example has' : 'examples have'} bytes that are not UTF-8 (first at ${nonUtf8.first}); they were read as U+FFFD`);
    }
    await writeExamples(path.join(ctx.dir, DATA_FILE), examples);
    const counts: Record<string, { rows: number; target: number }> = {};
    for (const e of examples) {
      counts[e.split] ??= { rows: 0, target: 0 };
      counts[e.split].rows++;
      counts[e.split].target += e.label;
    }
    return {
      rows: examples.length,
      splits: counts,
      classes: desc.classes,
      target: ctx.reads.TARGET,
      ...(nonUtf8.rows > 0 && { non_utf8: { rows: nonUtf8.rows, first: nonUtf8.first } }),
      files: [DATA_FILE],
    };
  },
};
