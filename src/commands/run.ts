import { Args, Flags } from '@oclif/core';
import { SentimentCommand, locationFlags, setFlag } from '../cli/command.js';
import { bareForce, stageName } from '../cli/flags.js';
import { STAGE_NAMES } from '../stages/stage.js';

export default class Run extends SentimentCommand {
  static override summary = 'Run experiments: each stage from the cache when its inputs are unchanged.';
  static override description = `Stages run in order (${STAGE_NAMES.join(', ')}); each one's output is cached under a key made of exactly the settings and files it reads, so reruns and sweeps only compute what changed.`;
  static override examples = [
    '<%= config.bin %> run experiments/quickstart.yaml',
    '<%= config.bin %> run experiments/imdb-bigru.yaml --until tokenize --set DATASET=../shared/data/imdb --set MODEL=../shared/tokenizers/bert-base-uncased',
    '<%= config.bin %> run experiments/imdb-bigru.yaml --set MAX_LENGTH=256 --explain',
  ];
  static override usage = '<%= command.id %> EXPERIMENT.yaml... [--set KEY=VALUE]... [--until STAGE] [--force [STAGE]] [--explain] [--json] [--name NAME] [--record] [--cache-dir DIR] [--runs-dir DIR] [--verbose]';
  // Any number of experiment files, so the parser is not strict; the arg is here for help's ARGUMENTS section.
  static override strict = false;
  static override args = {
    'EXPERIMENT.yaml': Args.string({ description: 'Experiment files (one or more), run one after the other.' }),
  };
  static override flags = {
    set: setFlag,
    until: Flags.string({ description: 'Stop after this stage.', options: [...STAGE_NAMES] }),
    force: Flags.string({ description: 'Recompute STAGE and every stage after it (bare --force: everything).', helpValue: '[STAGE]' }),
    explain: Flags.boolean({ description: 'Show for each stage whether it is cached or would be recomputed, and what changed; runs nothing.', default: false }),
    json: Flags.boolean({ description: 'Print one JSON document on stdout (progress goes to stderr).', default: false }),
    name: Flags.string({ description: 'Name of the run folder under --runs-dir (default: the experiment file name).' }),
    record: Flags.boolean({
      description: 'Make a new run folder even when every stage comes from the cache. Without it, such a rerun gives back the newest finished run folder with the same resolved config and cache entries (its run_dir, "reused": true in --json) and writes nothing.',
      default: false,
    }),
    ...locationFlags,
  };

  async run(): Promise<void> {
    this.argv = bareForce(this.argv);
    const { argv, flags } = await this.parse(Run);
    const experiments = argv as string[];
    if (experiments.length === 0) this.error('give at least one experiment file, e.g. sentiment run experiments/quickstart.yaml', { exit: 2 });
    const { runExperiments, explainExperiments } = await import('../runner/run.js');
    const { formatRun } = await import('../cli/tables.js');
    const { STAGES } = await import('../stages/index.js');
    const { listrSteps } = await import('../cli/steps.js');
    if (flags.name !== undefined && experiments.length !== 1) this.error('--name names one run: give one experiment file with it', { exit: 2 });
    // Plain lines only when stderr is not a terminal: `| tee` (stdout) keeps the live display.
    const interactive = Boolean(process.stderr.isTTY);
    const request = {
      stages: STAGES,
      experiments,
      sets: flags.set,
      cacheDir: flags['cache-dir'],
      runsDir: flags['runs-dir'],
      until: stageName('--until', flags.until),
      force: flags.force === 'all' ? ('all' as const) : stageName('--force', flags.force),
      name: flags.name,
      record: flags.record,
      interactive,
      renderer: listrSteps({ interactive }),
    };
    if (flags.explain) {
      const explained = await explainExperiments(request);
      if (flags.json) this.log(JSON.stringify(explained.length === 1 ? explained[0] : explained, null, 2));
      else
        for (const e of explained) {
          this.log(`${e.experiment}:`);
          for (const s of e.stages) this.log(`  ${s.name.padEnd(9)} ${s.cached ? 'hit ' : 'miss'}  ${s.reason}`);
        }
      return;
    }
    const interrupt = this.interruptible('stopping the stage in progress (completed stages stay cached)');
    const { trialObserver } = await import('../cli/trial-channel.js');
    const observer = trialObserver(() => interrupt.abort());
    try {
      const results = await runExperiments({ ...request, signal: interrupt.signal, observer });
      if (flags.json) this.log(JSON.stringify(results.length === 1 ? results[0] : results, null, 2));
      else for (const r of results) this.log(formatRun(r));
    } catch (e) {
      if (interrupt.signal.aborted) this.exit(130);
      throw e;
    } finally {
      interrupt.dispose();
    }
  }
}
