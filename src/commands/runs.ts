import { Flags } from '@oclif/core';
import path from 'node:path';
import { existsSync } from 'node:fs';
import { SentimentCommand, locationFlags } from '../cli/command.js';
import { checkFolderOption } from '../core/system-errors.js';

export default class Runs extends SentimentCommand {
  static override summary = 'List past runs, newest first: experiment, time, overrides, test accuracy, status.';
  static override description =
    'Reads the run folders under --runs-dir (runs/<experiment>/<time>/). Status: finished (run.json was written), failed or interrupted (the last line of log.txt says so), else incomplete (still running, or killed).';
  static override examples = ['<%= config.bin %> runs', '<%= config.bin %> runs --json --runs-dir /data/runs'];
  static override flags = {
    json: Flags.boolean({ description: 'Print one JSON document on stdout.', default: false }),
    'runs-dir': locationFlags['runs-dir'],
  };

  async run(): Promise<void> {
    const { flags } = await this.parse(Runs);
    const runsDir = path.resolve(flags['runs-dir']);
    await checkFolderOption('--runs-dir', runsDir);
    const { listRuns } = await import('../runner/runs.js');
    const runs = await listRuns(runsDir);
    if (flags.json) return this.log(JSON.stringify({ runs_dir: runsDir, runs }, null, 2));
    if (runs.length === 0) {
      this.log(existsSync(runsDir) ? `no runs in ${runsDir}` : `no runs yet (${runsDir} does not exist); --runs-dir or SENTIMENT_RUNS_DIR names another folder`);
      return;
    }
    const { formatRuns } = await import('../cli/runs-table.js');
    this.log(formatRuns(runs));
  }
}
