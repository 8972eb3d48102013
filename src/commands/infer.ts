import { Flags } from '@oclif/core';
import { SentimentCommand, locationFlags, setFlag } from '../runner/command.js';

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
    file: Flags.string({ description: 'Texts to predict: .txt (one per line), .csv or .jsonl.', exactlyOne: ['text', 'file'] }),
    'text-column': Flags.string({ description: 'Column (CSV) or field (JSONL) holding the text.', default: 'text' }),
    out: Flags.string({ description: 'Write --file results to .csv, .jsonl or .arrow (default: JSON lines on stdout).', dependsOn: ['file'] }),
    json: Flags.boolean({ description: 'Print JSON: {"text","probability","label"}, or an array of those for --file.', default: false }),
    'cache-dir': locationFlags['cache-dir'],
  };

  async run(): Promise<void> {
    const { flags } = await this.parse(Infer);
    const { openPredictor, readTextRows, openRowWriter, inferFile } = await import('../runner/infer.js');
    const { predictor, close } = await openPredictor({ config: flags.config, model: flags.model, sets: flags.set, cacheDir: flags['cache-dir'] });
    try {
      if (flags.text !== undefined) {
        const [p] = await predictor.predict([flags.text]);
        this.log(flags.json ? JSON.stringify(p) : `${JSON.stringify(p.text)}: ${p.probability.toFixed(4)} → ${p.label}`);
        return;
      }
      const collected: unknown[] = [];
      // --json without --out: one JSON array on stdout, so rows are collected.
      const writer = flags.json && !flags.out ? { write: async (rows: unknown[]) => void collected.push(...rows), close: async () => {} } : await openRowWriter(flags.out, process.stdout);
      let last = 0;
      const started = performance.now();
      const counts = await inferFile(predictor, readTextRows(flags.file!, flags['text-column']), writer.write, (done) => {
        if (performance.now() - last < 2000) return;
        last = performance.now();
        process.stderr.write(`${done.toLocaleString('en-US')} rows · ${Math.round(done / ((last - started) / 1000)).toLocaleString('en-US')} rows/s\n`);
      });
      await writer.close();
      if (flags.json && !flags.out) this.log(JSON.stringify(collected));
      const seconds = (performance.now() - started) / 1000;
      process.stderr.write(`${counts.rows.toLocaleString('en-US')} rows in ${seconds.toFixed(1)}s${counts.errors ? `; ${counts.errors} without usable text (marked with "error")` : ''}${flags.out ? ` → ${flags.out}` : ''}\n`);
    } finally {
      await close();
    }
  }
}
