// PEFT export: the zip holds what PEFT writes (the fixture adapter's config text, tensor table and data bytes),
// reads back through the project's adapter reader with identical tensors, and is deterministic across clocks and
// time zones.
import { PROJECTIONS } from '../../../src/core/mistral.ts';
import { unzipSync } from 'fflate';
import { afterEach, describe, expect, it, vi } from 'vitest';
import { adapterReadme, peftFiles, peftZip } from '../../../src/export/index.ts';
import { baseReference } from '../../../src/export/peft.ts';
import { FinetuneError } from '../../../src/core/errors.ts';
import { mulberry32 } from '../../../src/engine/reference/common.ts';
import { createAdapter, parseAdapter, peftKey, type LoraAdapter } from '../../../src/model/lora-adapter.ts';
import { parseMistralConfig } from '../../../src/model/config.ts';
import { parseSafetensorsHeader, parseSafetensorsHeaderBytes } from '../../../src/model/safetensors.ts';
import { fixtureBytes, fixtureJson, TINY_ADAPTER, TINY_MISTRAL } from '../model/helpers.ts';
import { proseOutsideCode } from '../../helpers/markdown-prose.ts';

const base = parseMistralConfig(fixtureJson(`${TINY_MISTRAL}/config.json`));
const fixtureConfigText = new TextDecoder().decode(fixtureBytes(`${TINY_ADAPTER}/adapter_config.json`));
const fixtureWeights = fixtureBytes(`${TINY_ADAPTER}/adapter_model.safetensors`);
const decoder = new TextDecoder();

async function fixtureAdapter(): Promise<LoraAdapter> {
  return parseAdapter(JSON.parse(fixtureConfigText), fixtureWeights, { base });
}

/** A trained-looking adapter: rsLoRA, three modules, random A and B. */
function randomAdapter(): LoraAdapter {
  const rnd = mulberry32(7);
  const a = createAdapter(base, { r: 3, alpha: 6, dropout: 0.05, targetModules: ['v_proj', 'q_proj', 'down_proj'], useRslora: true, baseModel: 'mistralai/Mistral-7B-Instruct-v0.2', random: rnd });
  for (const layer of a.tensors) for (const p of Object.values(layer)) for (let i = 0; i < p.B.length; i++) p.B[i] = rnd() - 0.5;
  return a;
}

async function readBack(files: Record<string, Uint8Array>, prefix = ''): Promise<LoraAdapter> {
  return parseAdapter(JSON.parse(decoder.decode(files[`${prefix}adapter_config.json`])), files[`${prefix}adapter_model.safetensors`], { base });
}

function expectSameTensors(a: LoraAdapter, b: LoraAdapter): void {
  expect(b.layers).toBe(a.layers);
  expect(b.dims).toEqual(a.dims);
  let pairs = 0;
  a.tensors.forEach((layer, l) => {
    expect(Object.keys(b.tensors[l]).sort()).toEqual(Object.keys(layer).sort());
    for (const m of PROJECTIONS) {
      const p = layer[m];
      if (!p) continue;
      const q = b.tensors[l][m]!;
      // Bitwise identical (F32 in, F32 out).
      expect(new Uint32Array(q.A.buffer, q.A.byteOffset, q.A.length)).toEqual(new Uint32Array(p.A.buffer, p.A.byteOffset, p.A.length));
      expect(new Uint32Array(q.B.buffer, q.B.byteOffset, q.B.length)).toEqual(new Uint32Array(p.B.buffer, p.B.byteOffset, p.B.length));
      pairs++;
    }
  });
  expect(pairs).toBeGreaterThan(0);
}

afterEach(() => {
  vi.useRealTimers();
});

