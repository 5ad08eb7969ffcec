import { PROJECTIONS } from '../../../src/core/mistral.ts';
import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { nodeDirectory } from '../../../src/cli/node-source.ts';
import { adapterConfigJson, createAdapter, parseAdapter, parseLoraConfig, peftKey, readAdapter, writeAdapter, type LoraAdapter } from '../../../src/model/lora-adapter.ts';
import { parseMistralConfig } from '../../../src/model/config.ts';
import { openSafetensors, toFloat32, toFloat64, writeSafetensors } from '../../../src/model/safetensors.ts';
import { bytesSource, memoryFileSet } from '../../../src/model/source.ts';
import { mulberry32 } from '../../../src/engine/reference/common.ts';
import { errorOf, FIXTURES, fixtureBytes, fixtureJson, TINY_ADAPTER, TINY_MISTRAL } from './helpers.ts';

const base = parseMistralConfig(fixtureJson(`${TINY_MISTRAL}/config.json`));
const fixtureConfig = fixtureJson(`${TINY_ADAPTER}/adapter_config.json`) as Record<string, unknown>;
const fixtureWeights = fixtureBytes(`${TINY_ADAPTER}/adapter_model.safetensors`);

describe('reading a PEFT adapter', () => {
  it('reads the tiny-adapter fixture with config, scaling and per-layer A/B', async () => {
    const a = await readAdapter(nodeDirectory(TINY_ADAPTER), { base });
    expect(a.config).toMatchObject({
      r: 4,
      loraAlpha: 8,
      loraDropout: 0,
      targetModules: ['q_proj', 'k_proj', 'v_proj', 'o_proj', 'gate_proj', 'up_proj', 'down_proj'],
      useRslora: false,
      baseModel: 'tiny-mistral',
      layersToTransform: null,
      taskType: 'CAUSAL_LM',
      inferenceMode: true,
    });
    expect(a.scaling).toBe(2);
    expect(a.layers).toBe(2);
    expect(a.dims).toEqual({
      q_proj: { in: 128, out: 128 },
      k_proj: { in: 128, out: 32 },
      v_proj: { in: 128, out: 32 },
      o_proj: { in: 128, out: 128 },
      gate_proj: { in: 128, out: 448 },
      up_proj: { in: 128, out: 448 },
      down_proj: { in: 448, out: 128 },
    });
    for (let l = 0; l < 2; l++) {
      for (const m of PROJECTIONS) {
        const p = a.tensors[l][m]!;
        expect(p.A.length).toBe(4 * a.dims[m]!.in);
        expect(p.B.length).toBe(a.dims[m]!.out * 4);
      }
    }
  });

  it("holds the goldens' starting adapter: every tensor equals the golden's lora/<key> exactly", async () => {
    // test/fixtures/README.md: tiny-adapter is the point the goldens' gradients were taken at (an earlier copy held
    // the values after one AdamW step instead).
    const a = await readAdapter(nodeDirectory(TINY_ADAPTER), { base });
    const golden = await openSafetensors(bytesSource(fixtureBytes(`${FIXTURES}/golden_lora.safetensors`)));
    let checked = 0;
    for (let l = 0; l < 2; l++) {
      for (const m of PROJECTIONS) {
        for (const f of ['A', 'B'] as const) {
          const key = peftKey(l, m, f);
          const init = toFloat32(await golden.read(`lora/${key}`), golden.info(`lora/${key}`).dtype);
          const ours = a.tensors[l][m]![f];
          expect(ours.length).toBe(init.length);
          expect(ours.some((v) => v !== 0)).toBe(true);
          expect(Array.from(ours)).toEqual(Array.from(init));
          checked++;
        }
      }
    }
    expect(checked).toBe(28);
  });

  it('validates keys, ranks and shapes against the base model', async () => {
    const good = await openSafetensors(bytesSource(fixtureWeights));
    const all = await Promise.all(good.names().map(async (name) => ({ ...good.info(name), data: await good.read(name) })));
    const rewrite = (f: (t: (typeof all)[number]) => (typeof all)[number] | null): Uint8Array =>
      writeSafetensors(all.map(f).filter((t): t is (typeof all)[number] => t !== null), { format: 'pt' });

    const cases: [Uint8Array, RegExp][] = [
      [rewrite((t) => (t.name.endsWith('layers.1.self_attn.v_proj.lora_B.weight') ? null : t)), /missing base_model\.model\.model\.layers\.1\.self_attn\.v_proj\.lora_B\.weight/],
      [rewrite((t) => (t.name.includes('layers.0.mlp.up_proj') ? null : t)), /missing up_proj of layer 0/],
      [rewrite((t) => (t.name.includes('q_proj.lora_A') ? { ...t, name: t.name.replace('lora_A', 'lora_a') } : t)), /unexpected tensor name\(s\) "base_model\.model\.model\.layers\.0\.self_attn\.q_proj\.lora_a\.weight"/],
      [rewrite((t) => (t.name.includes('layers.0.self_attn.q_proj') ? { ...t, name: t.name.replace('self_attn', 'mlp') } : t)), /unexpected tensor name/],
      [
        rewrite((t) => (t.name.endsWith('layers.0.self_attn.k_proj.lora_B.weight') ? { ...t, shape: [64, 2], data: t.data.subarray(0, 512) } : t)),
        /lora_B must be \[out, r\]/,
      ],
      [
        rewrite((t) => (t.name.endsWith('layers.0.mlp.down_proj.lora_A.weight') ? { ...t, shape: [4, 128], data: t.data.subarray(0, 2048) } : t)),
        /down_proj of layer 0: .* do not fit the base model's \[128, 448\] weight/,
      ],
      [rewrite((t) => (t.name.includes('layers.0.self_attn.q_proj.lora_A') ? { ...t, dtype: 'I32' } : t)), /is I32, not floating point/],
    ];
    for (const [bytes, re] of cases) {
      const e = await errorOf(() => parseAdapter(fixtureConfig, bytes, { base }));
      expect(e.kind).toBe('bad-input');
      expect(e.message).toMatch(re);
    }
    // Layer beyond the base model.
    const deep = { name: peftKey(5, 'q_proj', 'A'), dtype: 'F32' as const, shape: [4, 128], data: new Uint8Array(2048) };
    const e = await errorOf(() => parseAdapter(fixtureConfig, writeSafetensors([...all, deep]), { base }));
    expect(e.message).toMatch(/this adapter has tensors up to layer 5, the model has 2: .*\(its tensors for layer 5 have no layer to go to\)/);
    // A module the config does not target.
    const e2 = await errorOf(() => parseAdapter({ ...fixtureConfig, target_modules: ['q_proj', 'v_proj'] }, fixtureWeights, { base }));
    expect(e2.message).toMatch(/k_proj \(layer 0\) is not in target_modules/);
    // No base given: shapes are only checked for consistency.
    const free = await parseAdapter(fixtureConfig, fixtureWeights);
    expect(free.layers).toBe(2);
  });

  it('validates the config and refuses options that change the math', async () => {
    const cases: [Record<string, unknown>, RegExp][] = [
      [{ r: 0 }, /"r" must be a positive integer/],
      [{ lora_alpha: 'x' }, /"lora_alpha" must be a positive number/],
      // An absurd scale loaded silently once, and every output was non-finite.
      [{ lora_alpha: 1e30 }, /"lora_alpha" 1e\+30 over "r" \d+ scales the adapter by [\d.e+]+, more than 1024: no adapter trains with that/],
      [{ lora_alpha: 5000, r: 4, use_rslora: true }, /scales the adapter by 2\.50e\+3 \(rsLoRA: alpha \/ √r\), more than 1024/],
      [{ lora_dropout: 1.5 }, /"lora_dropout" must be in \[0, 1\)/],
      [{ peft_type: 'IA3' }, /peft_type "IA3" is not supported/],
      [{ use_dora: true }, /unsupported LoRA option\(s\): use_dora=true/],
      [{ bias: 'all' }, /bias="all"/],
      [{ fan_in_fan_out: true }, /fan_in_fan_out/],
      [{ rank_pattern: { q_proj: 8 } }, /rank_pattern/],
      [{ modules_to_save: ['lm_head'] }, /modules_to_save/],
      [{ target_modules: ['q_proj', 'lm_head'] }, /target module "lm_head" is not supported/],
      [{ target_modules: [] }, /non-empty list/],
      [{ target_modules: '(' }, /not a valid regular expression/],
      [{ target_modules: 'embed_tokens' }, /matches none of/],
      [{ use_rslora: 'yes' }, /"use_rslora" must be true or false/],
    ];
    for (const [patch, re] of cases) {
      const e = await errorOf(() => parseLoraConfig({ ...fixtureConfig, ...patch }));
      expect(e.kind).toBe('bad-input');
      expect(e.message).toMatch(re);
    }
    expect(parseLoraConfig({ ...fixtureConfig, target_modules: 'all-linear' }).targetModules).toEqual([...PROJECTIONS]);
    expect(parseLoraConfig({ ...fixtureConfig, target_modules: '.*\\.(q_proj|v_proj)' }).targetModules).toEqual(['q_proj', 'v_proj']);
    expect(parseLoraConfig({ ...fixtureConfig, target_modules: ['self_attn.v_proj', 'q_proj'] }).targetModules).toEqual(['q_proj', 'v_proj']);
    const rs = parseLoraConfig({ ...fixtureConfig, use_rslora: true, r: 16, lora_alpha: 8 });
    const adapter = await parseAdapter({ ...fixtureConfig, use_rslora: true }, fixtureWeights, { base });
    expect(adapter.scaling).toBe(8 / Math.sqrt(4)); // alpha/√r
    expect(rs.r).toBe(16);
  });

  it('refuses a target_modules list of more names than a Mistral model has modules by its length, before reading any', async () => {
    // 400,000 names of real modules (a 16 MiB config holds about 1.8 million): read one by one they took seconds.
    const names = Array.from({ length: 400_000 }, (_, i) => `model.layers.${i % 32}.self_attn.q_proj`);
    const e = await errorOf(() => parseLoraConfig({ ...fixtureConfig, target_modules: names }));
    expect(e.kind).toBe('bad-input');
    expect(e.message).toMatch(/target_modules lists 400,000 names, more than 16,384 \(7 projections a layer\): the file is corrupt or not a LoRA adapter's config$/);
    // The most a list may hold is read as before.
    const most = Array.from({ length: 16_384 }, (_, i) => `model.layers.${i % 2}.self_attn.${i % 3 === 0 ? 'q' : 'v'}_proj`);
    expect(parseLoraConfig({ ...fixtureConfig, target_modules: most }).targetModules).toEqual(['q_proj', 'v_proj']);
  });

  it('reads layers_to_transform adapters', async () => {
    const only1 = writeSafetensors(
      [
        { name: peftKey(1, 'q_proj', 'A'), dtype: 'F32', shape: [2, 128], data: new Float32Array(256).fill(0.5) },
        { name: peftKey(1, 'q_proj', 'B'), dtype: 'BF16', shape: [128, 2], data: new Uint16Array(256).fill(0x3f80) },
      ],
      { format: 'pt' },
    );
    const a = await parseAdapter({ ...fixtureConfig, r: 2, target_modules: ['q_proj'], layers_to_transform: [1] }, only1, { base });
    expect(a.tensors[0]).toEqual({});
    expect(a.tensors[1].q_proj?.B[0]).toBe(1); // BF16 converted to f32
    const e = await errorOf(() => parseAdapter({ ...fixtureConfig, r: 2, target_modules: ['q_proj'] }, only1, { base }));
    expect(e.message).toMatch(/missing q_proj of layer 0/);
  });

  it('refuses a layer index written with a leading zero, which stood in for the real tensor of that layer', async () => {
    // layers.00 and layers.0 both read as layer 0, and the later in the file replaced the other without a word: PEFT
    // loads layers.0 (layers.00 names no module of the model), so the import computed something else.
    const source = await openSafetensors(bytesSource(fixtureWeights));
    const all = await Promise.all(source.names().map(async (name) => ({ ...source.info(name), data: await source.read(name) })));
    const real = source.info(peftKey(0, 'q_proj', 'A'));
    const impostor = { name: real.name.replace('layers.0.', 'layers.00.'), dtype: 'F32' as const, shape: real.shape, data: new Float32Array(real.numel).fill(9) };
    const e = await errorOf(() => parseAdapter(fixtureConfig, writeSafetensors([...all, impostor]), { base, where: 'a' }));
    expect(e.kind).toBe('bad-input');
    expect(e.message).toBe(`a/adapter_model.safetensors: unexpected tensor name(s) "${impostor.name}"; expected base_model.model.model.layers.N.(self_attn|mlp).X_proj.lora_(A|B).weight`);
  });

  it('refuses a layer index deeper than any model when no base is given, before building anything per layer', async () => {
    // Read without a base (finetune export's first read), a tensor of layer 10^20 threw V8's RangeError "Invalid array
    // length", and one of layer 5,000,000 took seconds building five million "missing q_proj of layer N".
    const at = (layer: string): Uint8Array =>
      writeSafetensors([
        { name: `base_model.model.model.layers.${layer}.self_attn.q_proj.lora_A.weight`, dtype: 'F32', shape: [2, 128], data: new Float32Array(256) },
        { name: `base_model.model.model.layers.${layer}.self_attn.q_proj.lora_B.weight`, dtype: 'F32', shape: [128, 2], data: new Float32Array(256) },
      ]);
    const config = { ...fixtureConfig, r: 2, target_modules: ['q_proj'], layers_to_transform: null };
    for (const layer of ['99999999999999999999', '5000000', '1024']) {
      const started = Date.now();
      const e = await errorOf(() => parseAdapter(config, at(layer), { where: 'a' }));
      expect(e.kind).toBe('bad-input');
      expect(e.message).toBe(`a/adapter_model.safetensors: base_model.model.model.layers.${layer}.self_attn.q_proj.lora_A.weight is a tensor of layer ${layer}, and no model this program loads has more than 1024 layers (0–1023): the file is corrupt or not an adapter of such a model`);
      expect(Date.now() - started).toBeLessThan(1000);
    }
    // The deepest layer a model can have still reads (as the only layer adapted, through layers_to_transform).
    const last = await parseAdapter({ ...config, layers_to_transform: [1023] }, at('1023'));
    expect(last.layers).toBe(1024);
    expect(last.tensors[1023].q_proj?.A.length).toBe(256);
  });

  it('says which file is missing from an adapter directory', async () => {
    const e = await errorOf(() => readAdapter(memoryFileSet({ 'adapter_config.json': JSON.stringify(fixtureConfig) }, 'out')));
    expect(e.message).toMatch(/out: no adapter_model\.safetensors/);
  });
});

/** An adapter of rank 2 with tensors for `modules` in `layers` of tiny-mistral (2 layers). */
function weightsFor(modules: (typeof PROJECTIONS)[number][], layers: number[]): Uint8Array {
  const shapes: Record<string, [number, number]> = { q_proj: [128, 128], k_proj: [32, 128], v_proj: [32, 128], o_proj: [128, 128], gate_proj: [448, 128], up_proj: [448, 128], down_proj: [128, 448] };
  return writeSafetensors(
    layers.flatMap((l) =>
      modules.flatMap((m) => {
        const [out, inn] = shapes[m];
        return [
          { name: peftKey(l, m, 'A'), dtype: 'F32' as const, shape: [2, inn], data: new Float32Array(2 * inn).fill(0.25) },
          { name: peftKey(l, m, 'B'), dtype: 'F32' as const, shape: [out, 2], data: new Float32Array(2 * out).fill(0.5) },
        ];
      }),
    ),
    { format: 'pt' },
  );
}

describe('adapter_config.json options: read, ignored when off, refused when they change what the adapter computes', () => {
  it("loads a config with every field PEFT writes at its default (Replicate's and PEFT's own output)", () => {
    const peft = {
      ...fixtureConfig,
      peft_type: 'LORA', task_type: 'CAUSAL_LM', inference_mode: true, revision: null, auto_mapping: null, megatron_config: null, megatron_core: 'megatron.core',
      loftq_config: {}, eva_config: null, corda_config: null, use_dora: false, layer_replication: null, runtime_config: { ephemeral_gpu_offload: false },
      qalora_group_size: 16, use_qalora: false, target_parameters: null, exclude_modules: null, lora_bias: false, trainable_token_indices: null,
      init_lora_weights: true, layers_pattern: null, peft_version: '0.13.2', alora_invocation_tokens: null, use_bdlora: null, arrow_config: null, some_future_config: null,
    };
    expect(parseLoraConfig(peft).targetModules).toEqual([...PROJECTIONS]);
    // Initialisations that set only the adapter's own starting tensors.
    for (const init of [false, 'gaussian', 'orthogonal', 'eva']) expect(parseLoraConfig({ ...peft, init_lora_weights: init }).r).toBe(4);
  });

  it('refuses each option that changes the maths, saying what it does', async () => {
    const cases: [Record<string, unknown>, RegExp][] = [
      [{ alora_invocation_tokens: [32, 45] }, /alora_invocation_tokens=\[32,45\] \(an activated LoRA \(aLoRA\) applies only to the tokens after its invocation sequence, and this engine would apply it to every token\)/],
      [{ use_bdlora: true }, /use_bdlora=true \(BD-LoRA makes LoRA factors block-diagonal/],
      [{ arrow_config: { top_k: 3 } }, /arrow_config=\{"top_k":3\} \(Arrow routes each token among several LoRA experts/],
      [{ use_qalora: true }, /use_qalora=true \(QA-LoRA averages the input in groups/],
      [{ some_future_option: 3 }, /some_future_option=3 \(an option this app does not know, which may change what the adapter computes\)/],
      [{ init_lora_weights: 'kaiming_sideways' }, /init_lora_weights "kaiming_sideways" is not an initialisation this app knows/],
    ];
    for (const init of ['pissa', 'pissa_niter_4', 'olora', 'loftq', 'corda', 'lora_ga']) {
      cases.push([{ init_lora_weights: init }, new RegExp(`init_lora_weights "${init}": this initialisation changes the base model's weights .* this engine adds it to the unmodified model`)]);
    }
    for (const [patch, re] of cases) {
      const e = await errorOf(() => parseLoraConfig({ ...fixtureConfig, ...patch }));
      expect(e.kind).toBe('bad-input');
      expect(e.message).toMatch(re);
    }
  });

  it('an unknown option named like a property every object has is called unknown, not by that property (the fuzz test\'s counterexample)', async () => {
    // As JSON.parse builds them: own keys toString, hasOwnProperty, constructor, __proto__.
    for (const key of ['toString', 'hasOwnProperty', 'constructor', '__proto__']) {
      const json = JSON.parse(`{${JSON.stringify(key)}: "all-linear"}`) as Record<string, unknown>;
      const e = await errorOf(() => parseLoraConfig({ ...fixtureConfig, ...json }, 'x/adapter_config.json'));
      expect(e.kind).toBe('bad-input');
      expect(e.message).toBe(`x/adapter_config.json: unsupported LoRA option(s): ${key}="all-linear" (an option this app does not know, which may change what the adapter computes): this adapter cannot be applied as it was trained`);
    }
  });

  it('a huge value is quoted cut short: the message names the field, not megabytes of it (the fuzz test\'s counterexample)', async () => {
    const beyond = Array.from({ length: 10_000 }, () => 'model.layers.300.self_attn.q_proj');
    const e = await errorOf(() => parseLoraConfig({ ...fixtureConfig, target_modules: beyond }, 'x/adapter_config.json', 2));
    expect(e.message).toMatch(/^x\/adapter_config\.json: target_modules \["model\.layers\.300\.self_attn\.q_proj",.{0,200}… names no module of the model/);
    expect(e.message.length).toBeLessThan(1000);
    const option = await errorOf(() => parseLoraConfig({ ...fixtureConfig, some_option: 'x'.repeat(1 << 20) }, 'x/adapter_config.json'));
    expect(option.message).toMatch(/^x\/adapter_config\.json: unsupported LoRA option\(s\): some_option="x{1,200}… \(an option this app does not know/);
    expect(option.message.length).toBeLessThan(1000);
  });

  it('refuses an adapter trained for another task than causal language modelling, naming task_type (it was imported without its head)', async () => {
    // PEFT's SEQ_CLS adapters carry the trained classification head (modules_to_save: score); a FEATURE_EXTRACTION one
    // has no head at all, and its layers were trained for embeddings, not for the next token.
    const cases: [Record<string, unknown>, RegExp][] = [
      [{ task_type: 'FEATURE_EXTRACTION' }, /task_type "FEATURE_EXTRACTION": this adapter was trained for another task than causal language modelling \(CAUSAL_LM\)/],
      [{ task_type: 'SEQ_CLS', modules_to_save: ['classifier', 'score'] }, /task_type "SEQ_CLS": this adapter was trained for another task than causal language modelling \(CAUSAL_LM\).* with modules_to_save \["classifier","score"\]/],
      [{ task_type: 'TOKEN_CLS' }, /task_type "TOKEN_CLS"/],
      [{ task_type: 3 }, /task_type 3/],
    ];
    for (const [patch, re] of cases) {
      const e = await errorOf(() => parseAdapter({ ...fixtureConfig, ...patch }, fixtureWeights, { base }));
      expect(e.kind).toBe('bad-input');
      expect(e.message).toMatch(re);
    }
    // CAUSAL_LM, or no task_type at all (older PEFT, hand-written configs), load.
    for (const task_type of ['CAUSAL_LM', null, undefined]) expect((await parseAdapter({ ...fixtureConfig, task_type }, fixtureWeights, { base })).config.taskType).toBe('CAUSAL_LM');
  });

  it('applies exclude_modules: an adapter without q_proj, excluded, loads (it said "missing q_proj of layer 0")', async () => {
    const noQ = PROJECTIONS.filter((m) => m !== 'q_proj');
    const a = await parseAdapter({ ...fixtureConfig, r: 2, target_modules: [...PROJECTIONS], exclude_modules: ['q_proj'] }, weightsFor(noQ, [0, 1]), { base });
    expect(a.config.targetModules).toEqual(noQ);
    expect(a.config.layersToTransform).toBeNull();
    expect(a.tensors[0].q_proj).toBeUndefined();
    // As a pattern, too.
    expect(parseLoraConfig({ ...fixtureConfig, exclude_modules: '.*mlp.*' }).targetModules).toEqual(['q_proj', 'k_proj', 'v_proj', 'o_proj']);
  });

  it('reads a target_modules pattern that names layers as those layers, and refuses modules adapted in different layers, naming them', async () => {
    const target = '.*layers\\.1\\.self_attn\\.(q_proj|v_proj)';
    const a = await parseAdapter({ ...fixtureConfig, r: 2, target_modules: target }, weightsFor(['q_proj', 'v_proj'], [1]), { base });
    expect(a.config.targetModules).toEqual(['q_proj', 'v_proj']);
    expect(a.config.layersToTransform).toEqual([1]);
    expect(a.tensors[0]).toEqual({});
    expect(a.tensors[1].v_proj?.B[0]).toBe(0.5);
    // Every layer's modules listed by name is the whole model.
    const listed = await parseAdapter({ ...fixtureConfig, r: 2, target_modules: ['model.layers.0.self_attn.q_proj', 'model.layers.1.self_attn.q_proj'] }, weightsFor(['q_proj'], [0, 1]), { base });
    expect(listed.config.layersToTransform).toBeNull();
    const e = await errorOf(() => parseLoraConfig({ ...fixtureConfig, exclude_modules: ['model.layers.1.self_attn.q_proj'] }));
    expect(e.message).toMatch(/target_modules .* with exclude_modules \["model\.layers\.1\.self_attn\.q_proj"\] adapts q_proj in every layer but layer 1, k_proj in every layer, .*: this engine adapts the same layers in every module it targets \(as layers_to_transform does\), so it cannot apply this adapter/);
  });

  it("matches target_modules and exclude_modules against the base model's layers only, as PEFT matches them against its modules", async () => {
    // The tiny model has layers 0 and 1. PEFT adapts q_proj in both and finds no module for the layer-2 name (ignored,
    // since q_proj matched); tried on layers 0–255, k_proj "in layer 2" was another set of layers than q_proj's, and
    // the adapter was refused.
    const beyond = await parseAdapter({ ...fixtureConfig, r: 2, target_modules: ['q_proj', 'model.layers.2.self_attn.k_proj', 'model.layers.7.input_layernorm'] }, weightsFor(['q_proj'], [0, 1]), { base });
    expect(beyond.config.targetModules).toEqual(['q_proj']);
    expect(beyond.config.layersToTransform).toBeNull();
    expect(beyond.config.ignoredTargetModules).toEqual(['model.layers.2.self_attn.k_proj', 'model.layers.7.input_layernorm']);
    // An exclusion of a layer the model does not have excludes nothing (PEFT warns that nothing was excluded).
    const excluded = await parseAdapter({ ...fixtureConfig, r: 2, target_modules: ['q_proj', 'v_proj'], exclude_modules: ['model.layers.5.self_attn.v_proj'] }, weightsFor(['q_proj', 'v_proj'], [0, 1]), { base });
    expect(excluded.config.targetModules).toEqual(['q_proj', 'v_proj']);
    expect(excluded.config.layersToTransform).toBeNull();
    // Names of layers beyond the model's alone match nothing: refused as PEFT refuses them, saying the model's depth.
    const onlyBeyond = await errorOf(() => parseAdapter({ ...fixtureConfig, r: 2, target_modules: ['model.layers.2.self_attn.q_proj'] }, weightsFor(['q_proj'], [0, 1]), { base }));
    expect(onlyBeyond.message).toContain('target_modules ["model.layers.2.self_attn.q_proj"] names only layers beyond the model\'s 2 (layers 0–1): it adapts none of its modules, and PEFT refuses it too ("not found in the base model")');
    const patternBeyond = await errorOf(() => parseAdapter({ ...fixtureConfig, r: 2, target_modules: '.*\\.layers\\.5\\.self_attn\\.q_proj' }, weightsFor(['q_proj'], [0, 1]), { base }));
    expect(patternBeyond.message).toContain('target_modules ".*\\\\.layers\\\\.5\\\\.self_attn\\\\.q_proj" names only layers beyond the model\'s 2 (layers 0–1)');
    // Without the base model its depth is unknown: layers 0–255 are tried, and the layer-2 name is read as a layer.
    const unknownDepth = await errorOf(() => parseLoraConfig({ ...fixtureConfig, target_modules: ['q_proj', 'model.layers.2.self_attn.k_proj'] }));
    expect(unknownDepth.message).toContain('adapts q_proj in every layer, k_proj in layer 2');
  });
});

describe('writing a PEFT adapter', () => {
  it('round-trips the fixture: the same header entries and metadata, the tensor bytes byte for byte, the config JSON', async () => {
    // The corrected fixture's header was written with Python's JSON spacing; the spacing carries no meaning, so the
    // header is compared as parsed JSON and everything after it byte for byte.
    const a = await readAdapter(nodeDirectory(TINY_ADAPTER), { base });
    const out = writeAdapter(a);
    const split = (b: Uint8Array) => {
      const n = Number(new DataView(b.buffer, b.byteOffset, 8).getBigUint64(0, true));
      return { header: JSON.parse(new TextDecoder().decode(b.subarray(8, 8 + n))) as unknown, data: b.subarray(8 + n) };
    };
    const ours = split(out['adapter_model.safetensors']);
    const theirs = split(fixtureWeights);
    expect(ours.header).toEqual(theirs.header);
    expect(Buffer.from(ours.data).equals(Buffer.from(theirs.data))).toBe(true);
    expect(out['adapter_config.json']).toBe(readFileSync(`${TINY_ADAPTER}/adapter_config.json`, 'utf8'));
  });

  it('refuses to write an adapter holding a NaN or an infinity, naming the tensor', async () => {
    const a = await readAdapter(nodeDirectory(TINY_ADAPTER), { base });
    for (const bad of [NaN, Infinity]) {
      const B = a.tensors[1].v_proj!.B.slice();
      B[3] = bad;
      const poisoned: LoraAdapter = { ...a, tensors: a.tensors.map((l, i) => (i === 1 ? { ...l, v_proj: { ...l.v_proj!, B } } : l)) };
      const e = await errorOf(async () => writeAdapter(poisoned));
      expect(e.kind).toBe('mismatch');
      expect(e.message).toBe(`not writing the adapter: the adapter holds ${bad} in base_model.model.model.layers.1.self_attn.v_proj.lora_B.weight (index 3)`);
    }
    expect(() => writeAdapter(a)).not.toThrow();
  });

  it('a base loaded from the Hub at a revision: base_model_name_or_path is the plain id (what from_pretrained takes), the revision in PEFT\'s revision field', async () => {
    const a = createAdapter(base, { r: 2, alpha: 4, targetModules: ['q_proj'], baseModel: 'mistralai/Mistral-7B-Instruct-v0.2@41b61a3', random: mulberry32(7) });
    const out = writeAdapter(a);
    const json = JSON.parse(out['adapter_config.json']) as Record<string, unknown>;
    expect(json.base_model_name_or_path).toBe('mistralai/Mistral-7B-Instruct-v0.2');
    expect(json.revision).toBe('41b61a3');
    // Read back, the adapter names its base as it was loaded again.
    expect((await parseAdapter(json, out['adapter_model.safetensors'], { base })).config.baseModel).toBe('mistralai/Mistral-7B-Instruct-v0.2@41b61a3');
    // Without a revision, none is written; a local folder's name is kept as it is.
    const plain = JSON.parse(writeAdapter({ ...a, config: { ...a.config, baseModel: 'mistralai/Mistral-7B-Instruct-v0.2' } })['adapter_config.json']) as Record<string, unknown>;
    expect([plain.base_model_name_or_path, plain.revision]).toEqual(['mistralai/Mistral-7B-Instruct-v0.2', null]);
    const local = JSON.parse(writeAdapter({ ...a, config: { ...a.config, baseModel: 'mistral-nano-demo' } })['adapter_config.json']) as Record<string, unknown>;
    expect([local.base_model_name_or_path, local.revision]).toEqual(['mistral-nano-demo', null]);
  });

  it('writes a fresh adapter PEFT can load, and reads it back unchanged', async () => {
    const a = createAdapter(base, { r: 8, alpha: 16, dropout: 0.05, targetModules: ['v_proj', 'q_proj'], baseModel: 'mistralai/Mistral-7B-Instruct-v0.2', random: mulberry32(7) });
    expect(a.scaling).toBe(2);
    const q = a.tensors[0].q_proj!;
    expect(q.A.length).toBe(8 * 128);
    expect(q.B.every((x) => x === 0)).toBe(true);
    const bound = 1 / Math.sqrt(128);
    expect(Math.max(...q.A.map(Math.abs))).toBeLessThanOrEqual(bound);
    expect(Math.max(...q.A.map(Math.abs))).toBeGreaterThan(bound * 0.9);
    expect(a.tensors[1].k_proj).toBeUndefined();
    // Give B values so the round trip is not trivially zeros.
    a.tensors[1].v_proj!.B.set([1.5, -2.25, 3e-8], 5);

    const out = writeAdapter(a);
    const text = out['adapter_config.json'];
    const json = JSON.parse(text) as Record<string, unknown>;
    expect(json).toMatchObject({
      peft_type: 'LORA',
      task_type: 'CAUSAL_LM',
      r: 8,
      lora_alpha: 16,
      lora_dropout: 0.05,
      target_modules: ['q_proj', 'v_proj'],
      bias: 'none',
      fan_in_fan_out: false,
      use_rslora: false,
      use_dora: false,
      base_model_name_or_path: 'mistralai/Mistral-7B-Instruct-v0.2',
      inference_mode: true,
    });
    // Python's json.dumps(indent=2, sort_keys=True) layout.
    const keys = Object.keys(json);
    expect(keys).toEqual([...keys].sort());
    expect(text).toMatch(/^\{\n {2}"alpha_pattern": \{\},\n/);
    expect(text).toContain('"lora_dropout": 0.05,');
    expect(text.endsWith('\n}')).toBe(true);

    const w = await openSafetensors(bytesSource(out['adapter_model.safetensors']));
    expect(w.header.metadata).toEqual({ format: 'pt' });
    expect(w.names()).toEqual([0, 1].flatMap((l) => [peftKey(l, 'q_proj', 'A'), peftKey(l, 'q_proj', 'B'), peftKey(l, 'v_proj', 'A'), peftKey(l, 'v_proj', 'B')]));
    expect(new Set(w.names().map((n) => w.info(n).dtype))).toEqual(new Set(['F32']));
    expect(w.info(peftKey(0, 'v_proj', 'B')).shape).toEqual([32, 8]);

    const back: LoraAdapter = await parseAdapter(json, out['adapter_model.safetensors'], { base });
    expect(back.config).toMatchObject({ r: 8, loraAlpha: 16, loraDropout: 0.05, targetModules: ['q_proj', 'v_proj'] });
    for (let l = 0; l < 2; l++) {
      for (const m of ['q_proj', 'v_proj'] as const) {
        expect(back.tensors[l][m]!.A).toEqual(a.tensors[l][m]!.A);
        expect(back.tensors[l][m]!.B).toEqual(a.tensors[l][m]!.B);
      }
    }
  });

  it('formats floats like Python', () => {
    const a = createAdapter(base, { r: 4, alpha: 8, dropout: 0, targetModules: ['q_proj'], random: mulberry32(1) });
    expect(adapterConfigJson(a.config)).toContain('"lora_dropout": 0.0,');
    a.config.loraDropout = 1e-5;
    expect(adapterConfigJson(a.config)).toContain('"lora_dropout": 1e-05,');
    a.config.loraDropout = 0.1;
    expect(adapterConfigJson(a.config)).toContain('"lora_dropout": 0.1,');
    a.config.baseModel = 'ünï/çødé';
    expect(adapterConfigJson(a.config)).toContain('"base_model_name_or_path": "\\u00fcn\\u00ef/\\u00e7\\u00f8d\\u00e9",');
  });
});
