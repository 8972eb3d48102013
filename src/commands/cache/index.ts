import { Flags } from '@oclif/core';
import path from 'node:path';
import { existsSync } from 'node:fs';
import { Cache } from '../../core/cache.js';
import { SentimentCommand, locationFlags } from '../../cli/command.js';
import { checkFolderOption } from '../../core/system-errors.js';

export default class CacheShow extends SentimentCommand {
  static override summary = 'What the cache holds: entries and their total size per stage.';
  static override description =
    'One line per stage: its complete entries and their size, and the other folders it holds (entries moved aside as damaged, temporary and resume folders). `sentiment cache verify` checks the entries, `sentiment cache gc` removes the ones no recent run used.';
  static override examples = ['<%= config.bin %> cache', '<%= config.bin %> cache --json --cache-dir /data/sentiment-cache'];
  static override flags = {
    json: Flags.boolean({ description: 'Print one JSON document on stdout.', default: false }),
    'cache-dir': locationFlags['cache-dir'],
  };

  async run(): Promise<void> {
    const { flags } = await this.parse(CacheShow);
    const cache = new Cache(path.resolve(flags['cache-dir']));
    await checkFolderOption('--cache-dir', cache.root);
    const { summarize } = await import('../../runner/gc.js');
    const stages = summarize(await cache.contents());
    const total = { entries: stages.reduce((n, s) => n + s.entries, 0), bytes: stages.reduce((n, s) => n + s.bytes + s.other_bytes, 0) };
    if (flags.json) return this.log(JSON.stringify({ cache: cache.root, stages, total }, null, 2));
    if (!existsSync(cache.root)) return this.log(`no cache at ${cache.root} yet; --cache-dir or SENTIMENT_CACHE_DIR names another`);
    const { formatBytes } = await import('../../core/format.js');
    this.log(`cache ${cache.root}`);
    const width = Math.max(5, ...stages.map((s) => s.stage.length));
    for (const s of stages) {
      const other = s.other > 0 ? `  (+ ${s.other} other folder${s.other === 1 ? '' : 's'}, ${formatBytes(s.other_bytes)})` : '';
      this.log(`  ${s.stage.padEnd(width)}  ${String(s.entries).padStart(4)} entr${s.entries === 1 ? 'y  ' : 'ies'}  ${formatBytes(s.bytes).padStart(8)}${other}`);
    }
    this.log(`  ${'total'.padEnd(width)}  ${String(total.entries).padStart(4)} entr${total.entries === 1 ? 'y  ' : 'ies'}  ${formatBytes(total.bytes).padStart(8)}`);
  }
}