describe('peftZip', () => {
  it('zips the fixture adapter into the files PEFT wrote (same config text, tensor table and data bytes), plus a README', async () => {
    const a = await fixtureAdapter();
    const files = unzipSync(peftZip(a));
    expect(Object.keys(files)).toEqual(['adapter_config.json', 'adapter_model.safetensors', 'README.md']);
    expect(decoder.decode(files['adapter_config.json'])).toBe(fixtureConfigText);
    // The JSON header's spacing depends on the writer that made the file (the fixture's was re-serialised); what a
    // reader sees must not: the same tensors with the same dtypes, shapes and data offsets, and the same data bytes.
    const ours = files['adapter_model.safetensors'];
    const [h, hf] = [parseSafetensorsHeaderBytes(ours), parseSafetensorsHeaderBytes(fixtureWeights)];
    const table = (x: typeof h) => [...x.tensors.values()].map((t) => [t.name, t.dtype, t.shape, t.begin, t.end]);
    expect(table(h)).toEqual(table(hf));
    expect(h.metadata).toEqual(hf.metadata);
    expect(ours.subarray(h.dataOffset)).toEqual(fixtureWeights.subarray(hf.dataOffset));
    expectSameTensors(a, await readBack(files));
  });

  it('round-trips a new rsLoRA adapter with the config fields and tensor names PEFT writes', async () => {
    const a = randomAdapter();
    const files = unzipSync(peftZip(a));
    const back = await readBack(files);
    expectSameTensors(a, back);
    expect(back.config).toMatchObject({ r: 3, loraAlpha: 6, loraDropout: 0.05, useRslora: true, targetModules: ['q_proj', 'v_proj', 'down_proj'], baseModel: 'mistralai/Mistral-7B-Instruct-v0.2' });
    expect(back.scaling).toBeCloseTo(6 / Math.sqrt(3), 12);

    const cfg = JSON.parse(decoder.decode(files['adapter_config.json'])) as Record<string, unknown>;
    expect(cfg).toMatchObject({
      peft_type: 'LORA',
      task_type: 'CAUSAL_LM',
      r: 3,
      lora_alpha: 6,
      lora_dropout: 0.05,
      use_rslora: true,
      bias: 'none',
      fan_in_fan_out: false,
      inference_mode: true,
      base_model_name_or_path: 'mistralai/Mistral-7B-Instruct-v0.2',
      modules_to_save: null,
      use_dora: false,
    });
    expect([...(cfg.target_modules as string[])].sort()).toEqual(['down_proj', 'q_proj', 'v_proj']);
    // PEFT writes json.dumps(indent=2, sort_keys=True): keys sorted.
    expect(Object.keys(cfg)).toEqual(Object.keys(cfg).sort());

    const header = await parseSafetensorsHeader(files['adapter_model.safetensors']);
    expect(header.metadata).toEqual({ format: 'pt' });
    const expectedNames: string[] = [];
    for (let l = 0; l < base.layers; l++) for (const m of ['q_proj', 'v_proj', 'down_proj'] as const) expectedNames.push(peftKey(l, m, 'A'), peftKey(l, m, 'B'));
    expect([...header.tensors.keys()].sort()).toEqual(expectedNames.sort());
    expect(header.tensors.get('base_model.model.model.layers.1.self_attn.q_proj.lora_A.weight')).toMatchObject({ dtype: 'F32', shape: [3, 128] });
    expect(header.tensors.get('base_model.model.model.layers.1.self_attn.q_proj.lora_B.weight')).toMatchObject({ dtype: 'F32', shape: [128, 3] });
    expect(header.tensors.get('base_model.model.model.layers.0.mlp.down_proj.lora_A.weight')).toMatchObject({ dtype: 'F32', shape: [3, 448] });
    expect(header.tensors.get('base_model.model.model.layers.0.mlp.down_proj.lora_B.weight')).toMatchObject({ dtype: 'F32', shape: [128, 3] });
  });

  it('is deterministic: same bytes at another time and in other time zones, with a fixed 1980-01-01 12:00 mtime', async () => {
    const a = await fixtureAdapter();
    const savedTz = process.env.TZ;
    const zips: Uint8Array[] = [];
    try {
      vi.useFakeTimers();
      const cases: [string, string][] = [
        ['UTC', '2024-03-01T10:00:00Z'],
        ['Pacific/Kiritimati', '2031-07-15T23:59:58Z'],
        ['America/Los_Angeles', '2025-11-02T09:30:00Z'],
      ];
      for (const [tz, now] of cases) {
        process.env.TZ = tz;
        vi.setSystemTime(new Date(now));
        zips.push(peftZip(a));
      }
    } finally {
      if (savedTz === undefined) delete process.env.TZ;
      else process.env.TZ = savedTz;
    }
    expect(zips[1]).toEqual(zips[0]);
    expect(zips[2]).toEqual(zips[0]);
    // Every local file header (PK\3\4) carries DOS time 12:00:00 and date 1980-01-01.
    const z = zips[0];
    const dv = new DataView(z.buffer, z.byteOffset, z.byteLength);
    let headers = 0;
    for (let i = 0; i + 30 <= z.length; i++) {
      if (dv.getUint32(i, true) !== 0x04034b50) continue;
      const nameLen = dv.getUint16(i + 26, true);
      const name = decoder.decode(z.subarray(i + 30, i + 30 + nameLen));
      if (!['adapter_config.json', 'adapter_model.safetensors', 'README.md'].includes(name)) continue;
      expect(dv.getUint16(i + 10, true)).toBe(12 << 11);
      expect(dv.getUint16(i + 12, true)).toBe((0 << 9) | (1 << 5) | 1);
      headers++;
    }
    expect(headers).toBe(3);
  });

  it('nests the files in a folder when asked, and honours readme: false, a custom README and extra files', async () => {
    const a = randomAdapter();
    const inFolder = unzipSync(peftZip(a, { folder: 'my-adapter/' }));
    expect(Object.keys(inFolder)).toEqual(['my-adapter/adapter_config.json', 'my-adapter/adapter_model.safetensors', 'my-adapter/README.md']);
    expectSameTensors(a, await readBack(inFolder, 'my-adapter/'));

    expect(Object.keys(unzipSync(peftZip(a, { readme: false })))).toEqual(['adapter_config.json', 'adapter_model.safetensors']);
    const custom = unzipSync(peftZip(a, { readme: '# mine\n', extra: { 'adapter.gguf': new Uint8Array([1, 2, 3]), 'notes.txt': 'hi' } }));
    expect(decoder.decode(custom['README.md'])).toBe('# mine\n');
    expect(custom['adapter.gguf']).toEqual(new Uint8Array([1, 2, 3]));
    expect(decoder.decode(custom['notes.txt'])).toBe('hi');

    for (const bad of ['../x', 'a/b', '', 'adapter_config.json']) {
      expect(() => peftZip(a, { extra: { [bad]: 'x' } })).toThrow(FinetuneError);
    }
    expect(() => peftZip(a, { folder: '../up' })).toThrow(FinetuneError);
  });

  it('peftFiles gives the same files as the zip holds', async () => {
    const a = await fixtureAdapter();
    const files = peftFiles(a);
    const zipped = unzipSync(peftZip(a));
    expect(Object.keys(files)).toEqual(Object.keys(zipped));
    for (const k of Object.keys(files)) expect(zipped[k]).toEqual(files[k]);
  });
});

