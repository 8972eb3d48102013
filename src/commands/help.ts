import { Args, Flags, loadHelpClass } from '@oclif/core';
import { SentimentCommand } from '../cli/command.js';

/** `sentiment help [COMMAND]`: the same text as `sentiment COMMAND --help` (oclif's help, without @oclif/plugin-help). */
export default class Help extends SentimentCommand {
  static override summary = 'Show help for sentiment or one of its commands.';
  static override examples = ['<%= config.bin %> help run', '<%= config.bin %> help cache verify'];
  static override strict = false;
  static override args = {
    command: Args.string({ description: 'Command to show help for (e.g. run, or cache verify).' }),
  };
  static override flags = {
    'nested-commands': Flags.boolean({ char: 'n', description: 'Include all nested commands in the output.', default: false }),
  };

  async run(): Promise<void> {
    const { argv, flags } = await this.parse(Help);
    const HelpClass = await loadHelpClass(this.config);
    const help = new HelpClass(this.config, { ...this.config.pjson.oclif.helpOptions, all: flags['nested-commands'] });
    await help.showHelp((argv as string[]).filter((a) => a !== '--verbose'));
  }
}
