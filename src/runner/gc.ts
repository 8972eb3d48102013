import { readFile } from 'node:fs/promises';
import path from 'node:path';
import { rm } from 'node:fs/promises';
import type { Cache, EntryUsage, OtherUsage, StageUsage } from '../core/cache.js';
import { listRuns, RUN_FILES } from './runs.js';

export const DEFAULT_KEEP_DAYS = 30;

/** What the cache holds per stage, for `sentiment cache`. */
export interface StageSummary {
  stage: string;
  entries: number;
  bytes: number;
  /** Folders besides entries: moved aside, temporary, resume folders (count and bytes). */
  other: number;
  other_bytes: number;
}

export function summarize(contents: StageUsage[]): StageSummary[] {
  return contents.map((s) => ({
    stage: s.stage,
    entries: s.entries.length,
    bytes: s.entries.reduce((n, e) => n + e.bytes, 0),
    other: s.other.filter((o) => o.kind !== 'lock').length,
    other_bytes: s.other.reduce((n, o) => n + o.bytes, 0),
  }));
}

export interface GcItem {
  stage: string;
  dir: string;
  bytes: number;
  /** entry, or a damaged / tmp / resume folder. */
  kind: 'entry' | 'damaged' | 'tmp' | 'resume';
  key?: string;
  /** Why it is removed. */
  reason: string;
}

export interface GcReport {
  cache: string;
  runs_dir: string;
  keep_days: number;
  dry_run: boolean;
  /** Entries kept. */
  kept: number;
  removed: GcItem[];
  /** Entries left alone because another process held their lock. */
  busy: GcItem[];
  freed_bytes: number;
}

/**
 * The keep rule of `cache gc`: an entry is kept when
 *  - a run folder newer than `keepDays` (its time, from its name) names it: its run.json's stages, or
 *    the `→ <entry>` lines of its log.txt (a run still going has no run.json yet), or
 *  - it was created in the last `keepDays` days, or
 *  - it is upstream (manifests' material.upstream, followed to the end) of an entry kept so.
 * Everything else goes: old entries, `.damaged-*` folders, `.tmp-*` folders of processes that are gone,
 * and `.resume-*` folders of entries that are complete (those of entries not complete yet stay).
 */
export async function planGc(cache: Cache, runsDir: string, keepDays: number, now = Date.now()): Promise<{ remove: GcItem[]; kept: number }> {
  const cutoff = now - keepDays * 24 * 3600 * 1000;
  const contents = await cache.contents();
  const named = new Set<string>();
  for (const run of await listRuns(runsDir)) {
    if (Date.parse(run.time) < cutoff) continue;
    for (const p of Object.values(run.stages ?? {})) named.add(path.resolve(p));
    const log = await readFile(path.join(run.dir, RUN_FILES.log), 'utf8').catch(() => '');
    for (const m of log.matchAll(/ → (.+)$/gm)) named.add(path.resolve(m[1].trim()));
  }
  const byId = new Map<string, EntryUsage>();
  for (const s of contents) for (const e of s.entries) byId.set(`${e.stage}/${e.key}`, e);
  const keep = new Set<string>();
  const queue: EntryUsage[] = [];
  for (const e of byId.values()) {
    if (named.has(path.resolve(e.dir)) || Date.parse(e.createdAt) >= cutoff) queue.push(e);
  }
  while (queue.length > 0) {
    const e = queue.pop()!;
    const id = `${e.stage}/${e.key}`;
    if (keep.has(id)) continue;
    keep.add(id);
    for (const [stage, key] of Object.entries(e.upstream)) {
      const up = byId.get(`${stage}/${key}`);
      if (up && !keep.has(`${stage}/${key}`)) queue.push(up);
    }
  }
  const remove: GcItem[] = [];
  for (const s of contents) {
    const complete = new Set(s.entries.filter((e) => e.valid).map((e) => e.key));
    for (const e of s.entries) {
      if (!keep.has(`${e.stage}/${e.key}`)) {
        remove.push({ stage: e.stage, dir: e.dir, bytes: e.bytes, kind: 'entry', key: e.key, reason: `created ${e.createdAt.slice(0, 10)}, used by no run of the last ${keepDays} days` });
      }
    }
    for (const o of s.other) {
      const reason = otherReason(o, complete);
      if (reason) remove.push({ stage: o.stage, dir: o.dir, bytes: o.bytes, kind: o.kind as GcItem['kind'], ...(o.key && { key: o.key }), reason });
    }
  }
  return { remove, kept: keep.size };
}

function otherReason(o: OtherUsage, complete: Set<string>): string | undefined {
  if (o.kind === 'damaged') return 'moved aside as damaged';
  if (o.kind === 'tmp' && o.dead) return 'temporary folder of a process that is gone';
  if (o.kind === 'resume' && o.key && complete.has(o.key)) return 'resume folder of an entry that is complete';
  return undefined;
}

/** Plans and (unless `dryRun`) removes; entries are removed under their lock, busy ones left alone. */
export async function collectGarbage(cache: Cache, runsDir: string, options: { keepDays?: number; dryRun?: boolean; now?: number } = {}): Promise<GcReport> {
  const keepDays = options.keepDays ?? DEFAULT_KEEP_DAYS;
  const dryRun = options.dryRun ?? false;
  const { remove, kept } = await planGc(cache, runsDir, keepDays, options.now);
  const report: GcReport = { cache: cache.root, runs_dir: path.resolve(runsDir), keep_days: keepDays, dry_run: dryRun, kept, removed: [], busy: [], freed_bytes: 0 };
  for (const item of remove) {
    if (!dryRun) {
      if (item.kind === 'entry') {
        if (!(await cache.removeEntry(item.stage, item.key!))) {
          report.busy.push(item);
          continue;
        }
      } else await rm(item.dir, { recursive: true, force: true });
    }
    report.removed.push(item);
    report.freed_bytes += item.bytes;
  }
  return report;
}
