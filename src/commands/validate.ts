import { Args } from '@oclif/core';
import { SentimentCommand, setFlag } from '../cli/command.js';
import { ConfigError } from '../config/experiment.js';
import { validateFiles } from '../runner/validate.js';

export default class Validate extends SentimentCommand {
  static override summary = 'Check experiment and sweep files: the schema, then DATASET, a local MODEL and MAX_LENGTH on disk, reporting every problem at once.';
  static override examples = [
    '<%= config.bin %> validate experiments/imdb-bigru.yaml',
    '<%= config.bin %> validate experiments/*.yaml --set N_EPOCHS=1',
    '<%= config.bin %> validate experiments/sweeps/quickstart-grid.yaml',
  ];
  static override strict = false;
  static override args = { experiment: Args.string({ description: 'Experiment or sweep YAML file(s).', required: true }) };
  static override flags = { set: setFlag };

  async run(): Promise<void> {
    const { argv, flags } = await this.parse(Validate);
    const { ok, problems } = await validateFiles(argv as string[], flags.set);
    if (problems.length > 0) throw new ConfigError(problems);
    for (const f of ok) this.log(`${f.file}: ok${f.trials !== undefined ? ` (${f.trials} trial${f.trials === 1 ? '' : 's'})` : ''}`);
  }
}
