import { stat } from 'node:fs/promises';
import path from 'node:path';
import writeFileAtomic from 'write-file-atomic';
import { UserError } from '../core/errors.js';
import type { DatasetSpec } from '../config/experiment.generated.js';
import { checkInputFile, readTextRows, type TextRow } from '../data/text-rows.js';
import { mapLabel, readFirstLine } from '../data/tabular.js';
import { MetricsAccumulator, confusionCounts, rocCurve, sigmoid, type RocPoint, type SplitMetrics } from '../training/metrics.js';
import { openPredictor, type InferRequest } from './trained-model.js';

/** `sentiment evaluate`: a trained head's metrics, confusion matrix and ROC curve on any labelled file. */

export interface EvaluateRequest extends InferRequest {
  /** A labelled .csv/.tsv or .jsonl file. */
  file: string;
  textColumn: string;
  labelColumn: string;
  /** The file's two label values, in the order of the model's classes (default: the model's classes). */
  classes?: [string, string];
  /** Numeric labels ≥ this are the model's second class (default: the trained dataset's DATASET.threshold). */
  threshold?: number;
  /** Rows read so far, now and then. */
  onProgress?: (rows: number) => void;
  signal?: AbortSignal;
}

/** What `sentiment evaluate --json` prints (and `--out` writes). */
export interface EvaluationReport {
  file: string;
  /** Which trained head: `--config` (with its --set overrides) or `--model`. */
  model: { config: string; set: string[] } | { dir: string };
  /** The class the head predicts (label 1), and the other one. */
  target: string;
  other: string;
  /** How labels were read: the label values for the model's two classes, in order, and the threshold for numeric ones. */
  labels: { column: string; classes: [string, string]; threshold: number | null };
  /** Records read, and those evaluated (with a text and a label that maps to a class). */
  rows: number;
  evaluated: number;
  skipped: {
    /** Records without usable text (empty, a malformed CSV record, invalid JSON). */
    no_text: number;
    /** Records with a text but an empty or missing label. */
    no_label: number;
    /** Records whose label maps to neither class, and the most frequent such values with their counts. */
    unmapped_label: number;
    unmapped_values: { value: unknown; count: number }[];
  };
  metrics: SplitMetrics;
  /** Predicted TARGET where its probability is ≥ 0.5. */
  confusion: { tp: number; fp: number; fn: number; tn: number };
  /** FPR and TPR when probabilities ≥ threshold are predicted TARGET; empty when the file has one class only. */
  roc: RocPoint[];
}

const BATCH = 256;
const SHOWN_VALUES = 10;

/** Checks --file and --out before the model is loaded. */
export async function checkEvaluateFiles(file: string, out?: string): Promise<void> {
  const format = await checkInputFile(file);
  if (format === 'txt') throw new UserError(`--file ${file}: a .txt file has no labels; give a .csv/.tsv or .jsonl file with a text and a label column`);
  if (out === undefined) return;
  if (path.extname(out).toLowerCase() !== '.json') throw new UserError(`--out ${out}: evaluate writes one JSON document; give a .json file`);
  const info = await stat(out).catch(() => undefined);
  if (info?.isDirectory()) throw new UserError(`--out ${out}: is a folder; give a .json file`);
  const parent = await stat(path.dirname(path.resolve(out))).catch(() => undefined);
  if (!parent?.isDirectory()) throw new UserError(`--out ${out}: its folder ${path.dirname(out)} does not exist`);
}

/** Writes the report as JSON, atomically. */
export async function writeEvaluation(out: string, report: EvaluationReport): Promise<void> {
  await writeFileAtomic(out, `${JSON.stringify(report, null, 2)}\n`);
}

/**
 * Predicts every record of a labelled file with a trained head (the path `infer` takes) and measures it.
 * Labels map to classes as a DATASET's do (mapLabel): a class name, true/false, 0/1, or a number against the
 * threshold; the mapped class is label 1 when it is TARGET. Records that cannot be evaluated are counted.
 */
