import { mkdir, appendFile, writeFile } from 'node:fs/promises';
import path from 'node:path';
import YAML from 'yaml';
import { Cache, stageKey, type CacheEntry, type ComputeResult, type KeyMaterial, type LockEvent, type StageKey } from '../core/cache.js';
import type { LoadedExperiment } from '../config/experiment.js';
import { DamagedEntryError, StoppedEarly, UserError } from '../core/errors.js';
import { setActivity } from '../core/activity.js';
import { explainSystemError } from '../core/system-errors.js';
import { commonDir, fingerprintFiles } from '../core/fingerprint.js';
import { formatSeconds } from '../core/format.js';
import { ProgressLine } from './progress.js';
import { plainSteps, type Step, type StepDisplay, type StepRenderer } from '../core/progress.js';
import { STAGE_NAMES, guardReads, type AnyStage, type KeyContext, type RunObserver, type RunSettings, type Sources, type StageName } from '../stages/stage.js';
import { readSettings } from '../core/settings.js';
import { findRecordedRun } from './runs.js';

export interface RunOptions {
  cacheDir: string;
  runsDir: string;
  /** Stop after this stage. */
  until?: StageName;
  /** Recompute this stage and every stage after it ('all': everything). */
  force?: StageName | 'all';
  /** Whether a person watches a terminal: progress lines then refresh often, else every few seconds. */
  interactive: boolean;
  /** Where warnings and plain progress lines go (default stderr; stdout is kept for --json). */
  stream?: NodeJS.WritableStream;
  /** Draws the stages as they run (the CLI passes listr2's); default: plain lines to `stream`. */
  renderer?: StepRenderer;
  signal?: AbortSignal;
  /** Someone watching the run from outside (a sweep): sees each epoch and may stop training. */
  observer?: RunObserver;
  /** How the work is done (threads, DEVICE); default: the environment's settings and the experiment's DEVICE. */
  settings?: RunSettings;
  /**
   * Make a new run folder even when every stage comes from the cache (by default such a rerun gives back
   * the newest finished run folder with the same config and entries, and writes nothing).
   */
  record?: boolean;
}

export interface PlannedStage {
  stage: AnyStage;
  /** What the stage reads of the config: in its key, and all `produce` sees of the config. */
  reads: object;
  material: KeyMaterial;
  key: StageKey;
  /** The cached entry, when it hits and is not forced. */
  entry?: CacheEntry;
  forced: boolean;
  /** Why it hits or misses, for --explain. */
  reason: string;
}

export interface StageResult {
  name: StageName;
  /** From the cache: found when planning, or made by another process this run waited for. */
  cached: boolean;
  /** Time this run spent on the stage, not counting `waited`. */
  seconds: number;
  /** Seconds spent waiting for another process that held the entry's lock (absent when it was free). */
  waited?: number;
  path: string;
  info: object;
}

export interface StagesResult {
  experiment: string;
  run_dir: string;
  stages: StageResult[];
  /** true: every stage came from the cache and run_dir is an earlier run's folder, left as it was. */
  reused?: boolean;
}

/** Where an experiment's files are (MODEL, DATASET relative to the folders their values came from), and the cache. */
export function experimentSources(experiment: LoadedExperiment, cache: Cache): Sources {
  return {
    model: { value: experiment.config.MODEL, baseDir: experiment.baseDirs.MODEL ?? process.cwd() },
    dataset: { value: experiment.config.DATASET, baseDir: experiment.baseDirs.DATASET ?? process.cwd() },
    cacheRoot: cache.root,
  };
}

/** What a stage's `inputs()` sees: its reads, the sources, and fingerprints remembered in the cache. */
export function keyContext<R>(reads: R, sources: Sources, cache: Cache): KeyContext<R> {
  return {
    reads,
    sources,
    fingerprint: (files, root) => fingerprintFiles(files, root ?? commonDir(files), path.join(cache.root, 'fingerprints.json')),
  };
}

