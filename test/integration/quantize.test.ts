import { expect } from 'chai';
import { readFile, readdir } from 'node:fs/promises';
import path from 'node:path';
import { tinyExperiment } from '../fixtures/trained.js';
import { NO_TRACE, sentiment, tempDir } from '../helpers.js';

interface RunJson {
  stages: { name: string; cached: boolean; path: string; info: Record<string, unknown> }[];
}

describe('ENCODER_QUANTIZE: int8 through run and infer', function () {
  this.timeout(600_000);
  let dir: string;
  let file: string;
  let env: Record<string, string>;

  before(async () => {
    dir = await tempDir();
    ({ file, env } = await tinyExperiment(dir, { train: 200, test: 60, settings: 'MODEL: ./model\nDATASET: ./reviews\nMAX_LENGTH: 32\nN_EPOCHS: 1\nHIDDEN_DIM: 8\nBACKEND: onnxruntime\nTEXT: the movie was great\n' }));
  });

  it('encodes with the quantized encoder (a cache entry of its own), and infer --config predicts as the run did', async () => {
    const float = await sentiment(['run', file, '--json'], env);
    expect(float.code, float.stderr).to.equal(0);
    const int8 = await sentiment(['run', file, '--set', 'ENCODER_QUANTIZE=int8', '--json'], env);
    expect(int8.code, int8.stderr).to.equal(0);
    expect(int8.stderr).to.match(/quantized the encoder to int8: \d+ MatMuls/);
    const stage = (r: { stdout: string }, name: string) => (JSON.parse(r.stdout) as RunJson).stages.find((s) => s.name === name)!;
    // data and tokenize are shared; encode and everything after it are new entries.
    for (const name of ['data', 'tokenize']) expect(stage(int8, name).cached, name).to.equal(true);
    expect(stage(int8, 'encode').cached).to.equal(false);
    expect(stage(int8, 'encode').path).to.not.equal(stage(float, 'encode').path);
    expect(stage(int8, 'encode').info.quantize).to.equal('int8');
    expect(stage(float, 'encode').info.quantize).to.equal('none');
    const entries = (await readdir(path.join(env.SENTIMENT_CACHE_DIR, 'quantize'))).filter((e) => /^[0-9a-f]{64}$/.test(e));
    expect(entries).to.have.length(1);
    // The run's log names the quantized encoder, so `cache gc` keeps it while the run is kept.
    const log = await readFile(path.join((JSON.parse(int8.stdout) as { run_dir: string }).run_dir, 'log.txt'), 'utf8');
    expect(log).to.include(`ENCODER_QUANTIZE int8 → ${path.join(env.SENTIMENT_CACHE_DIR, 'quantize', entries[0])}`);

    const predicted = await sentiment(['infer', '--config', file, '--set', 'ENCODER_QUANTIZE=int8', '--text', 'the movie was great', '--json'], env);
    expect(predicted.code, predicted.stderr).to.equal(0);
    const probability = (JSON.parse(predicted.stdout) as { probability: number }).probability;
    expect(probability).to.be.closeTo(stage(int8, 'infer').info.probability as number, 1e-6);
    expect(probability).to.not.equal(stage(float, 'infer').info.probability);

    // A rerun hits every entry; the quantized encoder is not made again.
    const again = await sentiment(['run', file, '--set', 'ENCODER_QUANTIZE=int8', '--json'], env);
    expect(again.code, again.stderr).to.equal(0);
    expect((JSON.parse(again.stdout) as RunJson).stages.every((s) => s.cached)).to.equal(true);
    expect(again.stderr).to.not.match(/quantized the encoder/);
  });

  it('refuses a value it does not know, naming the key and the choices', async () => {
    const r = await sentiment(['run', file, '--set', 'ENCODER_QUANTIZE=int4'], env);
    expect(r.code).to.not.equal(0);
    expect(r.stderr).to.match(/ENCODER_QUANTIZE/);
    expect(r.stderr).to.match(/none|int8/);
    expect(r.stderr).to.not.match(NO_TRACE);
  });
});
