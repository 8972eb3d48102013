import { Flags } from '@oclif/core';
import path from 'node:path';
import { Cache } from '../../core/cache.js';
import { SentimentCommand, locationFlags } from '../../cli/command.js';
import { checkFolderOption } from '../../core/system-errors.js';

export default class CacheGc extends SentimentCommand {
  static override summary = 'Remove cache entries that no recent run used.';
  static override description = `An entry is kept when a run folder newer than --keep-days (under --runs-dir) names it (its run.json's stages, or its log for a run still going), when it is upstream of a kept entry (the entries it was computed from, followed to the end), or when it was created in the last --keep-days days. Everything else is removed: older entries, entries moved aside as damaged, temporary folders of processes that are gone, and resume folders of complete entries (those of entries not complete yet are kept). An entry another process holds the lock of is left alone. Removed entries are recomputed when next needed. The models/, downloads/ and index/ folders of the cache are not touched.`;
  static override examples = ['<%= config.bin %> cache gc --dry-run', '<%= config.bin %> cache gc --keep-days 7 --cache-dir /data/sentiment-cache --runs-dir /data/runs'];
  static override flags = {
    'dry-run': Flags.boolean({ description: 'Only list what would be removed.', default: false }),
    'keep-days': Flags.integer({ description: 'Keep entries used by runs of, or created in, the last N days.', default: 30, min: 0, helpValue: 'N' }),
    json: Flags.boolean({ description: 'Print one JSON document on stdout.', default: false }),
    'cache-dir': locationFlags['cache-dir'],
    'runs-dir': locationFlags['runs-dir'],
  };

  async run(): Promise<void> {
    const { flags } = await this.parse(CacheGc);
    const cache = new Cache(path.resolve(flags['cache-dir']));
    await checkFolderOption('--cache-dir', cache.root);
    await checkFolderOption('--runs-dir', path.resolve(flags['runs-dir']));
    const { collectGarbage } = await import('../../runner/gc.js');
    const report = await collectGarbage(cache, flags['runs-dir'], { keepDays: flags['keep-days'], dryRun: flags['dry-run'] });
    if (flags.json) return this.log(JSON.stringify(report, null, 2));
    const { formatBytes } = await import('../../core/format.js');
    const verb = report.dry_run ? 'would remove' : 'removed';
    for (const item of report.removed) this.log(`${verb}  ${path.relative(cache.root, item.dir)}  ${formatBytes(item.bytes)}  (${item.reason})`);
    for (const item of report.busy) this.log(`left     ${path.relative(cache.root, item.dir)}  (another process holds its lock)`);
    const n = report.removed.length;
    this.log(`${report.kept} entr${report.kept === 1 ? 'y' : 'ies'} kept; ${verb} ${n} folder${n === 1 ? '' : 's'}, ${formatBytes(report.freed_bytes)}${report.dry_run ? ' (dry run: nothing removed)' : ''}`);
  }
}
