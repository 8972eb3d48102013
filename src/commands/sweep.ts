import { Args, Flags } from '@oclif/core';
import { SentimentCommand, locationFlags, setFlag } from '../cli/command.js';

export default class Sweep extends SentimentCommand {
  static override summary = 'Run many trials of an experiment (a grid, explicit trials or a random search), sharing cached stages, and compare them.';
  static override examples = ['<%= config.bin %> sweep experiments/sweeps/quickstart-grid.yaml', '<%= config.bin %> sweep experiments/sweeps/hidden.yaml --jobs 2 --json', '<%= config.bin %> sweep experiments/sweeps/random.yaml --set N_EPOCHS=3', '<%= config.bin %> sweep experiments/sweeps/hidden.yaml --queue redis://queue-host:6379'];
  static override args = { sweep: Args.string({ description: 'Sweep YAML file.', required: true }) };
  static override flags = {
    set: setFlag,
    jobs: Flags.integer({ description: 'Trials run at once, each in its own process.', default: 1, min: 1 }),
    queue: Flags.string({
      description: 'Run the trials on `sentiment worker`s instead: a BullMQ queue on this Redis (redis://HOST:PORT[/DB]). The workers must share this cache folder (see README, "Sweeps on several machines").',
      helpValue: 'redis://HOST:PORT',
      exclusive: ['jobs'],
    }),
    json: Flags.boolean({ description: 'Print one JSON document: {"trials":[{"overrides","status","run_dir","metrics"}]}.', default: false }),
    ...locationFlags,
  };

  async run(): Promise<void> {
    const { args, flags } = await this.parse(Sweep);
    const { runSweep, byValidLoss } = await import('../runner/sweep.js');
    const { LocalExecutor } = await import('../runner/executor.js');
    const executor = flags.queue === undefined ? new LocalExecutor(flags.jobs) : new (await import('../runner/queue.js')).QueueExecutor(flags.queue, (await import('../stages/index.js')).STAGES);
    const { formatMeasure, formatPercent } = await import('../training/metrics.js');
    const interrupt = this.interruptible('stopping the running trials (finished trials and completed stages stay cached; unstarted ones are recorded as not started)');
    const { trialLine } = await import('../cli/tables.js');
    try {
      const result = await runSweep(args.sweep, {
        cacheDir: flags['cache-dir'],
        runsDir: flags['runs-dir'],
        executor,
        signal: interrupt.signal,
        sets: flags.set,
        onEpoch: (id, e) => process.stderr.write(`  ${id} epoch ${e.epoch}: valid loss ${formatMeasure(e.valid_loss)}, accuracy ${formatPercent(e.valid_accuracy)}\n`),
        onOutcome: (t, done, total) => process.stderr.write(`[${done}/${total}] ${t.id} ${t.label}: ${trialLine(t)} (${t.seconds.toFixed(1)}s)\n`),
      });
      if (flags.json) {
        this.log(
          JSON.stringify(
            {
              sweep_dir: result.sweep_dir,
              trials: result.trials.map((t) => ({ id: t.id, overrides: t.overrides, status: t.status, epochs: t.epochs, run_dir: t.run_dir ?? null, metrics: t.metrics ?? null, ...(t.stopped && { stopped: t.stopped, last_epoch: t.history.at(-1) }), ...(t.error && { error: t.error }) })),
            },
            null,
            2,
          ),
        );
      } else {
        const how = result.search ? `${result.search.method} search, seed ${result.search.seed}; ` : '';
        this.log(`${result.sweep}: ${result.trials.length} trials (${how}${result.executor}) → ${result.sweep_dir}`);
        for (const t of byValidLoss(result.trials)) this.log(`  ${t.id.padEnd(4)} ${t.label.padEnd(32)} ${trialLine(t)}`);
      }
      if (interrupt.signal.aborted) this.exit(130);
      if (result.trials.some((t) => t.status === 'failed')) process.exitCode = 1;
    } finally {
      interrupt.dispose();
    }
  }
}
