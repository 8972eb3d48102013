import { existsSync, statSync } from 'node:fs';
import path from 'node:path';
import { DownloadError, LocalWriteError, downloadFile } from './download.js';
import { UserError } from './errors.js';
import { homeDir, hubEndpoint } from './settings.js';

/** Files a tokenizer needs (the rest of the folder is not read to tokenize). */
export const TOKENIZER_FILES = { required: ['tokenizer.json', 'tokenizer_config.json'], optional: ['special_tokens_map.json', 'config.json'] };

/** A MODEL value is a local folder when it looks like a path or names an existing folder; else a hub id. */
export function isLocalModel(model: string, baseDir: string): boolean {
  return /^(\.{1,2}[\\/]|[\\/]|~|[A-Za-z]:[\\/])/.test(model) || model === '.' || existsSync(path.resolve(baseDir, model));
}

export interface ModelFolder {
  /** Absolute folder in the Hugging Face layout. */
  dir: string;
  /** Hub id, or undefined for a local folder. */
  hubId?: string;
}

/**
 * A local folder holding `files.required` of MODEL: the folder itself when MODEL is a path, else the
 * cache's copy of the hub model, downloading what is missing.
 */
export async function resolveModelFolder(
  model: string,
  baseDir: string,
  cacheRoot: string,
  files: { required: string[]; optional?: string[] },
  onProgress?: (file: string, done: number, total?: number) => void,
): Promise<ModelFolder> {
  if (isLocalModel(model, baseDir)) {
    const dir = path.resolve(baseDir, model.replace(/^~(?=$|[\\/])/, homeDir()));
    if (!existsSync(dir) || !statSync(dir).isDirectory()) {
      throw new UserError(`MODEL: ${dir} is not a folder. MODEL is a Hugging Face model id or a local folder in the Hugging Face layout (config.json, tokenizer.json, onnx/model.onnx).`);
    }
    const missing = files.required.filter((f) => !existsSync(path.join(dir, f)));
    if (missing.length > 0) {
      throw new UserError(`MODEL: ${dir} has no ${missing.join(', ')}; a model folder in the Hugging Face layout holds config.json, tokenizer.json, tokenizer_config.json and onnx/model.onnx.`);
    }
    return { dir };
  }
  if (!/^[\w.-]+(\/[\w.-]+)?$/.test(model)) {
    throw new UserError(`MODEL: "${model}" is neither an existing folder nor a Hugging Face model id (owner/name).`);
  }
  const dir = path.join(cacheRoot, 'models', ...model.split('/'));
  const missing = files.required.filter((f) => !existsSync(path.join(dir, f)));
  if (missing.length === 0) return { dir, hubId: model };
  for (const file of missing) await downloadHubFile(model, file, dir, true, onProgress);
  for (const file of files.optional ?? []) {
    if (!existsSync(path.join(dir, file))) await downloadHubFile(model, file, dir, false, onProgress);
  }
  return { dir, hubId: model };
}

async function downloadHubFile(
  id: string,
  file: string,
  dir: string,
  required: boolean,
  onProgress?: (file: string, done: number, total?: number) => void,
): Promise<void> {
  const url = `${hubEndpoint()}/${id}/resolve/main/${file}`;
  try {
    await downloadFile(url, path.join(dir, file), { onProgress: (done, total) => onProgress?.(file, done, total) });
  } catch (e) {
    if (e instanceof DownloadError) {
      if (!required) return;
      throw offlineError(id, url, e.reason);
    }
    if (e instanceof LocalWriteError) throw new UserError(`MODEL: ${e.message}`);
    throw e;
  }
}

function offlineError(id: string, url: string, reason: string): UserError {
  return new UserError(
    `MODEL: could not download ${id} from ${url} (${reason}). Without network access, point MODEL at a local folder in the Hugging Face layout (config.json, tokenizer.json, onnx/model.onnx), for example --set MODEL=../shared/models/imdb-bert-tiny, or set HF_ENDPOINT to a reachable mirror.`,
  );
}
