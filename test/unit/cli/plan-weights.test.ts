// `finetune plan` on a folder whose weights are there but broken (not safetensors, truncated, a directory) said "fits"
// with no warning and nothing on stderr: the only trace was a clause inside "model.dtypeFrom". It now warns, in the JSON
// and on stderr; a folder with config.json alone (weights not at hand, planned on purpose) stays quiet. Its --help says
// what the exit status means.
import { copyFileSync, mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { main } from '../../../src/cli/main.ts';
import { demoConfigFolders, JPEG_BYTES } from '../../helpers/demo-config-folders.ts';

function capture() {
  const out: string[] = [];
  const err: string[] = [];
  return { io: { out: (l: string) => out.push(l), err: (l: string) => err.push(l) }, out, err };
}

const JPEG = JPEG_BYTES;

describe('finetune plan on weights it cannot read', () => {
  const folder = demoConfigFolders('plan-weights-');

  const plan = async (dir: string) => {
    const c = capture();
    const code = await main(['plan', '--model', dir, '--no-gpu'], c.io);
    return { code, err: c.err, plan: JSON.parse(c.out.join('\n')) as { verdict: string; warnings: string[] } };
  };

  it('a model.safetensors that is not safetensors (a JPEG): a warning in the plan and on stderr', async () => {
    const r = await plan(folder('jpeg', (d) => writeFileSync(join(d, 'model.safetensors'), JPEG)));
    // A plan was made: exit 0, whatever it says.
    expect(r.code).toBe(0);
    const warning = r.plan.warnings.find((w) => w.startsWith('the weights could not be read'));
    expect(warning).toMatch(/^the weights could not be read \(.*model\.safetensors: not a safetensors file: header length \d+ is absurd .*\): finetune train \(and Load model on the page\) refuses this model until they are replaced; this plan is from config\.json alone$/);
    expect(r.err).toContain(`warning: ${warning}`);
  });

  it('a model.safetensors that is a directory', async () => {
    const r = await plan(folder('directory', (d) => mkdirSync(join(d, 'model.safetensors'))));
    expect(r.plan.warnings).toContain('the weights could not be read ("model.safetensors" is not a file (a directory?)): finetune train (and Load model on the page) refuses this model until they are replaced; this plan is from config.json alone');
    expect(r.err.join('\n')).toMatch(/^warning: the weights could not be read \("model\.safetensors" is not a file/m);
  });

  it('an index naming shards that are not there', async () => {
    const r = await plan(folder('index', (d) => copyFileSync('test/fixtures/tiny-mistral/model.safetensors.index.json', join(d, 'model.safetensors.index.json'))));
    expect(r.plan.warnings.join('\n')).toMatch(/^the weights could not be read \(.*named by model\.safetensors\.index\.json is missing\)/m);
    expect(r.err.join('\n')).toMatch(/^warning: the weights could not be read/m);
  });

  it('config.json alone: planned from it, no alarm', async () => {
    const r = await plan(folder('config-only'));
    expect(r.code).toBe(0);
    expect(r.plan.warnings).toEqual([]);
    expect(r.err).toEqual([]);
  });

  it("--help documents the exit status: 0 whenever a plan was made, whatever its verdict", async () => {
    const c = capture();
    expect(await main(['plan', '--help'], c.io)).toBe(0);
    const help = [...c.out, ...c.err].join('\n').replace(/\s+/g, ' ');
    expect(help).toMatch(/exit status: 0 when a plan was made, whatever its verdict \(does-not-fit included: read "verdict"\)/);
  });
});
