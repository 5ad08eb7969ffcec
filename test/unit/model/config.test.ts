import { describe, expect, it } from 'vitest';
import { parameterCount, parseMistralConfig } from '../../../src/model/config.ts';
import { errorOf, fixtureJson, MISTRAL_7B_V02, NANO_DEMO, TINY_MISTRAL } from './helpers.ts';

describe('parseMistralConfig', () => {
  it('reads the transformers-5 fixture (rope_parameters, dtype)', () => {
    const c = parseMistralConfig(fixtureJson(`${TINY_MISTRAL}/config.json`));
    expect(c).toEqual({
      vocabSize: 32000,
      hidden: 128,
      intermediate: 448,
      layers: 2,
      heads: 8,
      kvHeads: 2,
      headDim: 16,
      ropeTheta: 1e6,
      rmsNormEps: 1e-5,
      maxPositions: 32768,
      tieWordEmbeddings: false,
      slidingWindow: null,
      dtype: 'bfloat16',
      bosTokenId: 1,
      eosTokenId: 2,
      warnings: [],
    });
    // The README's count: 8,618,624 parameters.
    expect(parameterCount(c)).toBe(8618624);
  });

  it('reads the demo model config', () => {
    const c = parseMistralConfig(fixtureJson(`${NANO_DEMO}/config.json`));
    expect(c).toMatchObject({ hidden: 256, intermediate: 896, layers: 4, heads: 8, kvHeads: 2, headDim: 32, ropeTheta: 1e6 });
    // README: 19.8 M parameters.
    expect(parameterCount(c) / 1e6).toBeCloseTo(19.8, 1);
  });

  it('reads the transformers-4 layout of Mistral-7B-Instruct-v0.2 (rope_theta, torch_dtype, no head_dim)', () => {
    const c = parseMistralConfig(MISTRAL_7B_V02);
    expect(c).toMatchObject({
      vocabSize: 32000,
      hidden: 4096,
      intermediate: 14336,
      layers: 32,
      heads: 32,
      kvHeads: 8,
      headDim: 128,
      ropeTheta: 1e6,
      rmsNormEps: 1e-5,
      maxPositions: 32768,
      tieWordEmbeddings: false,
      slidingWindow: null,
      dtype: 'bfloat16',
      warnings: [],
    });
    // docs/mistral.md: 7.24 B parameters; the Hub index's total_size 14,483,464,192 bytes of bf16 = 7,241,732,096 parameters.
    expect(parameterCount(c)).toBe(14483464192 / 2);
  });

  it('refuses missing required values instead of using library defaults', async () => {
    for (const key of ['vocab_size', 'hidden_size', 'intermediate_size', 'num_hidden_layers', 'num_attention_heads', 'num_key_value_heads', 'max_position_embeddings', 'rms_norm_eps']) {
      const j: Record<string, unknown> = { ...MISTRAL_7B_V02 };
      delete j[key];
      const e = await errorOf(() => parseMistralConfig(j));
      expect(e.kind).toBe('bad-input');
      expect(e.message).toContain(`"${key}"`);
    }
    const noTheta: Record<string, unknown> = { ...MISTRAL_7B_V02 };
    delete noTheta.rope_theta;
    expect((await errorOf(() => parseMistralConfig(noTheta))).message).toMatch(/neither "rope_theta" nor "rope_parameters.rope_theta"/);
  });

  it('warns (does not hide) when sliding_window or tie_word_embeddings are absent', () => {
    const j: Record<string, unknown> = { ...MISTRAL_7B_V02 };
    delete j.sliding_window;
    delete j.tie_word_embeddings;
    const c = parseMistralConfig(j);
    expect(c.slidingWindow).toBe(4096);
    expect(c.tieWordEmbeddings).toBe(false);
    expect(c.warnings).toHaveLength(2);
    expect(c.warnings.join(' ')).toMatch(/sliding_window.*4096/);
    expect(parseMistralConfig({ ...MISTRAL_7B_V02, sliding_window: 4096 }).slidingWindow).toBe(4096);
  });

  it('validates values with clear messages', async () => {
    const cases: [Record<string, unknown>, RegExp][] = [
      [{ num_key_value_heads: 5 }, /num_attention_heads \(32\) must be a multiple of num_key_value_heads \(5\)/],
      [{ hidden_size: 4096.5 }, /"hidden_size" must be a positive integer/],
      [{ num_hidden_layers: 0 }, /"num_hidden_layers" must be a positive integer/],
      [{ vocab_size: '32000' }, /"vocab_size" must be a positive integer/],
      [{ hidden_size: 4100 }, /hidden_size \(4100\) is not divisible by num_attention_heads \(32\)/],
      [{ head_dim: 15 }, /head_dim \(15\) must be even/],
      [{ rms_norm_eps: -1 }, /"rms_norm_eps" must be a positive number/],
      [{ rope_theta: 0 }, /"rope_theta" must be a positive number/],
      [{ rope_parameters: { rope_theta: 10000 } }, /disagree/],
      [{ rope_parameters: { rope_theta: 1e6, rope_type: 'yarn' } }, /rope_type "yarn" is not supported/],
      [{ rope_scaling: { type: 'linear', factor: 2 } }, /rope_scaling .* is not supported/],
      [{ model_type: 'llama' }, /model_type is "llama"/],
      // Without a model_type, the architectures list still names what the checkpoint is (Llama-2's tokenizer differs).
      [{ model_type: undefined, architectures: ['LlamaForCausalLM'] }, /architectures names "LlamaForCausalLM"; only Mistral-architecture models \("MistralForCausalLM"\) are supported/],
      [{ hidden_act: 'gelu' }, /hidden_act "gelu" is not supported/],
      [{ torch_dtype: 'int8' }, /dtype "int8" is not supported/],
      [{ sliding_window: -3 }, /"sliding_window" must be a positive integer/],
      [{ tie_word_embeddings: 'no' }, /"tie_word_embeddings" must be true or false/],
      [{ bos_token_id: 40000 }, /bos_token_id 40000 is outside the vocabulary/],
    ];
    for (const [patch, re] of cases) {
      const e = await errorOf(() => parseMistralConfig({ ...MISTRAL_7B_V02, ...patch }, 'my/config.json'));
      expect(e.kind).toBe('bad-input');
      expect(e.message).toMatch(/^my\/config\.json: /);
      expect(e.message).toMatch(re);
    }
    expect((await errorOf(() => parseMistralConfig([1, 2]))).message).toMatch(/must be a JSON object/);
  });

  it('accepts equivalent spellings', () => {
    const t5: Record<string, unknown> = { ...MISTRAL_7B_V02, rope_parameters: { rope_theta: 1e6, rope_type: 'default' }, dtype: 'float32' };
    delete t5.rope_theta;
    delete t5.torch_dtype;
    expect(parseMistralConfig(t5)).toMatchObject({ ropeTheta: 1e6, dtype: 'float32' });
    // Both places agreeing is fine; explicit head_dim wins over hidden/heads.
    const both = parseMistralConfig({ ...MISTRAL_7B_V02, rope_parameters: { rope_theta: 1e6 }, head_dim: 64, eos_token_id: [2, 5] });
    expect(both).toMatchObject({ headDim: 64, eosTokenId: 2 });
    expect(parseMistralConfig({ ...MISTRAL_7B_V02, torch_dtype: undefined }).dtype).toBeNull();
  });
});

