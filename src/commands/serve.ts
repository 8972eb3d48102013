import { Flags } from '@oclif/core';
import { SentimentCommand, locationFlags, setFlag } from '../cli/command.js';
import { DEFAULT_SERVE } from '../runner/serve.js';

export default class Serve extends SentimentCommand {
  static override summary = 'Serve a trained head over HTTP: POST /predict, GET /health, GET /model.';
  static override description = [
    'POST /predict takes {"text": "..."} and answers {"probability","label"} (the probability of TARGET), or {"texts": [...]} and answers a list in the same order; the predictions are those of `sentiment infer`.',
    'Requests that arrive within --batch-wait-ms of each other are predicted together, up to --max-batch texts (a batch starts sooner when it is full, or when the clients the previous batch answered are back); when --max-queue texts already wait, requests get 503 with Retry-After.',
    'GET /health answers 200 once the model is loaded (503 before); GET /model gives the resolved config, classes, encoder and head settings, and when the head was trained.',
    'Each request is logged on stderr (method, path, status, ms, batch size). Ctrl-C or SIGTERM stops accepting, answers the requests already accepted and exits 0.',
  ].join('\n\n');
  static override examples = [
    '<%= config.bin %> serve --config experiments/quickstart.yaml',
    '<%= config.bin %> serve --model models/quickstart --port 9000 --log-format json',
    `curl -s localhost:8080/predict -H 'content-type: application/json' -d '{"text": "I like you!"}'`,
  ];
  static override flags = {
    config: Flags.string({ description: 'Experiment file whose trained head to serve.', exactlyOne: ['config', 'model'] }),
    model: Flags.string({ description: 'A folder written by `sentiment export`.', exactlyOne: ['config', 'model'] }),
    set: setFlag,
    host: Flags.string({ description: 'Address to listen on; 0.0.0.0 (or ::) makes the server reachable from other machines.', default: DEFAULT_SERVE.host }),
    port: Flags.integer({ description: 'Port to listen on; 0 takes any free port (the log says which).', default: DEFAULT_SERVE.port, min: 0, max: 65535 }),
    'batch-wait-ms': Flags.integer({ description: 'The longest a batch waits for more requests after its first one arrived (or after the previous batch ended), in milliseconds; it starts sooner when --max-batch texts wait, or when as many requests wait as the previous batch answered plus those already waiting when it ended.', default: DEFAULT_SERVE.maxWaitMs, min: 0, max: 10_000 }),
    'max-batch': Flags.integer({ description: 'Most texts predicted together (a request with more texts is predicted alone).', default: DEFAULT_SERVE.maxBatch, min: 1 }),
    'max-queue': Flags.integer({ description: 'Most texts waiting to be predicted; beyond, requests get 503 with Retry-After. Also the most texts one request may send.', default: DEFAULT_SERVE.maxQueue, min: 1 }),
    'body-limit': Flags.integer({ description: 'Largest request body in bytes; larger ones get 413.', default: DEFAULT_SERVE.bodyLimit, min: 1 }),
    'log-format': Flags.string({ description: 'Access log and server events on stderr: text lines, or one JSON object per line.', options: ['text', 'json'], default: DEFAULT_SERVE.logFormat }),
    'cache-dir': locationFlags['cache-dir'],
  };

  async run(): Promise<void> {
    const { flags } = await this.parse(Serve);
    const { startServer } = await import('../runner/serve.js');
    // Ctrl-C / SIGTERM: stop accepting, answer what was accepted, exit 0 (a second one exits 130 at once).
    // The server's log says it is stopping (as a JSON line with --log-format json).
    const interrupt = this.interruptible(null);
    try {
      const server = await startServer(
        { stages: (await import('../stages/index.js')).STAGES, config: flags.config, model: flags.model, sets: flags.set, cacheDir: flags['cache-dir'] },
        {
          host: flags.host,
          port: flags.port,
          maxWaitMs: flags['batch-wait-ms'],
          maxBatch: flags['max-batch'],
          maxQueue: flags['max-queue'],
          bodyLimit: flags['body-limit'],
          logFormat: flags['log-format'] as 'text' | 'json',
        },
      );
      if (interrupt.signal.aborted) await server.close();
      else interrupt.signal.addEventListener('abort', () => void server.close(), { once: true });
      await server.closed;
    } finally {
      interrupt.dispose();
    }
  }
}
