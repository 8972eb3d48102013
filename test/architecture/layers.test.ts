import { expect } from 'chai';
import { readdirSync, readFileSync } from 'node:fs';
import path from 'node:path';
import { REPO } from '../helpers.js';

/**
 * Imports only point down this list (a folder may import its own files and any folder below it):
 * the CLI, orchestration, the stages, the libraries they use, and the ground floor.
 */
const LAYERS: string[][] = [
  ['commands'],
  ['cli'],
  ['runner'],
  ['stages'],
  ['inference'],
  ['training'],
  ['model', 'encoder', 'data', 'features'],
  ['config'],
  ['core'],
];

const SRC = path.join(REPO, 'src');
const layerOf = (folder: string) => LAYERS.findIndex((names) => names.includes(folder));

function sourceFiles(dir: string): string[] {
  return readdirSync(dir, { withFileTypes: true }).flatMap((e) => (e.isDirectory() ? sourceFiles(path.join(dir, e.name)) : e.name.endsWith('.ts') ? [path.join(dir, e.name)] : []));
}

/** Every relative import of a file (static, type-only and dynamic), as a folder under src/. */
function importedFolders(file: string): { spec: string; folder: string }[] {
  const text = readFileSync(file, 'utf8');
  const specs = [...text.matchAll(/(?:from|import)\s*\(?\s*'(\.{1,2}\/[^']+)'/g)].map((m) => m[1]);
  return specs.map((spec) => ({ spec, folder: path.relative(SRC, path.resolve(path.dirname(file), spec)).split(path.sep)[0] }));
}

describe('architecture: layers', () => {
  const files = sourceFiles(SRC);

  it('places every folder of src/ in a layer', () => {
    const folders = [...new Set(files.map((f) => path.relative(SRC, f).split(path.sep)[0]))];
    expect(folders.filter((f) => layerOf(f) < 0)).to.deep.equal([]);
  });

  it('has no import that points up a layer, nor across folders of one layer', () => {
    const upward: string[] = [];
    for (const file of files) {
      const own = path.relative(SRC, file).split(path.sep)[0];
      for (const { spec, folder } of importedFolders(file)) {
        if (folder === own) continue;
        if (layerOf(folder) <= layerOf(own)) upward.push(`${path.relative(REPO, file)} imports ${spec}`);
      }
    }
    expect(upward).to.deep.equal([]);
  });

  it('runner imports no concrete stage (it is given the list of stages)', () => {
    const concrete = files
      .filter((f) => path.relative(SRC, f).startsWith(`runner${path.sep}`))
      .flatMap((f) => importedFolders(f).filter((i) => i.folder === 'stages' && !/\/stage\.js$/.test(i.spec)).map((i) => `${path.relative(REPO, f)} imports ${i.spec}`));
    expect(concrete).to.deep.equal([]);
  });

  it('would catch an upward import (the check itself can fail)', () => {
    const probe = path.join(SRC, 'core', 'cache.ts');
    const found = importedFolders(probe).map((i) => i.folder);
    expect(found.every((f) => layerOf(f) >= layerOf('core'))).to.equal(true);
    expect(layerOf('runner')).to.be.below(layerOf('core'));
  });
});
