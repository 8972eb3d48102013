import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import workerThreads from 'node:worker_threads';
import type * as tfjs from '@tensorflow/tfjs';
import { askedThreads } from '../runner/threads.js';

type WasmModule = typeof import('@tensorflow/tfjs-backend-wasm');

/** The tfjs-backend-wasm release whose internals the workaround below was written against and tested with. */
const THREADED_WASM_VERSION = '4.22.0';
/** tfjs-backend-wasm pre-creates 8 workers and caps XNNPACK's pool there. */
const MAX_THREADS = 8;

/** Threads for the wasm backend: SENTIMENT_THREADS when set (as for tokenize and encode), else one per core, at most 8. */
export function wasmThreads(env: NodeJS.ProcessEnv = process.env): number {
  return Math.min(askedThreads(env) ?? os.availableParallelism(), MAX_THREADS);
}

/**
 * tfjs-backend-wasm turns its threaded SIMD build off in Node (tensorflow/tfjs#3830), though the
 * build supports Node's worker_threads. What stands in the way is only how it starts its workers:
 * it hands Emscripten `blob:` URLs, which Node's Worker refuses, and it sizes XNNPACK's pool as half
 * the logical cores (1 on a 2-core machine). So, for the duration of the backend's initialisation,
 * Blob/URL.createObjectURL write those scripts to a temporary folder instead, os.cpus reports
 * twice the wanted threads, and workers start without the main script's Node flags. Workers are
 * unref'd so they don't keep the process alive. Only for the tested release; anything else (or a
 * failure) leaves the caller to start the single-threaded build.
 */
export async function initThreadedWasm(tf: typeof tfjs, wasm: WasmModule, threads: number): Promise<boolean> {
  if (wasm.version_wasm !== THREADED_WASM_VERSION || typeof SharedArrayBuffer !== 'function') return false;
  const dir = mkdtempSync(path.join(os.tmpdir(), 'sentiment-tfjs-wasm-'));
  process.once('exit', () => rmSync(dir, { recursive: true, force: true }));
  const mainScript = path.join(dir, 'main.cjs');
  const workerScript = path.join(dir, 'worker.cjs');
  // The factory's source refers to these bundle-level names of tf-backend-wasm.node.js.
  const prelude =
    "var require$$0=require('fs'),require$$1=require('path'),require$$3=require('perf_hooks'),require$$4=require('os')," +
    `commonjsGlobal=globalThis,_scriptDir=${JSON.stringify(mainScript)};\n`;
  // Workers are told to import the main script from a Blob; point them at the file.
  const workerSuffix = `\n;{const load=self.onmessage;self.onmessage=e=>{if(e.data&&e.data.cmd==="load")e.data.urlOrBlob=${JSON.stringify(mainScript)};return load(e)}}\n`;

  const OriginalBlob = globalThis.Blob;
  const originalCreateObjectURL = URL.createObjectURL;
  const mutableOs = os as { cpus: typeof os.cpus };
  const originalCpus = mutableOs.cpus;
  const texts = new WeakMap<Blob, string>();
  let mainWritten = false;
  globalThis.Blob = class extends OriginalBlob {
    constructor(parts?: BlobPart[], options?: BlobPropertyBag) {
      super(parts, options);
      if (!parts?.every((p) => typeof p === 'string')) return;
      const text = parts.join('');
      if (text.startsWith('var WasmBackendModuleThreadedSimd')) {
        writeFileSync(mainScript, prelude + text);
        mainWritten = true;
      } else {
        texts.set(this, text);
      }
    }
  };
  URL.createObjectURL = (obj: Blob) => {
    const text = texts.get(obj);
    if (text === undefined) return originalCreateObjectURL(obj);
    writeFileSync(workerScript, text + workerSuffix);
    return workerScript;
  };
  // Workers inherit process.execArgv by default; flags meant for the main script (--input-type, loaders) break them.
  const mutableWorkerThreads = workerThreads as { Worker: typeof workerThreads.Worker };
  const OriginalWorker = mutableWorkerThreads.Worker;
  mutableWorkerThreads.Worker = class extends OriginalWorker {
    constructor(filename: string | URL, options?: workerThreads.WorkerOptions) {
      super(filename, { ...options, execArgv: [] });
    }
  };
  mutableOs.cpus = () => {
    const cpus = originalCpus();
    return Array.from({ length: 2 * threads }, (_, i) => cpus[i % Math.max(1, cpus.length)]);
  };
  tf.env().set('WASM_HAS_MULTITHREAD_SUPPORT', true);
  wasm.setThreadsCount(threads);
  let ok = false;
  try {
    ok = await tf.setBackend('wasm');
  } catch {
    ok = false;
  } finally {
    globalThis.Blob = OriginalBlob;
    URL.createObjectURL = originalCreateObjectURL;
    mutableOs.cpus = originalCpus;
    mutableWorkerThreads.Worker = OriginalWorker;
  }
  if (!ok) return false;
  // Every pooled worker has loaded both scripts by the time the backend is ready.
  if (mainWritten) rmSync(dir, { recursive: true, force: true });
  const pthreads = (tf.backend() as unknown as { wasm?: { PThread?: { unusedWorkers: { unref(): void }[]; runningWorkers: { unref(): void }[] } } }).wasm?.PThread;
  for (const worker of [...(pthreads?.unusedWorkers ?? []), ...(pthreads?.runningWorkers ?? [])]) worker.unref();
  return true;
}
