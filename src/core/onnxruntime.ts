// The one owner of ONNX Runtime: the native binding (one instance, shared with transformers.js), the
// execution providers it offers, the thread policy, the session options of both of its users (the GRU
// kernel in src/model and the encoder in src/encoder), and transformers.js's global `env`.
import { existsSync } from 'node:fs';
import { createRequire } from 'node:module';
import os from 'node:os';
import path from 'node:path';
import type * as Ort from 'onnxruntime-common';
import { askedSpinning, askedThreads } from './settings.js';

// ONNX Runtime 1.30's telemetry (the 1DS SDK it links) leaves an empty mat-debug-<pid>.log in the temp
// folder of every process that starts an environment (a session). ORT_DISABLE_TELEMETRY, read by the native
// library when its environment starts, turns that telemetry off; set here, before onnxruntime-node or
// transformers.js is loaded through this module. A value the user set is kept.
process.env.ORT_DISABLE_TELEMETRY ??= '1';

export type OrtModule = typeof Ort;
export type OrtSessionOptions = Ort.InferenceSession.SessionOptions;

/** Who creates the session: the GRU head's graphs (src/model/ort-kernel.ts) or the BERT encoder (via transformers.js). */
export type OrtUser = 'gru-kernel' | 'encoder';

/**
 * A require that resolves onnxruntime-node as transformers.js itself does (from its folder), so the
 * encoder and the GRU kernel share one instance of the native binding.
 */
export function onnxruntimeRequire(): NodeRequire {
  const ours = createRequire(import.meta.url);
  try {
    return createRequire(ours.resolve('@huggingface/transformers'));
  } catch {
    return ours;
  }
}

let binding: OrtModule | undefined;

/** onnxruntime-node, the instance transformers.js loads too (loaded on first use). */
export function onnxruntime(): OrtModule {
  binding ??= onnxruntimeRequire()('onnxruntime-node') as OrtModule;
  return binding;
}

export interface ProviderInfo {
  /** Execution providers this onnxruntime-node build knows, and whether their libraries ship in the package. */
  backends: { name: string; bundled: boolean }[];
  /** Folder holding onnxruntime_binding.node and the provider libraries. */
  binDir: string;
  /** Whether the CUDA provider's libraries are installed next to the binding (they are not bundled on npm). */
  cudaInstalled: boolean;
}

/**
 * What this onnxruntime-node install can offer, without creating a session. ONNX Runtime's
 * `listSupportedBackends()` lists `cuda` on Linux x64 even when its libraries are absent (`bundled: false`:
 * they are downloaded by the package's installer, which package.json's allowScripts skips), and trying to start it then logs a
 * native error line; so CUDA counts as installed only when libonnxruntime_providers_cuda.so is present.
 */
export function onnxruntimeProviders(): ProviderInfo {
  const req = onnxruntimeRequire();
  const ort = onnxruntime() as unknown as { listSupportedBackends?: () => { name: string; bundled: boolean }[] };
  const binDir = path.join(path.dirname(req.resolve('onnxruntime-node/package.json')), 'bin', 'napi-v6', process.platform, process.arch);
  const backends = ort.listSupportedBackends?.() ?? [{ name: 'cpu', bundled: true }];
  const cuda = backends.find((b) => b.name === 'cuda');
  const cudaInstalled =
    cuda !== undefined && (cuda.bundled || (existsSync(path.join(binDir, 'libonnxruntime_providers_cuda.so')) && existsSync(path.join(binDir, 'libonnxruntime_providers_shared.so'))));
  return { backends, binDir, cudaInstalled };
}

/**
 * Intra-op threads: SENTIMENT_THREADS when set; else each user's engine default: one per logical core
 * for the GRU kernel (its small per-step GEMMs gain from every core), and ONNX Runtime's own default for
 * the encoder (undefined: one per physical core).
 */
export function intraOpThreads(user: OrtUser, env: NodeJS.ProcessEnv = process.env): number | undefined {
  return askedThreads(env) ?? (user === 'gru-kernel' ? os.availableParallelism() : undefined);
}

export interface SessionOptionsRequest {
  /** Intra-op threads; default intraOpThreads(user). */
  threads?: number;
  /** The GRU kernel's per-node trace: `<prefix>_<time>.json` (see InferenceSession.endProfiling). */
  profileFilePrefix?: string;
  /**
   * Whether idle intra-op threads spin before they sleep (ONNX Runtime's default, true). A server turns it
   * off: between batches its cores are needed by the HTTP side, which spinning threads would take.
   * SENTIMENT_SPINNING, when set, decides instead.
   */
  allowSpinning?: boolean;
}

/**
 * The session options a user's sessions are created with. Both get every graph optimisation. The encoder's
 * execution provider is chosen by transformers.js from DEVICE (so none is set here); the GRU kernel runs on
 * the CPU provider, sequentially, with one inter-op thread.
 */
export function sessionOptions(user: OrtUser, request: SessionOptionsRequest = {}, env: NodeJS.ProcessEnv = process.env): OrtSessionOptions {
  const threads = request.threads ?? intraOpThreads(user, env);
  const spinning = askedSpinning(env) ?? request.allowSpinning ?? true;
  const common: OrtSessionOptions = {
    graphOptimizationLevel: 'all',
    ...(threads !== undefined && { intraOpNumThreads: threads }),
    ...(!spinning && { extra: { session: { intra_op: { allow_spinning: '0' } } } }),
  };
  if (user === 'encoder') return common;
  return {
    ...common,
    executionProviders: ['cpu'],
    interOpNumThreads: 1,
    executionMode: 'sequential',
    // Off for the GRU kernel: a memory pattern is planned and allocated anew for every input shape, and
    // its batches change shape all the time (T varies from batch to batch), which doubled peak memory for
    // no measurable speed. The encoder keeps ONNX Runtime's default (on).
    enableMemPattern: false,
    ...(request.profileFilePrefix && { enableProfiling: true, profileFilePrefix: request.profileFilePrefix }),
  };
}

/** Creates a session for one of our own graphs (bytes of an ONNX model) with `user`'s options. */
export function createSession(model: Uint8Array, user: OrtUser, request: SessionOptionsRequest = {}): Promise<Ort.InferenceSession> {
  return onnxruntime().InferenceSession.create(model, sessionOptions(user, request));
}

type Transformers = typeof import('@huggingface/transformers');
let transformers: Promise<Transformers> | undefined;

/**
 * transformers.js with its global `env` set once for this process: models and tokenizers load from local
 * folders only (paths are absolute, so the local model root is `/`); downloads go through src/core/download.
 */
export function loadTransformers(): Promise<Transformers> {
  transformers ??= import('@huggingface/transformers').then((t) => {
    t.env.allowRemoteModels = false;
    t.env.localModelPath = '/';
    return t;
  });
  return transformers;
}