/** The stages a run goes through, in order, up to `until`. */
export function stagesUntil(stages: AnyStage[], until?: StageName): AnyStage[] {
  if (!until) return stages;
  const index = stages.findIndex((s) => s.name === until);
  if (index < 0) {
    const known = stages.map((s) => s.name).join(', ');
    throw new UserError(`--until ${until}: this version runs the stages ${known}; ${until} is not one of them yet`);
  }
  return stages.slice(0, index + 1);
}

/** Computes every stage's key (chained through upstream keys) and whether it is cached, without running anything. */
export async function planStages(experiment: LoadedExperiment, stages: AnyStage[], cache: Cache, force?: StageName | 'all'): Promise<PlannedStage[]> {
  const sources = experimentSources(experiment, cache);
  const keys = new Map<StageName, StageKey>();
  const planned: PlannedStage[] = [];
  const forceFrom = force === undefined ? Infinity : force === 'all' ? 0 : STAGE_NAMES.indexOf(force);
  for (const stage of stages) {
    const upstream: Record<string, string> = {};
    for (const name of stage.upstream) {
      const key = keys.get(name);
      if (!key) throw new Error(`stage ${stage.name} needs ${name}, which is not planned before it`);
      upstream[name] = key;
    }
    const reads = stage.reads(experiment.config) as object;
    const material: KeyMaterial = {
      stage: stage.name,
      version: stage.version,
      config: { ...reads },
      upstream,
      inputs: stage.inputs ? await stage.inputs(keyContext(reads, sources, cache)) : {},
    };
    const key = stageKey(material);
    keys.set(stage.name, key);
    const forced = STAGE_NAMES.indexOf(stage.name) >= forceFrom;
    const entry = forced ? undefined : await cache.lookup(stage.name, key);
    const reason = forced ? 'forced' : entry ? hitReason(entry) : await missReason(cache, material);
    planned.push({ stage, reads, material, key, entry, forced, reason });
  }
  return planned;
}

function hitReason(entry: CacheEntry): string {
  return `cached ${entry.manifest.key.slice(0, 12)} (computed ${entry.manifest.createdAt} in ${formatSeconds(entry.manifest.seconds)})`;
}

/** Names what changed since the most similar cached entry of the same stage. */
async function missReason(cache: Cache, material: KeyMaterial): Promise<string> {
  const entries = await cache.entries(material.stage);
  if (entries.length === 0) return 'not cached yet';
  let best: { changes: string[]; entry: CacheEntry } | undefined;
  for (const entry of entries) {
    const changes = describeChanges(entry.manifest.material, material);
    if (!best || changes.length < best.changes.length) best = { changes, entry };
  }
  return `changed since ${best!.entry.manifest.key.slice(0, 12)}: ${best!.changes.join('; ')}`;
}

export function describeChanges(before: KeyMaterial, after: KeyMaterial): string[] {
  const changes: string[] = [];
  if (before.version !== after.version) changes.push(`implementation v${before.version} → v${after.version}`);
  const show = (v: unknown) => (v === undefined ? '(unset)' : JSON.stringify(v));
  for (const key of union(before.config, after.config)) {
    if (JSON.stringify(before.config[key]) !== JSON.stringify(after.config[key])) changes.push(`${key} ${show(before.config[key])} → ${show(after.config[key])}`);
  }
  for (const key of union(before.upstream, after.upstream)) {
    if (before.upstream[key] !== after.upstream[key]) changes.push(`upstream ${key} changed`);
  }
  for (const key of union(before.inputs, after.inputs)) {
    if (JSON.stringify(before.inputs[key]) !== JSON.stringify(after.inputs[key])) changes.push(`input ${key} changed`);
  }
  return changes.length > 0 ? changes : ['(no difference found)'];
}

function union(a: Record<string, unknown>, b: Record<string, unknown>): string[] {
  return [...new Set([...Object.keys(a), ...Object.keys(b)])].sort();
}

