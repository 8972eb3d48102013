import { expect } from 'chai';
import { sentiment } from '../helpers.js';

describe('sentiment help', () => {
  it('run --help shows the experiment files argument', async () => {
    const r = await sentiment(['run', '--help']);
    expect(r.code, r.stderr).to.equal(0);
    expect(r.stdout).to.contain('$ sentiment run EXPERIMENT.yaml...');
    expect(r.stdout).to.match(/ARGUMENTS\s+\[EXPERIMENT\.YAML\.\.\.\]/);
  });

  it('`help run` prints the same help as `run --help`', async () => {
    const [viaHelp, viaFlag] = await Promise.all([sentiment(['help', 'run']), sentiment(['run', '--help'])]);
    expect(viaHelp.code, viaHelp.stderr).to.equal(0);
    expect(viaHelp.stdout).to.equal(viaFlag.stdout);
  });

  it('`help cache verify` and bare `help` work', async () => {
    const verify = await sentiment(['help', 'cache', 'verify']);
    expect(verify.code, verify.stderr).to.equal(0);
    expect(verify.stdout).to.contain('$ sentiment cache verify');
    const top = await sentiment(['help']);
    expect(top.code, top.stderr).to.equal(0);
    expect(top.stdout).to.match(/COMMANDS/).and.match(/\brun\b/);
  });
});
