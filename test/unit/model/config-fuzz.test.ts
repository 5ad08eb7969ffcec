// Fuzzing the config.json reader: whatever JSON a file (a Hub repository, a picked folder) holds, parseMistralConfig
// either returns a config that is consistent (every size a positive integer within CONFIG_LIMITS, the heads dividing
// evenly, an even head size, token ids inside the vocabulary) or throws FinetuneError('bad-input') naming the file and
// the field that is wrong; never a TypeError from a value of a type it did not expect.
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { FinetuneError } from '../../../src/core/errors.ts';
import { CONFIG_LIMITS, parseMistralConfig, type MistralConfig } from '../../../src/model/config.ts';
import { fixtureJson, MISTRAL_7B_V02, NANO_DEMO, TINY_MISTRAL } from './helpers.ts';

const WHERE = 'fuzz/config.json';

function checkConsistent(c: MistralConfig): void {
  const sizes: [number, number][] = [
    [c.vocabSize, CONFIG_LIMITS.vocab_size],
    [c.hidden, CONFIG_LIMITS.hidden_size],
    [c.intermediate, CONFIG_LIMITS.intermediate_size],
    [c.layers, CONFIG_LIMITS.num_hidden_layers],
    [c.heads, CONFIG_LIMITS.num_attention_heads],
    [c.kvHeads, CONFIG_LIMITS.num_key_value_heads],
    [c.headDim, CONFIG_LIMITS.head_dim],
    [c.maxPositions, CONFIG_LIMITS.max_position_embeddings],
  ];
  for (const [v, most] of sizes) {
    expect(Number.isSafeInteger(v) && v > 0 && v <= most).toBe(true);
  }
  expect(c.heads % c.kvHeads).toBe(0);
  expect(c.headDim % 2).toBe(0);
  expect(Number.isFinite(c.ropeTheta) && c.ropeTheta > 0).toBe(true);
  expect(c.rmsNormEps > 0 && c.rmsNormEps < 1).toBe(true);
  if (c.slidingWindow !== null) expect(Number.isSafeInteger(c.slidingWindow) && c.slidingWindow > 0 && c.slidingWindow <= CONFIG_LIMITS.sliding_window).toBe(true);
  expect(typeof c.tieWordEmbeddings).toBe('boolean');
  expect([null, 'bfloat16', 'float16', 'float32']).toContain(c.dtype);
  for (const id of [c.bosTokenId, c.eosTokenId]) if (id !== null) expect(Number.isSafeInteger(id) && id >= 0 && id < c.vocabSize).toBe(true);
  for (const w of c.warnings) expect(typeof w).toBe('string');
}

/** Parses and checks the contract; returns the refusal's message, or null when the config was accepted. */
function checkContract(json: unknown): string | null {
  let c: MistralConfig;
  try {
    c = parseMistralConfig(json, WHERE);
  } catch (e) {
    if (!(e instanceof FinetuneError) || e.kind !== 'bad-input') throw e;
    expect(e.message.startsWith(`${WHERE}: `)).toBe(true);
    // Cut short: a hostile config can hold megabytes in one field.
    expect(e.message.length).toBeLessThan(1000);
    return e.message;
  }
  checkConsistent(c);
  return null;
}

/**
 * Values of every JSON type, and the objects JSON.parse builds whose own keys shadow Object.prototype's (toString,
 * valueOf, constructor, __proto__), as a file can hold them.
 */
const wrongValueArb: fc.Arbitrary<unknown> = fc.oneof(
  fc.constantFrom(null, true, false, 0, -1, 0.5, 1e308, -0, 2 ** 53, 2 ** 31, 1 << 20, 4096, '', 'mistral', 'silu', 'bfloat16', 'torch.float16', 'default', '4096', [], {}, [1, 2], ['MistralForCausalLM']),
  fc.constantFrom('{"toString":1}', '{"toString":{},"valueOf":{}}', '{"valueOf":1}', '{"__proto__":{"x":1}}', '{"constructor":"mistral"}', '[{"toString":1}]').map((t): unknown => JSON.parse(t)),
  fc.jsonValue({ maxDepth: 3 }),
  fc.string({ maxLength: 300 }),
  fc.integer(),
  fc.double(),
);