/** `runs/<experiment>/<UTC time>/`, made unique if two runs start in the same second. */
export async function makeRunDir(runsDir: string, experiment: string): Promise<string> {
  const stamp = new Date().toISOString().replace(/\.\d+Z$/, 'Z').replace(/:/g, '-');
  await mkdir(path.join(runsDir, experiment), { recursive: true });
  for (let n = 0; ; n++) {
    const dir = path.join(runsDir, experiment, n === 0 ? stamp : `${stamp}-${n}`);
    try {
      await mkdir(dir);
      return dir;
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code !== 'EEXIST') throw e;
    }
  }
}

/**
 * Runs an experiment's stages in order, each from the cache when its key hits, and records the run in
 * a run folder (resolved config, log, result).
 */
export async function runStages(experiment: LoadedExperiment, stages: AnyStage[], options: RunOptions): Promise<StagesResult> {
  // Progress never goes to stdout, which --json keeps for its one document.
  const out = (options.stream ?? process.stderr) as NodeJS.WriteStream;
  // Cache warnings (an entry moved aside): into the stage's progress and log while a stage runs, else
  // straight out and into the log once it exists.
  const early: string[] = [];
  let warnInStage: ((line: string) => void) | undefined;
  const cache = new Cache(options.cacheDir, {
    warn: (message) => {
      const line = `warning: ${message}`;
      if (warnInStage) return warnInStage(line);
      out.write(`${line}\n`);
      early.push(line);
    },
  });
  const selected = stagesUntil(stages, options.until);
  await Promise.all(selected.map((s) => cache.sweepTemporary(s.name)));
  const plan = await planStages(experiment, selected, cache, options.force);
  const configText = YAML.stringify(experiment.config);
  // A rerun that computes nothing adds no run folder: it gives back the one that recorded these entries.
  const allCached = !options.record && plan.every((p) => p.entry);
  const reusedDir = allCached ? await findRecordedRun(options.runsDir, experiment.name, configText, plan.map((p) => ({ name: p.stage.name, path: p.entry!.dir }))) : undefined;
  const runDir = reusedDir ?? (await makeRunDir(options.runsDir, experiment.name));
  const logFile = path.join(runDir, 'log.txt');
  // The reused folder's log stays the record of the run that made it.
  const log = async (line: string) => {
    if (!reusedDir) await appendFile(logFile, `${new Date().toISOString()} ${line}\n`);
  };
  if (!reusedDir) await writeFile(path.join(runDir, 'config.yaml'), configText);
  await log(`experiment ${experiment.file} ${JSON.stringify(experiment.overrides)}`);
  for (const line of early) await log(line);

  const sources = experimentSources(experiment, cache);
  const settings: RunSettings = options.settings ?? { ...readSettings(), device: experiment.config.DEVICE };
  const entries: Partial<Record<StageName, CacheEntry>> = {};
  const results: StageResult[] = [];
  const signal = options.signal ?? new AbortController().signal;
  // Entries moved aside this run because a later stage could not decode one of their files: each at most once.
  const repaired = new Set<StageKey>();

  /**
   * Computes a planned stage. When it fails on a file it cannot decode inside an upstream entry of this
   * run (a DamagedEntryError), that entry is moved aside and recomputed, and the stage is run again; an
   * entry damaged a second time is a real error.
   */
  const computeStage = async (p: PlannedStage, progress: ProgressLine, onLock: (e: LockEvent) => void): Promise<ComputeResult> => {
    for (;;) {
      const upstream: Partial<Record<StageName, CacheEntry>> = {};
      for (const name of p.stage.upstream as StageName[]) upstream[name] = entries[name];
      try {
        const base = { ...keyContext(guardReads(p.stage.name, p.reads), sources, cache), upstream, settings, progress, signal, ...(options.observer && { observer: options.observer }) };
        return await cache.compute(p.material, (dir, resumeDir) => p.stage.produce({ ...base, dir, resumeDir }), { force: p.forced, onLock });
      } catch (e) {
        if (!(e instanceof DamagedEntryError)) throw e;
        const at = cache.entryOf(e.file);
        const damaged = at && plan.find((q) => q.stage.name === at.stage && q.key === at.key && entries[q.stage.name]);
        if (!damaged || repaired.has(damaged.key)) throw e;
        repaired.add(damaged.key);
        const file = path.relative(cache.entryDir(damaged.stage.name, damaged.key), e.file).split(path.sep).join('/');
        await cache.moveAside(damaged.stage.name, damaged.key, `${p.stage.name} could not read ${file}: ${e.reason}`, `recomputing ${damaged.stage.name}`);
        const started = performance.now();
        const again = await computeStage(damaged, progress, onLock);
        entries[damaged.stage.name] = again;
        const earlier = results.find((r) => r.name === damaged.stage.name);
        if (earlier) Object.assign(earlier, { cached: false, seconds: earlier.seconds + (performance.now() - started) / 1000 - again.waited, path: again.dir, info: again.manifest.info });
      }
    }
  };

  const steps: Step[] = plan.map((p) => ({
      title: p.stage.name,
      run: async (task: StepDisplay) => {
        signal.throwIfAborted();
        setActivity(`stage ${p.stage.name}`);
        const started = performance.now();
        let entry: CacheEntry | undefined = p.entry;
        let computed: ComputeResult | undefined;
        if (entry) {
          task.title = `${p.stage.name} · cached`;
        } else {
          const lines: string[] = [];
          const progress = new ProgressLine(
            (line) => (task.output = line),
            (line) => {
              lines.push(line);
              task.log(line);
            },
            options.interactive ? 100 : 5000,
          );
          warnInStage = (line) => progress.log(line);
          try {
            // Waiting for another process's lock shows as the stage's progress line.
            computed = await computeStage(p, progress, (event) => (event.kind === 'takeover' ? progress.log(event.message) : (task.output = event.message)));
          } catch (e) {
            throw explainSystemError(e, `stage ${p.stage.name}`, path.join(cache.root, p.stage.name));
          } finally {
            warnInStage = undefined;
            for (const line of lines) await log(`${p.stage.name}: ${line}`);
          }
          entry = computed;
        }
        entries[p.stage.name] = entry;
        const waited = computed?.waited ?? 0;
        const seconds = (performance.now() - started) / 1000 - waited;
        const cached = !computed || !computed.produced;
        results.push({ name: p.stage.name, cached, seconds, ...(waited > 0 && { waited }), path: entry.dir, info: entry.manifest.info });
        const waitNote = waited > 0 ? `waited ${formatSeconds(waited)}${computed?.waitedFor ? ` for pid ${computed.waitedFor.pid}` : ''}` : '';
        if (computed) task.title = computed.produced ? `${p.stage.name} · ${formatSeconds(seconds)}${waitNote && ` (${waitNote})`}` : `${p.stage.name} · cached${waitNote && ` (${waitNote})`}`;
        await log(`${p.stage.name}: ${cached ? 'cached' : `computed in ${seconds.toFixed(3)}s`}${waitNote && ` (${waitNote})`} → ${entry.dir}`);
      },
    }));
  try {
    await (options.renderer ?? plainSteps(out)).run(steps);
    // A stage that finished despite Ctrl-C is kept, but the run stops there.
    signal.throwIfAborted();
  } catch (e) {
    await log(signal.aborted ? 'interrupted' : e instanceof StoppedEarly ? e.message : `failed: ${(e as Error).message}`);
    throw e;
  } finally {
    setActivity(undefined);
  }
  if (reusedDir) return { experiment: experiment.name, run_dir: runDir, stages: results, reused: true };
  const result: StagesResult = { experiment: experiment.name, run_dir: runDir, stages: results };
  await writeFile(path.join(runDir, 'run.json'), JSON.stringify(result, null, 2));
  return result;
}
