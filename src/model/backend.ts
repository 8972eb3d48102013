import { createRequire } from 'node:module';
import path from 'node:path';
import type * as tfjs from '@tensorflow/tfjs';
import { messageOf, UserError } from '../core/errors.js';

export type Tf = typeof tfjs;

export const BACKEND_SETTINGS = ['auto', 'onnxruntime', 'tensorflow-gpu', 'tensorflow', 'wasm', 'cpu'] as const;
export type BackendSetting = (typeof BACKEND_SETTINGS)[number];
export type BackendName = Exclude<BackendSetting, 'auto'>;
export type TfjsBackendName = Exclude<BackendName, 'onnxruntime'>;

/** The head on ONNX Runtime: the repo's own GRU graphs on onnxruntime-node; tfjs is never loaded. */
export interface OrtEngine {
  name: 'onnxruntime';
  description: string;
  /** With auto: why each engine before this one was passed over. */
  skipped?: string[];
}

/** The head on a tfjs backend, with tfjs's kernels. */
export interface TfjsEngine {
  /** The BACKEND value that was loaded: what the train stage prints and records. */
  name: TfjsBackendName;
  /** The tfjs module whose engine runs this backend (tfjs-node brings its own). */
  tf: Tf;
  /** tfjs's name for it ('tensorflow' for both tfjs-node packages). */
  tfBackend: string;
  /** For logs, e.g. "wasm (SIMD, 1 thread)". */
  description: string;
  skipped?: string[];
}

export type SelectedBackend = OrtEngine | TfjsEngine;

const NODE_PACKAGES = { 'tensorflow-gpu': '@tensorflow/tfjs-node-gpu', tensorflow: '@tensorflow/tfjs-node' } as const;

// tfjs backends are process-wide: each is loaded once, and a failure is remembered.
const loads = new Map<TfjsBackendName, Promise<TfjsEngine>>();

function checkSetting(setting: string): asserts setting is BackendSetting {
  if (!(BACKEND_SETTINGS as readonly string[]).includes(setting)) {
    throw new UserError(`BACKEND: unknown backend "${setting}"; expected one of ${BACKEND_SETTINGS.join(', ')}`);
  }
}

/** Whether a package resolves from here (without loading it). */
export function installed(pkg: string): boolean {
  try {
    createRequire(import.meta.url).resolve(pkg);
    return true;
  } catch {
    return false;
  }
}

/**
 * The engine a setting stands for, without loading anything (cache keys hold it): `auto` is
 * tensorflow-gpu or tensorflow when their optional package is installed, else onnxruntime.
 */
export function resolveBackend(setting: BackendSetting = 'auto'): BackendName {
  checkSetting(setting);
  if (setting !== 'auto') return setting;
  if (installed(NODE_PACKAGES['tensorflow-gpu'])) return 'tensorflow-gpu';
  if (installed(NODE_PACKAGES.tensorflow)) return 'tensorflow';
  return 'onnxruntime';
}

/**
 * Loads the training engine. `auto` takes the first of tensorflow-gpu, tensorflow that loads, else
 * onnxruntime, which starts nothing here (its sessions are made by the kernel). An explicitly
 * requested backend that cannot load is a UserError saying why and how to install it. tfjs is
 * imported only for a tfjs backend, so the default path never starts it.
 */
export async function selectBackend(setting: BackendSetting = 'auto'): Promise<SelectedBackend> {
  checkSetting(setting);
  if (setting === 'onnxruntime') return ortEngine();
  if (setting !== 'auto') return selectTfjsBackend(setting);
  const skipped: string[] = [];
  for (const name of ['tensorflow-gpu', 'tensorflow'] as const) {
    if (!installed(NODE_PACKAGES[name])) continue;
    try {
      return { ...(await activate(await load(name))), skipped };
    } catch (e) {
      skipped.push(messageOf(e));
    }
  }
  return { ...ortEngine(), skipped };
}

/** A tfjs backend, loaded and made tfjs's active one (for the tfjs kernel and its tests). */
export async function selectTfjsBackend(name: TfjsBackendName): Promise<TfjsEngine> {
  checkSetting(name);
  return activate(await load(name));
}

function ortEngine(): OrtEngine {
  return { name: 'onnxruntime', description: 'onnxruntime (onnxruntime-node, CPU)' };
}

function load(name: TfjsBackendName): Promise<TfjsEngine> {
  let pending = loads.get(name);
  if (!pending) {
    pending = name === 'wasm' ? loadWasm() : name === 'cpu' ? loadCpu() : loadNode(name);
    loads.set(name, pending);
  }
  return pending;
}

async function activate(b: TfjsEngine): Promise<TfjsEngine> {
  if (b.tf.getBackend() !== b.tfBackend && !(await b.tf.setBackend(b.tfBackend))) {
    throw new Error(`tfjs backend ${b.tfBackend} was loaded but could not be activated`);
  }
  return b;
}