describe('a dtype that is not a string', () => {
  it('is refused naming it, whatever object or list it is (the fuzz test found a TypeError and a list read as its item)', async () => {
    // As JSON.parse builds them: own keys that shadow Object.prototype's toString and valueOf.
    for (const text of ['{"toString":1}', '{"toString":{},"valueOf":{}}', '["bfloat16"]', '16']) {
      const e = await errorOf(() => parseMistralConfig({ ...MISTRAL_7B_V02, torch_dtype: JSON.parse(text) }, 'my/config.json'));
      expect(e.kind).toBe('bad-input');
      expect(e.message).toBe(`my/config.json: dtype ${text} is not supported (bfloat16, float16, float32)`);
    }
  });
});

describe('config size bounds', () => {
  it('refuses every size above its bound, naming the field, and accepts the bound itself', async () => {
    const { CONFIG_LIMITS } = await import('../../../src/model/config.ts');
    for (const [key, limit] of Object.entries(CONFIG_LIMITS)) {
      // Keep the config consistent apart from the one field (heads divisible by kv heads, hidden by heads).
      const base = { ...MISTRAL_7B_V02, head_dim: 128 };
      const e = await errorOf(() => parseMistralConfig({ ...base, [key]: limit + 1 }));
      expect(e.kind).toBe('bad-input');
      expect(e.message).toContain(`"${key}" is ${limit + 1}, more than ${limit}`);
    }
    expect(parseMistralConfig({ ...MISTRAL_7B_V02, num_hidden_layers: CONFIG_LIMITS.num_hidden_layers }).layers).toBe(1024);
  });

  it('keeps messages short when a field holds something huge', async () => {
    const e = await errorOf(() => parseMistralConfig({ ...MISTRAL_7B_V02, vocab_size: 'x'.repeat(1_000_000) }));
    expect(e.message.length).toBeLessThan(200);
  });
});