export async function evaluateFile(req: EvaluateRequest): Promise<EvaluationReport> {
  await checkEvaluateFiles(req.file);
  const { predictor, config, classes: modelClasses, close } = await openPredictor(req);
  try {
    const target = config.TARGET;
    const other = modelClasses.find((c) => c !== target) ?? `not ${target}`;
    const dataset = typeof config.DATASET === 'object' && config.DATASET !== null ? (config.DATASET as DatasetSpec) : undefined;
    const classes = req.classes ?? modelClasses;
    const threshold = req.threshold ?? (req.classes ? null : (dataset?.threshold ?? null));
    const accumulator = new MetricsAccumulator();
    const logits: number[] = [];
    const labels: number[] = [];
    const skipped = { no_text: 0, no_label: 0, unmapped_label: 0 };
    const unmapped = new Map<string, { value: unknown; count: number }>();
    let rows = 0;
    let sawLabelField = false;
    let pending: { text: string; label: 0 | 1 }[] = [];
    const flush = async () => {
      if (pending.length === 0) return;
      const batch = pending;
      pending = [];
      const batchLogits = await predictor.logits(batch.map((r) => r.text));
      const batchLabels = batch.map((r) => r.label);
      accumulator.add(batchLogits, batchLabels);
      logits.push(...batchLogits);
      labels.push(...batchLabels);
    };
    const rowsOf: AsyncGenerator<TextRow> = readTextRows(req.file, req.textColumn, { labelColumn: req.labelColumn });
    for await (const row of rowsOf) {
      if (req.signal?.aborted) break;
      rows++;
      if (row.label !== undefined) sawLabelField = true;
      if (row.error !== undefined) {
        skipped.no_text++;
        continue;
      }
      if (row.label === undefined || row.label === null || row.label === '') {
        skipped.no_label++;
        continue;
      }
      const index = mapLabel(row.label, classes, threshold);
      if (index === undefined) {
        skipped.unmapped_label++;
        const key = JSON.stringify(row.label) ?? String(row.label);
        const seen = unmapped.get(key);
        if (seen) seen.count++;
        else unmapped.set(key, { value: row.label, count: 1 });
        continue;
      }
      pending.push({ text: row.text, label: modelClasses[index] === target ? 1 : 0 });
      if (pending.length >= BATCH) {
        await flush();
        req.onProgress?.(rows);
      }
    }
    await flush();
    if (rows > 0 && !sawLabelField) {
      // Only JSONL gets here (a CSV without the column is an error at its header): no record has the field.
      let fields = '';
      try {
        const first = JSON.parse(await readFirstLine(req.file)) as unknown;
        if (first !== null && typeof first === 'object' && !Array.isArray(first)) fields = ` (fields of its first record: ${Object.keys(first).join(', ')})`;
      } catch {
        // Not a JSON object: the message goes without the fields.
      }
      throw new UserError(`--file ${req.file}: no record has the field "${req.labelColumn}"${fields}; choose the label field with --label-column`);
    }
    const evaluated = logits.length;
    if (evaluated === 0 && !req.signal?.aborted) {
      throw new UserError(
        `--file ${req.file}: none of its ${rows} record${rows === 1 ? '' : 's'} has both a text and a label that maps to a class (${describeSkipped(skipped)})`,
        [labelHint(classes, threshold)],
      );
    }
    const metrics = accumulator.result();
    const confusion = confusionCounts(logits, labels);
    const roc = rocCurve(logits, labels).map((p) => ({ ...p, threshold: p.threshold === null ? null : sigmoid(p.threshold) }));
    return {
      file: req.file,
      model: req.model ? { dir: req.model } : { config: req.config!, set: req.sets },
      target,
      other,
      labels: { column: req.labelColumn, classes, threshold },
      rows,
      evaluated,
      skipped: {
        ...skipped,
        unmapped_values: [...unmapped.values()].sort((a, b) => b.count - a.count).slice(0, SHOWN_VALUES),
      },
      metrics,
      confusion,
      roc,
    };
  } finally {
    await close();
  }
}

function describeSkipped(s: { no_text: number; no_label: number; unmapped_label: number }): string {
  return `${s.no_text} without text, ${s.no_label} without a label, ${s.unmapped_label} with a label that maps to no class`;
}

/** What labels are accepted, for messages. */
export function labelHint(classes: [string, string], threshold: number | null): string {
  return threshold !== null
    ? `labels are read as a number (≥ ${threshold} is "${classes[1]}"), true/false or a class name (${classes.join(', ')}); set --threshold, or --classes A,B`
    : `labels are read as 0/1, true/false or a class name (${classes.join(', ')}); name the file's two label values with --classes A,B (in the order of the model's classes), or split numeric scores with --threshold T`;
}
