import { expect } from 'chai';
import { mkdir, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { listRuns } from '../../src/runner/runs.js';
import { sentiment, tempDir, locationEnv } from '../helpers.js';

async function fakeRun(runsDir: string, rel: string, log: string[], result?: object): Promise<string> {
  const dir = path.join(runsDir, rel);
  await mkdir(dir, { recursive: true });
  await writeFile(path.join(dir, 'config.yaml'), 'SEED: 1\n');
  await writeFile(path.join(dir, 'log.txt'), log.map((l) => `2026-01-01T00:00:00.000Z ${l}\n`).join(''));
  if (result) await writeFile(path.join(dir, 'run.json'), JSON.stringify(result));
  return dir;
}

describe('listRuns', () => {
  it('lists run folders newest first with overrides, test accuracy and status', async () => {
    const runs = await tempDir();
    await fakeRun(runs, 'quick/2026-01-01T10-00-00Z', ['experiment experiments/quick.yaml {"SEED":3}', 'data: cached → /c/data/x'], {
      stages: [{ name: 'data', path: '/c/data/x' }],
      metrics: { test: { accuracy: 0.875 } },
    });
    await fakeRun(runs, 'quick/2026-01-02T10-00-00Z', ['experiment experiments/quick.yaml {}', 'failed: DATASET: no such folder']);
    await fakeRun(runs, 'sweep/t1/2026-01-03T10-00-00Z', ['experiment sweep.yaml {"HIDDEN_DIM":8}', 'interrupted']);
    await fakeRun(runs, 'quick/2026-01-03T10-00-00Z-1', ['experiment experiments/quick.yaml {}', 'data: cached → /c/data/x']);
    // A sweep's summary folder holds no config.yaml: not a run.
    await mkdir(path.join(runs, 'sweep/sweeps/2026-01-04T00-00-00Z'), { recursive: true });
    const found = await listRuns(runs);
    expect(found.map((r) => [r.experiment, r.time, r.status])).to.deep.equal([
      ['sweep/t1', '2026-01-03T10:00:00Z', 'interrupted'],
      ['quick', '2026-01-03T10:00:00Z', 'incomplete'],
      ['quick', '2026-01-02T10:00:00Z', 'failed'],
      ['quick', '2026-01-01T10:00:00Z', 'finished'],
    ]);
    expect(found[0].overrides).to.deep.equal({ HIDDEN_DIM: 8 });
    expect(found[2].error).to.equal('DATASET: no such folder');
    expect(found[3]).to.include({ test_accuracy: 0.875, file: 'experiments/quick.yaml' });
    expect(found[3].stages).to.deep.equal({ data: '/c/data/x' });
    expect(await listRuns(path.join(runs, 'absent'))).to.deep.equal([]);
  });

  it('sentiment runs shows a real run (table and --json)', async () => {
    const dir = await tempDir();
    const env = locationEnv(dir);
    const r = await sentiment(['run', 'experiments/quickstart.yaml', '--until', 'data', '--set', 'SEED=5'], env);
    expect(r.code, r.stderr).to.equal(0);
    const json = await sentiment(['runs', '--json'], env);
    expect(json.code, json.stderr).to.equal(0);
    const doc = JSON.parse(json.stdout);
    expect(doc.runs).to.have.length(1);
    expect(doc.runs[0]).to.include({ experiment: 'quickstart', status: 'finished' });
    expect(doc.runs[0].overrides).to.deep.equal({ SEED: 5 });
    const table = await sentiment(['runs'], env);
    expect(table.stdout).to.contain('quickstart').and.contain('SEED=5').and.contain('finished');
    const none = await sentiment(['runs', '--runs-dir', path.join(dir, 'nothing')], env);
    expect(none.code).to.equal(0);
    expect(none.stdout).to.contain('no runs yet');
  });
});