async function importTfjs(): Promise<Tf> {
  const mod = (await import('@tensorflow/tfjs')) as Tf & { default?: Tf };
  const tf = mod.default ?? mod;
  // Prod mode drops tfjs's debug checks and its console banners ("looks like you are running TensorFlow.js in Node.js").
  if (!tf.env().getBool('PROD')) tf.enableProdMode();
  return tf;
}

async function loadCpu(): Promise<TfjsEngine> {
  const tf = await importTfjs();
  if (!(await tf.setBackend('cpu'))) throw new UserError("BACKEND: cpu: tfjs's plain JavaScript backend failed to initialise");
  return { name: 'cpu', tf, tfBackend: 'cpu', description: 'cpu (tfjs plain JavaScript)' };
}

/**
 * tfjs's WebAssembly backend, single-threaded: tfjs-backend-wasm switches its threaded build off in
 * Node, and starting it anyway needed global patching whose start-up sometimes never settled.
 */
async function loadWasm(): Promise<TfjsEngine> {
  const tf = await importTfjs();
  let wasm: typeof import('@tensorflow/tfjs-backend-wasm');
  try {
    const mod = (await import('@tensorflow/tfjs-backend-wasm')) as typeof import('@tensorflow/tfjs-backend-wasm') & { default?: typeof import('@tensorflow/tfjs-backend-wasm') };
    wasm = mod.default ?? mod;
  } catch (e) {
    throw new UserError(`BACKEND: wasm: @tensorflow/tfjs-backend-wasm could not be loaded: ${messageOf(e)}`, ['reinstall the dependencies: npm ci'], { cause: e });
  }
  // The .wasm binaries sit next to the package's Node entry point (dist/); say so explicitly rather than rely on Emscripten's guess.
  const dist = path.dirname(createRequire(import.meta.url).resolve('@tensorflow/tfjs-backend-wasm'));
  wasm.setWasmPaths(dist + path.sep);
  tf.env().set('WASM_HAS_MULTITHREAD_SUPPORT', false);
  await withoutNewProcessHandlers(async () => {
    if (!(await tf.setBackend('wasm'))) throw new UserError('BACKEND: wasm: the WebAssembly backend failed to initialise', ['try BACKEND: onnxruntime or cpu']);
  });
  const simd = await tf.env().getAsync('WASM_HAS_SIMD_SUPPORT');
  return { name: 'wasm', tf, tfBackend: 'wasm', description: `wasm (${simd ? 'SIMD' : 'no SIMD'}, 1 thread)` };
}

/**
 * Emscripten's Node glue adds uncaughtException/unhandledRejection handlers that rethrow, which makes
 * any later crash of the process print a line of minified Emscripten source; Node's defaults do the same job.
 */
async function withoutNewProcessHandlers(run: () => Promise<void>): Promise<void> {
  const uncaught = new Set(process.listeners('uncaughtException'));
  const rejection = new Set(process.listeners('unhandledRejection'));
  try {
    await run();
  } finally {
    for (const l of process.listeners('uncaughtException')) if (!uncaught.has(l)) process.removeListener('uncaughtException', l);
    for (const l of process.listeners('unhandledRejection')) if (!rejection.has(l)) process.removeListener('unhandledRejection', l);
  }
}

async function loadNode(name: 'tensorflow-gpu' | 'tensorflow'): Promise<TfjsEngine> {
  const pkg = NODE_PACKAGES[name];
  let mod: Tf & { default?: Tf };
  try {
    // A variable specifier: the packages are optional and usually absent, so nothing may resolve them at build time.
    const specifier: string = pkg;
    mod = (await import(specifier)) as Tf & { default?: Tf };
  } catch (e) {
    const code = (e as { code?: string }).code;
    const missing = (code === 'ERR_MODULE_NOT_FOUND' || code === 'MODULE_NOT_FOUND') && messageOf(e).includes(pkg);
    const why = missing
      ? `${pkg} is not installed (it is an optional dependency whose installer downloads libtensorflow, which needs network access)`
      : `${pkg} is installed but failed to load: ${messageOf(e)}`;
    const gpu = name === 'tensorflow-gpu' ? ' (Linux x86-64 with an NVIDIA GPU, CUDA and cuDNN as its README lists)' : '';
    const how = missing
      ? [`install it, with network access: npm install ${pkg}${gpu}`]
      : [`its native part (libtensorflow) is missing or broken; rebuild it with network access: npm rebuild ${pkg}${gpu}`];
    throw new UserError(`BACKEND: ${name}: ${why}`, [...how, 'or set BACKEND to auto (tensorflow-gpu, else tensorflow, else onnxruntime), onnxruntime, wasm or cpu'], { cause: e });
  }
  const tf = mod.default ?? mod;
  if (!(await tf.setBackend('tensorflow'))) throw new UserError(`BACKEND: ${name}: ${pkg} loaded but its tensorflow backend failed to initialise`);
  if (!tf.env().getBool('PROD')) tf.enableProdMode();
  return { name, tf, tfBackend: 'tensorflow', description: `${name} (${pkg})` };
}