const FIELDS = [
  ...Object.keys(MISTRAL_7B_V02),
  'model_type', 'head_dim', 'rope_parameters', 'rope_scaling', 'dtype', 'hidden_activation', 'attention_bias', 'mlp_bias',
];

type Edit = { kind: 'set'; field: string; value: unknown } | { kind: 'delete'; field: string } | { kind: 'rope'; field: string; value: unknown };

const editArb: fc.Arbitrary<Edit> = fc.oneof(
  fc.record({ kind: fc.constant('set' as const), field: fc.constantFrom(...FIELDS), value: wrongValueArb }),
  fc.record({ kind: fc.constant('delete' as const), field: fc.constantFrom(...FIELDS) }),
  fc.record({ kind: fc.constant('rope' as const), field: fc.constantFrom('rope_theta', 'rope_type', 'type'), value: wrongValueArb }),
);

function edited(base: Record<string, unknown>, edits: readonly Edit[]): Record<string, unknown> {
  // Through JSON, as a file reaches the reader: no shared objects, no undefined.
  const out = JSON.parse(JSON.stringify(base)) as Record<string, unknown>;
  for (const e of edits) {
    if (e.kind === 'delete') delete out[e.field];
    else if (e.kind === 'set') Object.defineProperty(out, e.field, { value: e.value, enumerable: true, configurable: true, writable: true });
    else {
      const rp = typeof out.rope_parameters === 'object' && out.rope_parameters !== null && !Array.isArray(out.rope_parameters) ? out.rope_parameters : (out.rope_parameters = {});
      Object.defineProperty(rp, e.field, { value: e.value, enumerable: true, configurable: true, writable: true });
    }
  }
  return out;
}

const BASES: Record<string, unknown>[] = [MISTRAL_7B_V02, fixtureJson(`${TINY_MISTRAL}/config.json`) as Record<string, unknown>, fixtureJson(`${NANO_DEMO}/config.json`) as Record<string, unknown>];

/** The words a refusal of each field names it by (a field may be refused through another that it contradicts). */
const NAMED_AS: Record<string, RegExp> = {
  hidden_act: /hidden_act/,
  hidden_activation: /hidden_act/,
  torch_dtype: /dtype/,
  rope_theta: /rope.theta/,
  rope_parameters: /rope/,
  attention_bias: /bias/,
  mlp_bias: /bias/,
};

describe('config.json reader under fuzzing', () => {
  it('the fixtures are accepted', () => {
    for (const b of BASES) expect(checkContract(b)).toBeNull();
  });

  it('any JSON value', () => {
    fc.assert(
      fc.property(fc.jsonValue({ maxDepth: 4 }), (json) => {
        checkContract(json);
      }),
      { numRuns: 500 },
    );
  });

  it('a real config with fields of any type, deleted, or shadowing what every object has', () => {
    let accepted = 0;
    let refused = 0;
    fc.assert(
      fc.property(fc.constantFrom(...BASES), fc.array(editArb, { minLength: 1, maxLength: 3 }), (base, edits) => {
        if (checkContract(edited(base, edits)) === null) accepted++;
        else refused++;
      }),
      { numRuns: 1500 },
    );
    expect(accepted).toBeGreaterThan(50);
    expect(refused).toBeGreaterThan(300);
  });

  it('one wrong field is refused by its name', () => {
    fc.assert(
      fc.property(fc.constantFrom(...BASES), fc.constantFrom(...FIELDS), wrongValueArb, (base, field, value) => {
        const message = checkContract(edited(base, [{ kind: 'set', field, value }]));
        if (message === null) return;
        // What is refused is the field changed, or one it contradicts (the heads, the head size, the vocabulary).
        const named = NAMED_AS[field] ?? new RegExp(field);
        const contradicted = /num_attention_heads|num_key_value_heads|head_dim|hidden_size|vocabulary/;
        expect(named.test(message) || contradicted.test(message), message).toBe(true);
      }),
      { numRuns: 1000 },
    );
  });
});
