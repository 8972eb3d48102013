import { Flags } from '@oclif/core';
import { SentimentCommand, locationFlags, setFlag } from '../cli/command.js';
import { UsageError } from '../config/experiment.js';

export default class Evaluate extends SentimentCommand {
  static override summary = 'Measure a trained head on a labelled file: loss, accuracy, precision, recall, F1, ROC-AUC, confusion matrix and ROC curve.';
  static override description =
    'Labels map to the model\'s classes as a DATASET\'s do: a class name, true/false, 0/1, or a number split by --threshold (by default the trained dataset\'s threshold). --classes names the file\'s two label values in the order of the model\'s classes. Rows without text or with a label that maps to no class are counted and reported, not evaluated.';
  static override examples = [
    '<%= config.bin %> evaluate --config experiments/quickstart.yaml --file labelled.jsonl',
    '<%= config.bin %> evaluate --model exported/ --file reviews.csv --text-column review --label-column sentiment --classes neg,pos --json',
    '<%= config.bin %> evaluate --config experiments/ethos.yaml --file ../shared/data/ethos/Ethos_Dataset_Binary.csv --text-column comment --label-column isHate --threshold 0.5 --out ethos-eval.json',
  ];
  static override flags = {
    config: Flags.string({ description: 'Experiment file whose trained head to use.', exactlyOne: ['config', 'model'] }),
    model: Flags.string({ description: 'A folder written by `sentiment export`.', exactlyOne: ['config', 'model'] }),
    set: setFlag,
    file: Flags.string({ description: 'The labelled file: .csv/.tsv (delimiter detected) or .jsonl.', required: true }),
    'text-column': Flags.string({ description: 'Column (CSV) or field (JSONL) holding the text.', default: 'text' }),
    'label-column': Flags.string({ description: 'Column (CSV) or field (JSONL) holding the label.', default: 'label' }),
    classes: Flags.string({ description: "The file's two label values, for the model's first and second class (default: the model's class names).", exclusive: ['threshold'] }),
    threshold: Flags.string({ description: "Numeric labels at or above this are the model's second class (default: the trained dataset's threshold).", exclusive: ['classes'] }),
    out: Flags.string({ description: 'Also write the JSON document to this .json file.' }),
    json: Flags.boolean({ description: 'Print one JSON document: {"file","model","target","other","labels","rows","evaluated","skipped","metrics","confusion","roc"}.', default: false }),
    'cache-dir': locationFlags['cache-dir'],
  };

  async run(): Promise<void> {
    const { flags } = await this.parse(Evaluate);
    const { evaluateFile, checkEvaluateFiles, writeEvaluation } = await import('../runner/evaluate-file.js');
    let classes: [string, string] | undefined;
    if (flags.classes !== undefined) {
      const parts = flags.classes.split(',').map((c) => c.trim());
      if (parts.length !== 2 || parts.some((c) => !c) || parts[0] === parts[1]) throw new UsageError(`--classes ${flags.classes}: give two different label values, e.g. --classes neg,pos`);
      classes = [parts[0], parts[1]];
    }
    let threshold: number | undefined;
    if (flags.threshold !== undefined) {
      threshold = Number(flags.threshold);
      if (!flags.threshold.trim() || !Number.isFinite(threshold)) throw new UsageError(`--threshold ${flags.threshold}: expected a number`);
    }
    await checkEvaluateFiles(flags.file, flags.out);
    const interrupt = this.interruptible('stopping');
    let last = performance.now();
    try {
      const report = await evaluateFile({
        stages: (await import('../stages/index.js')).STAGES,
        config: flags.config,
        model: flags.model,
        sets: flags.set,
        cacheDir: flags['cache-dir'],
        file: flags.file,
        textColumn: flags['text-column'],
        labelColumn: flags['label-column'],
        classes,
        threshold,
        signal: interrupt.signal,
        onProgress: (rows) => {
          if (performance.now() - last < 2000) return;
          last = performance.now();
          process.stderr.write(`${rows.toLocaleString('en-US')} rows\n`);
        },
      });
      if (interrupt.signal.aborted) this.exit(130);
      if (flags.out !== undefined) await writeEvaluation(flags.out, report);
      if (flags.json) {
        this.log(JSON.stringify(report, null, 2));
      } else {
        const { formatEvaluation } = await import('../cli/tables.js');
        this.log(formatEvaluation(report));
        if (flags.out !== undefined) this.log(`written to ${flags.out}`);
      }
    } finally {
      interrupt.dispose();
    }
  }
}
