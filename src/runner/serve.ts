// `sentiment serve`: a Fastify HTTP server over one trained model. POST /predict goes through the
// micro-batcher (src/inference/batcher.ts) to the same Predictor `infer` uses; GET /health and GET /model
// say whether it is loaded and what it is. Safe defaults: 127.0.0.1, a body limit, a bounded queue,
// errors as {"error": message} without stack traces, one access-log line per request, and a close that
// stops accepting, answers every request already accepted, then frees the model.
import type { FastifyError, FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import { STATUS_CODES } from 'node:http';
import type { Socket } from 'node:net';
import { UserError, messageOf } from '../core/errors.js';
import { DEFAULT_BATCHER, QueueFullError, createBatcher, type Batcher, type BatcherOptions } from '../inference/batcher.js';
import type { Prediction } from '../inference/predictor.js';
import type { InferRequest, TrainedModel, openPredictor } from './trained-model.js';

export interface ServeSettings extends BatcherOptions {
  host: string;
  /** 0: any free port (the server's `url` says which). */
  port: number;
  /** Largest request body, in bytes; larger ones get 413. */
  bodyLimit: number;
  logFormat: 'text' | 'json';
}

export const DEFAULT_SERVE: ServeSettings = { host: '127.0.0.1', port: 8080, bodyLimit: 1024 * 1024, logFormat: 'text', ...DEFAULT_BATCHER };

/** What the server predicts once before it says it is ready. */
const WARM_UP_TEXT = 'A first prediction, made before the server is ready.';

/** How long, once every accepted request is answered, connections that clients hold open may stay. */
const CLOSE_GRACE_MS = 1000;

/** Seconds a client is told to wait (Retry-After) when the queue is full or the model is still loading. */
const RETRY_AFTER_S = 1;

export interface Server {
  /** `http://host:port`, the port as bound. */
  url: string;
  /** Resolves once the model is loaded and /predict answers (rejects when loading failed; the server then closes). */
  ready: Promise<void>;
  /** Stops accepting, answers the requests already accepted, frees the model; resolves when all that is done. */
  close(): Promise<void>;
  /** Resolves after close() completed; rejects with the loading error when the model could not be loaded. */
  closed: Promise<void>;
}

export type Opened = Awaited<ReturnType<typeof openPredictor>>;

/** POST /predict's body: one text, or a list of them. */
const SCHEMA_BODY = (maxTexts: number) => ({
  // In order, the first failure only: the shape and the fields, then which of the two is there.
  allOf: [
    {
      type: 'object',
      properties: {
        text: { type: 'string', pattern: '\\S' },
        texts: { type: 'array', minItems: 1, maxItems: maxTexts, items: { type: 'string', pattern: '\\S' } },
      },
      additionalProperties: false,
    },
    { oneOf: [{ type: 'object', required: ['text'] }, { type: 'object', required: ['texts'] }] },
  ],
});

interface SchemaError {
  keyword: string;
  instancePath: string;
  params: Record<string, unknown>;
}

/** `/texts/3` → `texts[3]`. */
function fieldOf(instancePath: string): string {
  return instancePath
    .split('/')
    .slice(1)
    .map((p, i) => (i === 0 ? p : `[${p}]`))
    .join('');
}

/** Ajv's errors for the /predict body as one message that names the field. */
function bodyErrorMessage(errors: SchemaError[], maxTexts: number): string {
  const messages = errors.flatMap((e): string[] => {
    const field = fieldOf(e.instancePath);
    switch (e.keyword) {
      case 'type':
        if (!field) return ['body: must be a JSON object: {"text": "..."} or {"texts": ["...", ...]}'];
        return [field === 'texts' ? 'texts: must be an array of strings' : `${field}: must be a string`];
      case 'pattern':
        return [`${field}: must not be empty`];
      case 'minItems':
        return [`${field}: must hold at least one text`];
      case 'maxItems':
        return [`${field}: at most ${maxTexts} texts per request (--max-queue)`];
      case 'additionalProperties':
        return [`${String(e.params.additionalProperty)}: unknown field; send "text" (a string) or "texts" (an array of strings)`];
      case 'oneOf':
        return [Array.isArray(e.params.passingSchemas) ? 'body: send either "text" or "texts", not both' : 'body: needs "text" (a string) or "texts" (an array of strings)'];
      default:
        // `required` comes with oneOf's own error, which says it better.
        return [];
    }
  });
  return [...new Set(messages)].join('; ') || 'body: not a valid request';
}

/** Logs one line per request and lifecycle event on `write` (stderr), as text or JSON. */
function logger(format: ServeSettings['logFormat'], write: (line: string) => void) {
  return {
    event(event: string, fields: Record<string, unknown> = {}, text = event) {
      write(format === 'json' ? JSON.stringify({ time: new Date().toISOString(), event, ...fields }) : text);
    },
    access(fields: { method: string; path: string; status: number; ms: number; batch: number | null }) {
      if (format === 'json') write(JSON.stringify({ time: new Date().toISOString(), ...fields }));
      else write(`${new Date().toISOString()} ${fields.method} ${fields.path} ${fields.status} ${fields.ms}ms${fields.batch === null ? '' : ` batch=${fields.batch}`}`);
    },
  };
}

/** What GET /model answers: the model as loaded, and how it is served. */
function modelInfo(request: InferRequest, opened: Opened, settings: ServeSettings) {
  const { config, classes, head, predictor } = opened;
  return {
    experiment: opened.experiment,
    source: request.model ? { model: request.model } : { config: request.config, sets: request.sets },
    trained_at: opened.trainedAt,
    target: config.TARGET,
    classes,
    encoder: { model: config.MODEL, max_length: config.MAX_LENGTH, dtype: config.ENCODER_DTYPE, device: predictor.encoder.device, width: predictor.encoder.width },
    head: { ...head.settings, backend: head.backend, kernel: head.kernel, best_epoch: head.best_epoch, best_valid_loss: head.best_valid_loss },
    serving: { batch_wait_ms: settings.maxWaitMs, max_batch: settings.maxBatch, max_queue: settings.maxQueue, body_limit: settings.bodyLimit },
    config,
  };
}

const answer = (p: Prediction) => ({ probability: p.probability, label: p.label });

/**
 * Finds the model of `request` (a bad config, one never trained or a folder that is no export fails
 * here, before the port is taken), starts listening (GET /health answers 503 until the model is loaded),
 * then loads it with openPredictor, the loader `infer` uses. `write` gets the log lines (stderr).
 */
export async function startServer(
  request: InferRequest,
  options: Partial<ServeSettings> & {
    /** Where log lines go (default: stderr). */
    write?: (line: string) => void;
    /** Loads the model found (default: openPredictor); a test can hold it to see the server before it is ready. */
    open?: (request: InferRequest, found: TrainedModel) => Promise<Opened>;
  } = {},
): Promise<Server> {
  const settings: ServeSettings = { ...DEFAULT_SERVE, ...options };
  const write = options.write ?? ((line: string) => process.stderr.write(`${line}\n`));
  const log = logger(settings.logFormat, write);
  const { default: Fastify } = await import('fastify');
  const models = await import('./trained-model.js');
  const open = options.open ?? models.openPredictor;
  const found = await models.findTrainedModel(request);
  const app: FastifyInstance = Fastify({
    bodyLimit: settings.bodyLimit,
    logger: false,
    // While closing, requests that arrive on open connections get our 503 (onRequest below), logged.
    return503OnClosing: false,
    // JSON.parse makes "__proto__" an own key (it sets no prototype), so the schema's additionalProperties
    // refuses it by name ("__proto__: unknown field"), where Fastify's default would call the body invalid JSON.
    onProtoPoisoning: 'ignore',
    onConstructorPoisoning: 'ignore',
    // Types are checked as sent: {"text": 5} is an error, not "5".
    ajv: { customOptions: { coerceTypes: false, removeAdditional: false, allErrors: false } },
    schemaErrorFormatter: (errors) => Object.assign(new Error(bodyErrorMessage(errors as SchemaError[], settings.maxQueue)), { statusCode: 400 }),
    // What Node's HTTP parser refuses before there is a request (an unknown method, headers over 16 KiB):
    // answered in our error format and logged, where Fastify's default answers its own and logs nothing.
    clientErrorHandler: (err: NodeJS.ErrnoException, socket: Socket) => {
      if (err.code === 'ECONNRESET' || socket.destroyed) return;
      const [status, message] =
        err.code === 'HPE_HEADER_OVERFLOW'
          ? [431, 'request: the URL and headers are too large']
          : err.code === 'ERR_HTTP_REQUEST_TIMEOUT'
            ? [408, 'request: not received in time']
            : [400, `request: not valid HTTP (${err.code ?? messageOf(err)})`];
      log.event('client_error', { status, error: message }, `client error ${status}: ${message}`);
      if (socket.writable) {
        const body = JSON.stringify({ error: message });
        socket.write(`HTTP/1.1 ${status} ${STATUS_CODES[status]}\r\nContent-Type: application/json; charset=utf-8\r\nContent-Length: ${Buffer.byteLength(body)}\r\nConnection: close\r\n\r\n${body}`);
      }
      socket.destroy(err);
    },
  });
  // JSON only: without this, Fastify reads text/plain bodies as strings (a 400 about the shape, not the 415 it is).
  app.removeContentTypeParser('text/plain');

  let opened: Opened | undefined;
  let batcher: Batcher | undefined;
  let stopping = false;
  const batchOf = new WeakMap<FastifyRequest, number>();

  const unavailable = (reply: FastifyReply, message: string) => reply.code(503).header('retry-after', String(RETRY_AFTER_S)).send({ error: message });

  const ms = (elapsed: number) => Math.round(elapsed * 10) / 10;
  const aborted = new WeakSet<FastifyRequest>();
  app.addHook('onResponse', async (req, reply) => {
    if (!aborted.has(req)) log.access({ method: req.method, path: req.url, status: reply.statusCode, ms: ms(reply.elapsedTime), batch: batchOf.get(req) ?? null });
  });

  // Once stopping, a request that arrives on an open connection is not taken: 503 (it may retry elsewhere).
  app.addHook('onRequest', async (req, reply) => {
    // A client that closed its connection before its answer was written: logged as 499 (nginx's "client
    // closed request"); its texts are still predicted with their batch.
    const started = performance.now();
    reply.raw.once('close', () => {
      if (reply.raw.writableFinished) return;
      aborted.add(req);
      log.access({ method: req.method, path: req.url, status: 499, ms: ms(performance.now() - started), batch: batchOf.get(req) ?? null });
    });
    if (stopping) return unavailable(reply, 'the server is stopping');
    const encoding = req.headers['content-encoding']?.trim().toLowerCase();
    if (encoding && encoding !== 'identity') return reply.code(415).send({ error: `body: content-encoding ${encoding} is not supported; send the JSON uncompressed` });
  });

  // Once stopping, answers close their connection, so the server is done as soon as the last one is sent.
  app.addHook('onSend', async (_req, reply) => {
    if (stopping) reply.header('connection', 'close');
  });

  app.setErrorHandler((err: FastifyError, req, reply) => {
    const status = err.statusCode ?? 500;
    if (status >= 500) {
      // A bug or an engine failure: the details go to the log, never into the response.
      log.event('error', { method: req.method, path: req.url, message: messageOf(err), stack: err.stack }, `error in ${req.method} ${req.url}: ${err.stack ?? messageOf(err)}`);
      return reply.code(500).send({ error: 'internal error while predicting; see the server log' });
    }
    const message =
      err.code === 'FST_ERR_CTP_BODY_TOO_LARGE'
        ? `body: larger than the limit of ${settings.bodyLimit} bytes (--body-limit)`
        : err.code === 'FST_ERR_CTP_INVALID_MEDIA_TYPE'
          ? `body: send JSON with content-type: application/json (got ${req.headers['content-type'] ?? 'none'})`
          : err.code === 'FST_ERR_CTP_EMPTY_JSON_BODY'
            ? 'body: empty; send {"text": "..."} or {"texts": ["...", ...]}'
            : err instanceof SyntaxError || err.code === 'FST_ERR_CTP_INVALID_JSON_BODY'
              ? 'body: not valid JSON'
              : err.message;
    return reply.code(status).send({ error: message });
  });

  app.setNotFoundHandler((req, reply) => reply.code(404).send({ error: `no route ${req.method} ${req.url.split('?')[0]}; the routes are POST /predict, GET /health, GET /model` }));

  app.get('/health', async (_req, reply) => {
    if (!batcher) return unavailable(reply, 'loading the model');
    return { status: 'ok', queued: batcher.queued };
  });

  app.get('/model', async (_req, reply) => {
    if (!opened) return unavailable(reply, 'loading the model');
    return modelInfo(request, opened, settings);
  });

  app.post<{ Body: { text?: string; texts?: string[] } }>('/predict', { schema: { body: SCHEMA_BODY(settings.maxQueue) } }, async (req, reply) => {
    if (!batcher) return unavailable(reply, 'loading the model');
    const texts = req.body.texts ?? [req.body.text!];
    try {
      const { predictions, batchSize } = await batcher.predict(texts);
      batchOf.set(req, batchSize);
      return req.body.texts ? predictions.map(answer) : answer(predictions[0]);
    } catch (e) {
      if (e instanceof QueueFullError) return unavailable(reply, e.message);
      throw e;
    }
  });

  try {
    await app.listen({ host: settings.host, port: settings.port });
  } catch (e) {
    const code = (e as { code?: string }).code;
    if (code === 'EADDRINUSE') throw new UserError(`--port ${settings.port}: the address ${settings.host}:${settings.port} is already in use; give another --port (0 takes any free one)`);
    if (code === 'EACCES') throw new UserError(`--port ${settings.port}: not allowed to listen on ${settings.host}:${settings.port} (ports below 1024 need privileges); give another --port`);
    if (code === 'EADDRNOTAVAIL' || code === 'ENOTFOUND') throw new UserError(`--host ${settings.host}: not an address of this machine`);
    throw e;
  }
  const address = app.server.address();
  const port = typeof address === 'object' && address ? address.port : settings.port;
  const url = `http://${settings.host.includes(':') ? `[${settings.host}]` : settings.host}:${port}`;
  log.event('listening', { url }, `listening on ${url}; loading the model…`);

  const loading = (async () => {
    const started = performance.now();
    // ONNX Runtime's idle threads do not spin here: between batches the cores parse and answer requests.
    opened = await open({ ...request, allowSpinning: false }, found);
    // One prediction before ready: the head's session is made on its first batch, and first runs
    // allocate; the first client should not wait for that.
    await opened.predictor.predict([WARM_UP_TEXT]);
    // Stopped while loading: nothing is served, and the log does not say ready after stopping.
    if (stopping) return;
    batcher = createBatcher(opened.predictor, settings);
    const seconds = (performance.now() - started) / 1000;
    log.event('ready', { url, experiment: opened.experiment, seconds: +seconds.toFixed(1) }, `ready: ${opened.experiment} (loaded in ${seconds.toFixed(1)}s); POST ${url}/predict`);
  })();

  let closing: Promise<void> | undefined;
  const close = () =>
    (closing ??= (async () => {
      stopping = true;
      log.event('stopping', {}, 'stopping: no new requests; answering those already accepted');
      // app.close() stops accepting and resolves once every connection is gone; what is queued runs at once.
      const closed = app.close();
      await batcher?.drain();
      // Every accepted request is answered now. Connections a client still holds open (Node does not
      // always see them as idle) get CLOSE_GRACE_MS to go, then are closed.
      app.server.closeIdleConnections();
      let grace: NodeJS.Timeout | undefined;
      await Promise.race([closed, new Promise<void>((resolve) => (grace = setTimeout(resolve, CLOSE_GRACE_MS)))]);
      clearTimeout(grace);
      app.server.closeAllConnections();
      await closed;
      await loading.catch(() => {});
      await batcher?.drain();
      await opened?.close();
      log.event('stopped');
    })());

  let settle!: { resolve: () => void; reject: (e: unknown) => void };
  const closed = new Promise<void>((resolve, reject) => (settle = { resolve, reject }));
  const ready = loading.catch(async (e: unknown) => {
    await close();
    settle.reject(e);
    throw e;
  });
  // Callers may await either one.
  ready.catch(() => {});
  closed.catch(() => {});
  return {
    url,
    ready,
    close: async () => {
      await close();
      settle.resolve();
    },
    closed,
  };
}
