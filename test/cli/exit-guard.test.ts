import { expect } from 'chai';
import { execFile } from 'node:child_process';
import path from 'node:path';
import { REPO } from '../helpers.js';

/**
 * A process whose command never settles (an engine that never answers) must not exit 0. The script
 * starts like bin/run.js, then does what a stalled command does: holds an exit hook of signal-exit (the
 * copy write-file-atomic loads; restore-cursor holds one the same way while listr2 draws on a terminal),
 * the dependency that turned Node's exit 13 into 0, and awaits a promise that never settles.
 */
function runScript(options: { guard: boolean; settle: boolean }): Promise<{ code: number | null; stderr: string }> {
  const script = `
    import { guardExit, setActivity } from ${JSON.stringify(path.join(REPO, 'src/cli/exit-guard.ts'))};
    import { createRequire } from 'node:module';
    const guard = ${options.guard} ? guardExit('run') : undefined;
    const fromWriteFileAtomic = createRequire(createRequire(import.meta.url).resolve('write-file-atomic'));
    fromWriteFileAtomic('signal-exit').onExit(() => {});
    setActivity('train');
    await new Promise((resolve) => { if (${options.settle}) setTimeout(resolve, 10); });
    guard?.finished();`;
  return new Promise((resolve) => {
    execFile(process.execPath, ['--import', 'tsx', '--input-type=module', '-e', script], { cwd: REPO, timeout: 60_000 }, (error, _stdout, stderr) => {
      resolve({ code: error ? (typeof error.code === 'number' ? error.code : null) : 0, stderr });
    });
  });
}

describe('cli/exit-guard', () => {
  it('without the guard, a command stalled on an unsettled promise exits 0 (what the guard is for)', async () => {
    const r = await runScript({ guard: false, settle: false });
    expect(r.code).to.equal(0);
  });

  it('with it, the stalled command exits 1 and says which step did not finish', async () => {
    const r = await runScript({ guard: true, settle: false });
    expect(r.code).to.equal(1);
    expect(r.stderr).to.contain('Error: stopped before finishing train:');
    expect(r.stderr).not.to.match(/^\s+at /m);
  });

  it('a command that finishes exits 0 and says nothing', async () => {
    const r = await runScript({ guard: true, settle: true });
    expect(r).to.deep.equal({ code: 0, stderr: '' });
  });
});
