import { expect } from 'chai';
import { execFile } from 'node:child_process';
import { existsSync } from 'node:fs';
import { mkdir, readFile, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { promisify } from 'node:util';
import { REPO, tempDir } from '../helpers.js';

const run = promisify(execFile);

/** `npm ci` must not fetch ONNX Runtime's CUDA providers (offline installs), and npm must not warn about project config. */
describe('npm install settings', function () {
  this.timeout(120_000);

  it('npm prints no "Unknown project config" warning in the project', async () => {
    const { stderr } = await run('npm', ['pkg', 'get', 'name'], { cwd: REPO });
    expect(stderr).to.not.contain('Unknown project config');
  });

  it("package.json's allowScripts keeps npm from running onnxruntime-node's postinstall (the CUDA download)", async function () {
    const pkg = JSON.parse(await readFile(path.join(REPO, 'package.json'), 'utf8'));
    expect(pkg.allowScripts).to.deep.include({ 'onnxruntime-node': false });
    // A project with the same policy and a stand-in onnxruntime-node whose postinstall leaves a mark.
    const dir = await tempDir();
    await mkdir(path.join(dir, 'node_modules/onnxruntime-node'), { recursive: true });
    const mark = path.join(dir, 'postinstall-ran');
    await writeFile(
      path.join(dir, 'node_modules/onnxruntime-node/package.json'),
      JSON.stringify({ name: 'onnxruntime-node', version: '1.30.0', scripts: { postinstall: `node -e "require('fs').writeFileSync(process.env.MARK, '')"` } }),
    );
    const rebuild = async (allowScripts?: object) => {
      await writeFile(path.join(dir, 'package.json'), JSON.stringify({ name: 'p', version: '1.0.0', dependencies: { 'onnxruntime-node': '1.30.0' }, allowScripts }));
      await writeFile(
        path.join(dir, 'package-lock.json'),
        JSON.stringify({
          name: 'p',
          version: '1.0.0',
          lockfileVersion: 3,
          requires: true,
          packages: {
            '': { name: 'p', version: '1.0.0', dependencies: { 'onnxruntime-node': '1.30.0' } },
            'node_modules/onnxruntime-node': { version: '1.30.0', resolved: 'https://registry.npmjs.org/onnxruntime-node/-/onnxruntime-node-1.30.0.tgz', hasInstallScript: true },
          },
        }),
      );
      // The environment variable would skip the real script too: leave it out, so only the policy acts.
      const env: NodeJS.ProcessEnv = { ...process.env, MARK: mark };
      delete env.ONNXRUNTIME_NODE_INSTALL;
      await run('npm', ['rebuild', '--offline', '--no-audit', '--no-fund'], { cwd: dir, env });
    };
    await rebuild({ 'onnxruntime-node': false });
    if (existsSync(mark)) {
      console.log('      (skipped: this npm does not know allowScripts; export ONNXRUNTIME_NODE_INSTALL=skip before npm ci)');
      return this.skip();
    }
    await rebuild(undefined);
    expect(existsSync(mark), 'the stand-in postinstall runs without the policy').to.equal(true);
  });

  it("the README's CUDA command is the one onnxruntime-node's install script reads", async () => {
    const readme = await readFile(path.join(REPO, 'README.md'), 'utf8');
    const command = 'ONNXRUNTIME_NODE_INSTALL=cuda12 node node_modules/onnxruntime-node/script/install.js';
    expect(readme).to.contain(command);
    expect(await readFile(path.join(REPO, 'src/encoder/encoder.ts'), 'utf8')).to.contain(command);
    const utils = await readFile(path.join(REPO, 'node_modules/onnxruntime-node/script/install-utils.js'), 'utf8');
    expect(utils).to.contain('process.env.ONNXRUNTIME_NODE_INSTALL');
  });
});
