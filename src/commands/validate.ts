import { Args } from '@oclif/core';
import { SentimentCommand, setFlag } from '../cli/command.js';
import { loadExperiments } from '../config/experiment.js';

export default class Validate extends SentimentCommand {
  static override summary = 'Check experiment files against the schema, reporting every problem at once.';
  static override examples = ['<%= config.bin %> validate experiments/imdb-bigru.yaml', '<%= config.bin %> validate experiments/*.yaml --set N_EPOCHS=1'];
  static override strict = false;
  static override args = { experiment: Args.string({ description: 'Experiment YAML file(s).', required: true }) };
  static override flags = { set: setFlag };

  async run(): Promise<void> {
    const { argv, flags } = await this.parse(Validate);
    const loaded = loadExperiments(argv as string[], flags.set);
    for (const e of loaded) this.log(`${e.file}: ok`);
  }
}
