import { readdir, readFile, stat } from 'node:fs/promises';
import path from 'node:path';

/** stopped: a sweep's early stopping ended its training (log.txt's `stopped early: …` line). */
export type RunStatus = 'finished' | 'failed' | 'interrupted' | 'stopped' | 'incomplete';

/** One past run, as `sentiment runs` lists it. */
export interface PastRun {
  /** The run folder's path under the runs folder, less its time (`quickstart`, `sweep/trial-1`). */
  experiment: string;
  /** When it started (ISO), from the folder's name (else its modification time). */
  time: string;
  dir: string;
  /** The experiment file, from log.txt's first line. */
  file?: string;
  /** The --set overrides of the run, from log.txt's first line. */
  overrides: Record<string, unknown>;
  status: RunStatus;
  /** Why it failed or was stopped (log.txt's `failed: …` or `stopped early: …` line). */
  error?: string;
  /** Test accuracy from run.json's metrics, when it got that far. */
  test_accuracy?: number;
  /** The cache entries the run used, from run.json (stage name → entry folder). */
  stages?: Record<string, string>;
}

/** The run folders' file names (written by the pipeline, src/runner/pipeline.ts). */
export const RUN_FILES = { config: 'config.yaml', result: 'run.json', log: 'log.txt' } as const;

/** `2026-01-02T03-04-05Z` or `…Z-1` (makeRunDir's names) → ISO time. */
function folderTime(name: string): string | undefined {
  const m = /^(\d{4}-\d{2}-\d{2})T(\d{2})-(\d{2})-(\d{2})Z(?:-\d+)?$/.exec(name);
  return m ? `${m[1]}T${m[2]}:${m[3]}:${m[4]}Z` : undefined;
}

async function readText(file: string): Promise<string | undefined> {
  try {
    return await readFile(file, 'utf8');
  } catch {
    return undefined;
  }
}

/** A log line less its leading ISO time. */
function logMessage(line: string): string {
  return line.replace(/^\S+Z /, '');
}

/** Reads one run folder (one holding config.yaml). */
export async function readRun(runsDir: string, dir: string): Promise<PastRun> {
  const relative = path.relative(runsDir, dir).split(path.sep);
  const name = relative[relative.length - 1];
  const time = folderTime(name) ?? new Date((await stat(dir)).mtimeMs).toISOString();
  const run: PastRun = { experiment: relative.slice(0, -1).join('/'), time, dir, overrides: {}, status: 'incomplete' };
  const lines = (await readText(path.join(dir, RUN_FILES.log)))?.split('\n').filter((l) => l.trim() !== '') ?? [];
  const first = lines.length > 0 ? /^experiment (.*?) (\{.*\})$/.exec(logMessage(lines[0])) : null;
  if (first) {
    run.file = first[1];
    try {
      run.overrides = JSON.parse(first[2]) as Record<string, unknown>;
    } catch {
      // A half-written first line: no overrides known.
    }
  }
  const resultText = await readText(path.join(dir, RUN_FILES.result));
  let result: { stages?: { name: string; path: string }[]; metrics?: { test?: { accuracy?: number } } } | undefined;
  try {
    result = resultText === undefined ? undefined : JSON.parse(resultText);
  } catch {
    result = undefined;
  }
  const last = lines.length > 0 ? logMessage(lines[lines.length - 1]) : '';
  if (result) {
    run.status = 'finished';
    const accuracy = result.metrics?.test?.accuracy;
    if (typeof accuracy === 'number') run.test_accuracy = accuracy;
    if (Array.isArray(result.stages)) run.stages = Object.fromEntries(result.stages.map((s) => [s.name, s.path]));
  } else if (last.startsWith('failed: ')) {
    run.status = 'failed';
    run.error = last.slice('failed: '.length);
  } else if (last.startsWith('stopped early: ')) {
    run.status = 'stopped';
    run.error = last.slice('stopped early: '.length);
  } else if (last === 'interrupted') {
    run.status = 'interrupted';
  }
  return run;
}

/** Every run folder under `runsDir` (a folder holding config.yaml, at any depth), newest first. */
export async function listRuns(runsDir: string): Promise<PastRun[]> {
  const root = path.resolve(runsDir);
  const dirs: string[] = [];
  const walk = async (dir: string): Promise<void> => {
    let found;
    try {
      found = await readdir(dir, { withFileTypes: true });
    } catch {
      return;
    }
    if (dir !== root && found.some((d) => d.isFile() && d.name === RUN_FILES.config)) {
      dirs.push(dir);
      return;
    }
    for (const d of found) if (d.isDirectory()) await walk(path.join(dir, d.name));
  };
  await walk(root);
  const runs = await Promise.all(dirs.map((d) => readRun(root, d)));
  return runs.sort((a, b) => b.time.localeCompare(a.time) || b.dir.localeCompare(a.dir));
}

/**
 * The newest finished run folder of `experiment` whose config.yaml is `configText` and whose run.json
 * names exactly these stages and entries: a fully cached rerun of it records nothing new and gives it back.
 */
export async function findRecordedRun(runsDir: string, experiment: string, configText: string, stages: { name: string; path: string }[]): Promise<string | undefined> {
  const base = path.join(path.resolve(runsDir), ...experiment.split('/'));
  let names: string[];
  try {
    names = (await readdir(base, { withFileTypes: true })).filter((d) => d.isDirectory() && folderTime(d.name) !== undefined).map((d) => d.name);
  } catch {
    return undefined;
  }
  // makeRunDir's names sort by time (a `-1` suffix after its plain name).
  for (const name of names.sort().reverse()) {
    const dir = path.join(base, name);
    if ((await readText(path.join(dir, RUN_FILES.config))) !== configText) continue;
    const run = await readRun(runsDir, dir);
    if (run.status !== 'finished' || !run.stages) continue;
    const recorded = Object.entries(run.stages);
    if (recorded.length === stages.length && stages.every((s) => run.stages![s.name] === s.path)) return dir;
  }
  return undefined;
}