describe('adapterReadme', () => {
  it('says how to load the adapter with PEFT, vLLM and Ollama', async () => {
    const text = adapterReadme(await fixtureAdapter(), { name: 'tiny' });
    expect(text).toContain('PeftModel.from_pretrained(base, "./adapter")');
    // The fixture's base_model_name_or_path is a local name, not a Hub id: the README says where its files go.
    expect(text).toContain('base_path = "./tiny-mistral"  # the folder holding tiny-mistral\'s config.json and weights');
    expect(text).toContain('AutoModelForCausalLM.from_pretrained(base_path, torch_dtype="auto")');
    expect(text).toContain('vllm serve ./tiny-mistral --enable-lora --lora-modules tiny=./adapter');
    expect(text).not.toContain('--max-lora-rank');
    expect(text).toContain('FROM ./base-model.gguf\nADAPTER ./adapter\n');
    expect(text).toContain('r = 4, lora_alpha = 8');
    expect(text).not.toContain('llama-cli');
  });

  it('raises vLLM’s rank limit for r > 16 and documents a shipped GGUF', () => {
    const a = createAdapter(base, { r: 40, alpha: 16, targetModules: ['q_proj'], random: mulberry32(1) });
    const text = adapterReadme(a, { ggufFile: 'adapter.gguf' });
    expect(text).toContain('--max-lora-rank 64');
    expect(text).toContain('mistralai/Mistral-7B-Instruct-v0.2');
    // The GGUF ships in the same zip as the PEFT pair, unzipped into ./adapter as the README says: every snippet names
    // it there (Ollama's ADAPTER and llama.cpp's --lora once said ./adapter.gguf, beside the folder, where it is not).
    expect(text).toContain('Unzip them into a folder, here `./adapter`.');
    expect(text).toContain('llama-cli -m base-model.gguf --lora ./adapter/adapter.gguf');
    // Mistral-7B-Instruct-v0.2 from the Hub: Ollama's own unquantised tag of that very model.
    expect(text).toContain('FROM mistral:7b-instruct-v0.2-fp16\nADAPTER ./adapter/adapter.gguf\n');
    expect(text).not.toMatch(/[ \n]\.\/adapter\.gguf|--lora adapter\.gguf/);
  });

  // base_model_name_or_path is whatever the imported adapter_config.json (or --base-model, or a picked file's name) says:
  // the README wrote it raw in its title, its prose and a Python comment, so HTML in it was live on a Hub model card,
  // and a line break in it ended the title or closed the Python block early, the rest read as Markdown and HTML.
  it("keeps a local base's name inert: in a code span in prose, on one line in the Python comment", async () => {
    const config = JSON.parse(fixtureConfigText) as Record<string, unknown>;
    const img = '<img src=x onerror=alert(1)>';
    for (const name of [img, `m\n\n${img}`, `m\n\`\`\`\n${img}\n\`\`\``, `m\r\r${img}`]) {
      const a = await parseAdapter({ ...config, base_model_name_or_path: name }, fixtureWeights, { base });
      const readme = adapterReadme(a, { name: 'tiny', ggufFile: 'adapter.gguf' });
      expect(proseOutsideCode(readme).join('\n')).not.toContain('<img');
      // The fences of the four snippets (Python, vLLM, Modelfile, llama.cpp) and no other: none opened or closed by the name.
      expect(readme.split(/\r\n|\r|\n/).filter((l) => /^ {0,3}`{3,}/.test(l))).toEqual(['```python', '```', '```sh', '```', '```', '```', '```sh', '```']);
      expect(readme.split(/\r\n|\r|\n/)[0]).toMatch(/^# tiny: LoRA adapter for `+ ?m? *.*<img src=x onerror=alert\(1\)>.*`+$/);
    }
  });

  it('names a Hub base by its id and the revision that was loaded, in every snippet', () => {
    const a = createAdapter(base, { r: 4, alpha: 8, targetModules: ['q_proj'], baseModel: 'mistralai/Mistral-7B-Instruct-v0.2@pr/7', random: mulberry32(2) });
    expect(baseReference(a)).toEqual({ hub: 'mistralai/Mistral-7B-Instruct-v0.2', revision: 'pr/7' });
    const text = adapterReadme(a, { name: 'mine' });
    expect(text).toContain('from_pretrained("mistralai/Mistral-7B-Instruct-v0.2", revision="pr/7", torch_dtype="auto")');
    expect(text).toContain('vllm serve mistralai/Mistral-7B-Instruct-v0.2 --revision pr/7 --enable-lora');
    expect(text).not.toContain('@pr/7');
    expect(baseReference(createAdapter(base, { r: 1, alpha: 1, targetModules: ['q_proj'], baseModel: 'local files (a, b)', random: mulberry32(3) }))).toEqual({ local: 'local files (a, b)', folder: './local-files-a-b' });
  });
});
