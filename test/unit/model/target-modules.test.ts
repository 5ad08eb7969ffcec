// target_modules as a pattern (PEFT applies it with re.fullmatch): matched in linear time, so a file cannot hang us.
import { describe, expect, it } from 'vitest';
import { parseLoraConfig } from '../../../src/model/lora-adapter.ts';
import { errorOf } from './helpers.ts';

const config = (target_modules: unknown) => ({ peft_type: 'LORA', r: 4, lora_alpha: 8, target_modules });

describe('target_modules given as a pattern', () => {
  it('matches whole module names, as re.fullmatch does: a pattern of a short name alone matches nothing', async () => {
    expect(parseLoraConfig(config('.*(q_proj|v_proj)')).targetModules).toEqual(['q_proj', 'v_proj']);
    expect(parseLoraConfig(config('model\\.layers\\.\\d+\\.mlp\\..*')).targetModules).toEqual(['gate_proj', 'up_proj', 'down_proj']);
    expect(parseLoraConfig(config('.*\\.(k|o)_proj')).targetModules).toEqual(['k_proj', 'o_proj']);
    // Full match: a pattern that matches only part of a name does not count.
    expect(parseLoraConfig(config('.*q_pro.|.*up_pro')).targetModules).toEqual(['q_proj']);
    // PEFT matches a string against model.layers.N.self_attn.k_proj, never against k_proj alone: "(k|o)_proj" adapts
    // nothing there (PEFT says "Target modules (k|o)_proj not found in the base model"). Read as k_proj and o_proj
    // everywhere, an adapter PEFT refuses was applied.
    for (const shortOnly of ['(k|o)_proj', 'q_proj', 'q_pro.|up_proj']) {
      const e = await errorOf(() => parseLoraConfig(config(shortOnly)));
      expect(e.message, shortOnly).toContain(`target_modules ${JSON.stringify(shortOnly)} is a regular expression, which PEFT matches against each module's whole name (such as model.layers.0.self_attn.q_proj): it matches none of a Mistral model's modules`);
      expect(e.message, shortOnly).toMatch(/a list of names \(\["q_proj", "v_proj"\]\) matches by suffix/);
    }
  });

  it('applies an exclude_modules string to whole names too: a short name alone excludes nothing', async () => {
    const list = { ...config(['q_proj', 'v_proj']) };
    // PEFT excludes nothing here (and warns that nothing was excluded): both modules stay.
    expect(parseLoraConfig({ ...list, exclude_modules: 'q_proj' }).targetModules).toEqual(['q_proj', 'v_proj']);
    expect(parseLoraConfig({ ...list, exclude_modules: '.*\\.q_proj' }).targetModules).toEqual(['v_proj']);
  });

  it('refuses layers_to_transform or layers_pattern beside a string target_modules, as PEFT\'s LoraConfig does', async () => {
    for (const [field, value] of [['layers_to_transform', [1]], ['layers_pattern', 'layers']] as const) {
      const e = await errorOf(() => parseLoraConfig({ ...config('.*\\.q_proj'), [field]: value }));
      expect(e.message).toContain(`${field} ${JSON.stringify(value)} cannot be used with target_modules given as a string (".*\\\\.q_proj", a regular expression): PEFT refuses this config`);
    }
    // A list with layers_to_transform is PEFT's way of naming layers.
    expect(parseLoraConfig({ ...config(['q_proj']), layers_to_transform: [1] }).layersToTransform).toEqual([1]);
  });

  it('returns at once on patterns that make a backtracking engine take exponential time', async () => {
    for (const evil of ['(.*)*x', '(a|a)*(b|b)*(.|.)*(.|.)*(.|.)*!', '(([a-z_.0-9])+)+#', '(.*.*)*=']) {
      const started = performance.now();
      const e = await errorOf(() => parseLoraConfig(config(evil)));
      expect(e.message).toMatch(/matches none of a Mistral model's modules/);
      // JavaScript's RegExp needs minutes to hours on these against a 31-character module name.
      expect(performance.now() - started).toBeLessThan(2000);
    }
  });

  it('refuses an overlong pattern, an invalid one and the features RE2 does not run', async () => {
    expect((await errorOf(() => parseLoraConfig(config(`(${'q_proj|'.repeat(200)}v_proj)`)))).message).toMatch(/a pattern of 1408 characters, more than 1000/);
    expect((await errorOf(() => parseLoraConfig(config('(q_proj')))).message).toMatch(/is not a valid regular expression/);
    expect((await errorOf(() => parseLoraConfig(config('(?=q)q_proj')))).message).toMatch(/no lookaround or backreferences/);
  });
});

describe('target_modules given as a list', () => {
  it("ignores, as PEFT does, names that match no module of a Mistral model when others match, and says which", () => {
    // A list written for several architectures (GPT-2's c_attn, Falcon's query_key_value beside Llama's names), or a
    // layer the model does not have: PEFT adapts what matches and ignores the rest (it refuses only a list that
    // matches nothing). Refused here, such an adapter could not be imported though PEFT loads it.
    const c = parseLoraConfig(config(['q_proj', 'c_attn', 'query_key_value', 'v_proj', 'model.layers.999.self_attn.k_proj']));
    expect(c.targetModules).toEqual(['q_proj', 'v_proj']);
    expect(c.ignoredTargetModules).toEqual(['c_attn', 'query_key_value', 'model.layers.999.self_attn.k_proj']);
    expect(parseLoraConfig(config(['q_proj'])).ignoredTargetModules).toBeUndefined();
  });

  it('refuses a list that matches no module, as PEFT does, and names that would adapt what this engine does not apply', async () => {
    const none = await errorOf(() => parseLoraConfig(config(['c_attn', 'c_fc'])));
    expect(none.message).toContain('target_modules ["c_attn","c_fc"] names no module of a Mistral model (q_proj, k_proj, v_proj, o_proj, gate_proj, up_proj, down_proj in any layer): PEFT refuses it too ("not found in the base model")');
    // lm_head and embed_tokens are Mistral's, and an adapter of them carries weights this engine would drop.
    for (const m of ['lm_head', 'model.embed_tokens', 'embed_tokens']) {
      expect((await errorOf(() => parseLoraConfig(config(['q_proj', m])))).message, m).toMatch(/target module ".*" is not supported/);
    }
    // A norm or a block is a module of the model that LoRA cannot adapt: PEFT refuses it ("not supported").
    for (const m of ['input_layernorm', 'model.norm', 'mlp', 'self_attn']) {
      expect((await errorOf(() => parseLoraConfig(config(['q_proj', m])))).message, m).toContain(`target module ${JSON.stringify(m)} names a module of a Mistral model that is not a linear layer`);
    }
  });
});
