// The plan's dtype options from a model's files: weights that are there but cannot be read are a warning (a load will
// refuse them), not only a clause inside `model.dtypeFrom`; weights that are simply not at hand (the Hub, a URL, a
// folder holding config.json alone) are no alarm.
import { copyFileSync, mkdirSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { nodeDirectory } from '../../../src/cli/node-source.ts';
import { parseHyperparams } from '../../../src/config/index.ts';
import { parseMistralConfig } from '../../../src/model/config.ts';
import { planDtypeOptions } from '../../../src/run/plan-dtype.ts';
import { planMemory } from '../../../src/run/planner.ts';
import { DEMO_MODEL, demoConfigFolders, JPEG_BYTES } from '../../helpers/demo-config-folders.ts';

const DEMO = DEMO_MODEL;
const JPEG = JPEG_BYTES;

describe('planDtypeOptions', () => {
  /** A folder with the demo's config.json and whatever `fill` puts beside it. */
  const folder = demoConfigFolders('plan-dtype-');

  it('reads the stored dtype from whole weights, with no warning', async () => {
    expect(await planDtypeOptions(nodeDirectory(DEMO), true)).toEqual({ storedDtype: 'bfloat16' });
  });

  it('a model.safetensors that is not a safetensors file: the reason, as a warning a load would refuse', async () => {
    const dir = folder('jpeg', (d) => writeFileSync(join(d, 'model.safetensors'), JPEG));
    const o = await planDtypeOptions(nodeDirectory(dir), true);
    expect(o.weightsUnreadable).toMatch(/model\.safetensors: not a safetensors file: header length \d+ is absurd/);
    expect(o.headersNotRead).toBe(`they could not be read (${o.weightsUnreadable})`);
  });

  it('a truncated model.safetensors', async () => {
    const dir = folder('truncated', (d) => writeFileSync(join(d, 'model.safetensors'), readFileSync(join(DEMO, 'model.safetensors')).subarray(0, 5000)));
    expect((await planDtypeOptions(nodeDirectory(dir), true)).weightsUnreadable).toMatch(/the file is truncated/);
  });

  it('an index whose shards are missing (it said "there is no .safetensors file", as for config.json alone)', async () => {
    const dir = folder('index', (d) => copyFileSync('test/fixtures/tiny-mistral/model.safetensors.index.json', join(d, 'model.safetensors.index.json')));
    expect((await planDtypeOptions(nodeDirectory(dir), true)).weightsUnreadable).toMatch(/shard "model-0000\d-of-00003\.safetensors" named by model\.safetensors\.index\.json is missing/);
  });

  it('a model.safetensors that is a directory (a folder lists only its files: the caller names it)', async () => {
    const dir = folder('directory', (d) => mkdirSync(join(d, 'model.safetensors')));
    const o = await planDtypeOptions(nodeDirectory(dir), true, { notFiles: ['model.safetensors'] });
    expect(o.weightsUnreadable).toBe('"model.safetensors" is not a file (a directory?)');
    expect(o.headersNotRead).toBe(`they could not be read (${o.weightsUnreadable})`);
  });

  it('no alarm for such a directory beside whole sharded weights, which a load reads through their index', async () => {
    // tiny-mistral's files over the demo's config.json: its own config and shards.
    const dir = folder('sharded', (d) => {
      for (const f of readdirSync('test/fixtures/tiny-mistral')) copyFileSync(join('test/fixtures/tiny-mistral', f), join(d, f));
      mkdirSync(join(d, 'model.safetensors'));
    });
    expect(await planDtypeOptions(nodeDirectory(dir), true, { notFiles: ['model.safetensors'] })).toEqual({ storedDtype: 'bfloat16' });
  });

  it('no alarm where the weights are simply not at hand: a folder with config.json alone, the Hub or a URL', async () => {
    const dir = folder('config-only');
    expect(await planDtypeOptions(nodeDirectory(dir), true)).toEqual({ headersNotRead: 'there is no .safetensors file beside config.json' });
    expect(await planDtypeOptions(nodeDirectory(dir), false)).toEqual({ headersNotRead: 'only config.json is downloaded before a load' });
  });
});

describe('planMemory with weights that cannot be read', () => {
  const config = parseMistralConfig(JSON.parse(readFileSync(join(DEMO, 'config.json'), 'utf8')));
  const hp = parseHyperparams({ max_seq_len: 64 });

  it('warns that they could not be read, why, and that a run refuses them', () => {
    const reason = 'x/model.safetensors: the file is truncated';
    const plan = planMemory(config, hp, { headersNotRead: `they could not be read (${reason})`, weightsUnreadable: reason });
    expect(plan.warnings).toContain(`the weights could not be read (${reason}): finetune train (and Load model on the page) refuses this model until they are replaced; this plan is from config.json alone`);
  });

  it('says nothing of the kind when they were only not read', () => {
    const plan = planMemory(config, hp, { headersNotRead: 'there is no .safetensors file beside config.json' });
    expect(plan.warnings.join('\n')).not.toMatch(/could not be read/);
  });
});
