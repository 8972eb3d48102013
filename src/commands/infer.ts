import { Flags } from '@oclif/core';
import { SentimentCommand, locationFlags, setFlag } from '../cli/command.js';
import { UserError } from '../core/errors.js';

export default class Infer extends SentimentCommand {
  static override summary = 'Predict texts with a trained head: the probability of TARGET and the label.';
  static override description =
    'With --config, the head that `sentiment run` trained for that experiment (and the same --set overrides) is found through the cache; with --model, a folder written by `sentiment export` is used without the cache.';
  static override examples = [
    '<%= config.bin %> infer --config experiments/imdb-bigru.yaml --text "I like you!"',
    '<%= config.bin %> infer --config experiments/quickstart.yaml --file reviews.txt --out predictions.csv',
    '<%= config.bin %> infer --model exported/ --file reviews.jsonl --text-column review --json',
  ];
  static override flags = {
    config: Flags.string({ description: 'Experiment file whose trained head to use.', exactlyOne: ['config', 'model'] }),
    model: Flags.string({ description: 'A folder written by `sentiment export`.', exactlyOne: ['config', 'model'] }),
    set: setFlag,
    text: Flags.string({ description: 'One text to predict.', exactlyOne: ['text', 'file'] }),
    file: Flags.string({
      description: 'Texts to predict: .txt (one per line), .csv/.tsv or .jsonl; `-` reads stdin (lines of text unless --format). One output row per input record, in order.',
      exactlyOne: ['text', 'file'],
    }),
    format: Flags.string({ description: 'Read --file as this format instead of by its extension (stdin: txt by default).', options: ['txt', 'csv', 'jsonl'], dependsOn: ['file'] }),
    'text-column': Flags.string({ description: 'Column (CSV) or field (JSONL) holding the text.', default: 'text' }),
    out: Flags.string({ description: 'Write --file results to .csv, .jsonl or .arrow (default: JSON lines on stdout).', dependsOn: ['file'] }),
    json: Flags.boolean({ description: 'Print JSON: {"text","probability","label"}, or an array of those for --file.', default: false }),
    'cache-dir': locationFlags['cache-dir'],
  };

  async run(): Promise<void> {
    const { flags } = await this.parse(Infer);
    const { openPredictor } = await import('../runner/trained-model.js');
    const { openRowWriter, inferFile, checkOutputFile } = await import('../inference/prediction-file.js');
    const { readTextRows, checkInputFile, inputLabel } = await import('../data/text-rows.js');
    // Bad --text / --file / --out are reported before the model is loaded.
    if (flags.text !== undefined && !flags.text.trim()) throw new UserError('--text: empty text');
    const format = flags.file !== undefined ? await checkInputFile(flags.file, flags.format) : undefined;
    if (flags.out !== undefined) await checkOutputFile(flags.out, flags.file);
    // Ctrl-C: stop reading, write out the rows predicted so far, exit 130.
    const interrupt = this.interruptible('writing out the rows predicted so far');
    const { predictor, close } = await openPredictor({ stages: (await import('../stages/index.js')).STAGES, config: flags.config, model: flags.model, sets: flags.set, cacheDir: flags['cache-dir'] });
    try {
      if (interrupt.signal.aborted) this.exit(130);
      if (flags.text !== undefined) {
        const [p] = await predictor.predict([flags.text]);
        this.log(flags.json ? JSON.stringify(p) : `${JSON.stringify(p.text)}: ${p.probability.toFixed(4)} → ${p.label}`);
        return;
      }
      const file = flags.file!;
      const label = inputLabel(file);
      const collected: unknown[] = [];
      // --json without --out: one JSON array on stdout, so rows are collected.
      const toArray = flags.json && !flags.out;
      const writer = toArray ? { write: async (rows: unknown[]) => void collected.push(...rows), close: async () => {} } : await openRowWriter(flags.out, process.stdout);
      let last = 0;
      const started = performance.now();
      let counts: Awaited<ReturnType<typeof inferFile>> | undefined;
      try {
        counts = await inferFile(predictor, readTextRows(file, flags['text-column'], { format }), writer.write, (done) => {
          if (performance.now() - last < 2000) return;
          last = performance.now();
          process.stderr.write(`${done.toLocaleString('en-US')} rows · ${Math.round(done / ((last - started) / 1000)).toLocaleString('en-US')} rows/s\n`);
        }, interrupt.signal);
      } finally {
        // Also when reading stopped part-way: the rows predicted so far are written out whole.
        await writer.close();
        if (toArray) this.log(JSON.stringify(collected));
      }
      if (interrupt.signal.aborted) {
        process.stderr.write(`interrupted after ${counts.rows.toLocaleString('en-US')} rows${flags.out ? `, written to ${flags.out}` : ''}\n`);
        this.exit(130);
      }
      if (counts.nonUtf8 > 0) {
        process.stderr.write(`warning: ${counts.nonUtf8} row${counts.nonUtf8 === 1 ? '' : 's'} had bytes that are not UTF-8 (first at ${label}:${counts.firstNonUtf8}); they were read as U+FFFD\n`);
      }
      if (counts.rows === 0) {
        process.stderr.write(`warning: --file ${label}: no rows\n`);
        return;
      }
      const seconds = (performance.now() - started) / 1000;
      process.stderr.write(`${counts.rows.toLocaleString('en-US')} rows in ${seconds.toFixed(1)}s${counts.errors ? `; ${counts.errors} without usable text (marked with "error")` : ''}${flags.out ? ` → ${flags.out}` : ''}\n`);
    } finally {
      await close();
      interrupt.dispose();
    }
  }
}
