import { Flags } from '@oclif/core';
import { SentimentCommand, locationFlags } from '../cli/command.js';

export default class Worker extends SentimentCommand {
  static override summary = 'Run sweep trials taken from a queue on Redis (the other end of `sentiment sweep --queue`).';
  static override description = `Takes trials from the BullMQ queue "sentiment-trials" and runs each as \`sentiment run\` with this machine's --cache-dir and --runs-dir. The cache folder must be the sweep's (the same folder, shared, at any mount path): a job of another cache, or of another sentiment version, is refused. If the worker dies, its jobs go back to the queue once their lock expires (30 s) and another worker runs them.

Ctrl-C (or SIGTERM): takes no more trials, stops the running ones and puts their jobs back in the queue at once for another worker (a trial goes on from its last checkpoint), then exits 130. A second Ctrl-C exits at once; its jobs then go back to the queue when their lock expires.`;
  static override examples = ['<%= config.bin %> worker --queue redis://queue-host:6379', '<%= config.bin %> worker --queue redis://queue-host:6379 --concurrency 2 --cache-dir /mnt/shared/sentiment-cache'];
  static override flags = {
    queue: Flags.string({ description: 'The Redis the sweep queues its trials on: redis://HOST:PORT[/DB].', helpValue: 'redis://HOST:PORT', required: true }),
    concurrency: Flags.integer({ description: 'Trials run at once, each in its own process.', default: 1, min: 1 }),
    'lock-duration': Flags.integer({ description: 'How long (ms) a job stays locked to this worker without renewal.', hidden: true, min: 100 }),
    'stalled-interval': Flags.integer({ description: 'How often (ms) this worker looks for jobs whose worker died.', hidden: true, min: 100 }),
    ...locationFlags,
  };

  async run(): Promise<void> {
    const { flags } = await this.parse(Worker);
    const { runWorker } = await import('../runner/queue.js');
    const interrupt = this.interruptible('taking no more trials; the running ones stop and go back to the queue for another worker (Ctrl-C again: exit at once, and they go back when their lock expires)');
    try {
      await runWorker({
        redisUrl: flags.queue,
        concurrency: flags.concurrency,
        cacheDir: flags['cache-dir'],
        runsDir: flags['runs-dir'],
        signal: interrupt.signal,
        log: (line) => process.stderr.write(`${new Date().toISOString().slice(11, 19)} ${line}\n`),
        lockDuration: flags['lock-duration'],
        stalledInterval: flags['stalled-interval'],
      });
      if (interrupt.signal.aborted) this.exit(130);
    } finally {
      interrupt.dispose();
    }
  }
}
