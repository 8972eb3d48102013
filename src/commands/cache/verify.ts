import { Flags } from '@oclif/core';
import path from 'node:path';
import { Cache } from '../../core/cache.js';
import { SentimentCommand, locationFlags } from '../../cli/command.js';
import { UserError } from '../../core/errors.js';
import { checkFolderOption } from '../../core/system-errors.js';
import { existsSync } from 'node:fs';

export default class CacheVerify extends SentimentCommand {
  static override summary = 'Check every cache entry against its manifest (every file’s size and SHA-256).';
  static override description =
    'Prints one line per damaged entry with the reason, then a summary; exits 1 when an entry is damaged. With --repair, damaged entries are removed (they are recomputed when next needed), and so are entries moved aside earlier and temporary folders of dead processes; it then exits 0.';
  static override examples = ['<%= config.bin %> cache verify', '<%= config.bin %> cache verify --repair --cache-dir /data/sentiment-cache'];
  static override flags = {
    repair: Flags.boolean({ description: 'Remove damaged entries, entries moved aside earlier and temporary folders of dead processes.', default: false }),
    json: Flags.boolean({ description: 'Print one JSON document on stdout.', default: false }),
    'cache-dir': locationFlags['cache-dir'],
  };

  async run(): Promise<void> {
    const { flags } = await this.parse(CacheVerify);
    const cache = new Cache(path.resolve(flags['cache-dir']));
    await checkFolderOption('--cache-dir', cache.root);
    if (!existsSync(cache.root)) process.stderr.write(`warning: no cache at ${cache.root} yet (nothing to verify); --cache-dir or SENTIMENT_CACHE_DIR names another\n`);
    const report = await cache.verify({ repair: flags.repair });
    if (flags.json) this.log(JSON.stringify({ cache: cache.root, repaired: flags.repair, ...report }, null, 2));
    else {
      for (const d of report.damaged) {
        const action = d.removed === undefined ? '' : d.removed ? ' (removed)' : ' (left alone: another process holds its lock)';
        this.log(`damaged  ${d.stage}/${d.key}: ${d.reason}${action}`);
      }
      for (const dir of report.cleaned) this.log(`removed  ${dir}`);
      this.log(`${report.entries} entries, ${report.ok} ok, ${report.damaged.length} damaged`);
    }
    const left = report.damaged.filter((d) => !d.removed).length;
    if (left > 0) {
      const n = `${left} damaged cache entr${left === 1 ? 'y' : 'ies'}`;
      throw new UserError(flags.repair ? `${n} could not be removed (another process holds the lock)` : `${n} in ${cache.root}; \`sentiment cache verify --repair\` removes them`);
    }
  }
}
