import { Flags } from '@oclif/core';
import { SentimentCommand, locationFlags, setFlag } from '../cli/command.js';

export default class Export extends SentimentCommand {
  static override summary = 'Write a self-contained model folder (head, config, encoder files) for `sentiment infer --model`.';
  static override examples = ['<%= config.bin %> export --config experiments/imdb-bigru.yaml --out models/imdb-bigru'];
  static override flags = {
    config: Flags.string({ description: 'Experiment file whose trained head to export.', required: true }),
    set: setFlag,
    out: Flags.string({ description: 'Folder to write (new or empty).', required: true }),
    force: Flags.boolean({ description: 'Replace the model an earlier export wrote to --out.', default: false }),
    json: Flags.boolean({ description: 'Print one JSON document on stdout: {"dir","files"}.', default: false }),
    'cache-dir': locationFlags['cache-dir'],
  };

  async run(): Promise<void> {
    const { flags } = await this.parse(Export);
    const { exportModel } = await import('../runner/trained-model.js');
    const { dir, files } = await exportModel(flags.config, flags.set, flags['cache-dir'], flags.out, (await import('../stages/index.js')).STAGES, { force: flags.force });
    this.log(flags.json ? JSON.stringify({ dir, files }, null, 2) : `exported to ${dir}: ${files.join(', ')}`);
  }
}
