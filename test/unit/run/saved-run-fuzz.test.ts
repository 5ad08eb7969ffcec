// Fuzzing what a resume reads back from the run store (saved-run.ts, saved-run-check.ts): whatever run.json, the
// training state and the data hold (fields of any type, bytes changed or cut, files missing, nesting deep, values huge),
// readStoredCheckpoint either returns a record and a state that belong together (the state's step is the record's, the
// data the record names is there) or throws FinetuneError('bad-input'), and checkSavedRun either returns a record whose
// steps lie within its plan or refuses it as a damaged run; never a TypeError or RangeError, never a message of
// megabytes. A corrupt checkpoint is refused whole, never half-read into a run.
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { FinetuneError } from '../../../src/core/errors.ts';
import { memoryRunStore, type RunStore } from '../../../src/run/run-store.ts';
import { checkSavedRun } from '../../../src/run/saved-run-check.ts';
import { checkpointFiles, readStoredCheckpoint, RUN_FILE, stateStep, STATE_FILE, TRAIN_FILE, VALIDATION_FILE, type StoredCheckpoint } from '../../../src/run/saved-run.ts';
import { writeSafetensors } from '../../../src/model/safetensors.ts';
import { fakeRun, fakeState } from '../../helpers/fake-checkpoint.ts';

const MOST_MESSAGE = 4000;

function expectRefusal(e: unknown): void {
  if (!(e instanceof FinetuneError) || e.kind !== 'bad-input') throw e;
  expect(e.message.length, e.message.slice(0, 200)).toBeLessThan(MOST_MESSAGE);
}

/** Reads the store as a resume does and checks the contract; returns whether the checkpoint was accepted. */
async function checkContract(store: RunStore): Promise<boolean> {
  let got: StoredCheckpoint;
  try {
    got = await readStoredCheckpoint(store);
  } catch (e) {
    expectRefusal(e);
    return false;
  }
  const held = await stateStep(got.state);
  expect(held).toEqual({ step: got.run.step });
  expect(got.data.train).toBeInstanceOf(Uint8Array);
  expect(got.data.validation !== null).toBe(Boolean(got.run.validationName));
  try {
    const run = checkSavedRun(got.run);
    expect(Number.isSafeInteger(run.step) && run.step >= 0 && run.step <= run.totalSteps).toBe(true);
    for (const h of run.history) expect(h.step).toBeLessThanOrEqual(run.step);
  } catch (e) {
    expectRefusal(e);
    return false;
  }
  return true;
}

// ---------------------------------------------------------------------------------------------------------------
// Mutations

const deep = (n: number): unknown => JSON.parse(`${'['.repeat(n)}${']'.repeat(n)}`);

const valueArb: fc.Arbitrary<unknown> = fc.oneof(
  fc.constantFrom(null, true, 0, -1, 0.5, 1e308, 2 ** 53, '', 'nf4', 'none', 'x'.repeat(1 << 20), [], {}, [{ step: 1, loss: 1 }], [{ step: 1e9, loss: 1 }], 'sha256:' + '0'.repeat(64)),
  fc.constantFrom('{"toString":1}', '{"__proto__":{"a":1}}', '{"valueOf":{}}').map((t): unknown => JSON.parse(t)),
  fc.constantFrom(20, 2000).map(deep),
  fc.jsonValue({ maxDepth: 2 }),
);

const FIELDS = [...Object.keys(fakeRun(1)), 'epoch', 'stateChecksum', 'trainChecksum', 'kernels', 'baseMatmul', 'tokenizer', 'modelFiles', 'useRslora', 'baseModelName', 'baseline'];

type Mutation =
  | { kind: 'field'; field: string; value: unknown }
  | { kind: 'hp'; field: string; value: unknown }
  | { kind: 'record-bytes'; at: number; xor: number; cut: boolean }
  | { kind: 'state'; at: number; value: number; how: 'flip' | 'cut' | 'u32' }
  | { kind: 'state-step'; step: string }
  | { kind: 'remove'; file: string };

const mutationArb: fc.Arbitrary<Mutation> = fc.oneof(
  fc.record({ kind: fc.constant('field' as const), field: fc.constantFrom(...FIELDS), value: valueArb }),
  fc.record({ kind: fc.constant('hp' as const), field: fc.constantFrom('lora_rank', 'learning_rate', 'num_train_epochs', 'max_seq_len', 'toString', 'x'), value: valueArb }),
  fc.record({ kind: fc.constant('record-bytes' as const), at: fc.nat(), xor: fc.integer({ min: 1, max: 255 }), cut: fc.boolean() }),
  fc.record({ kind: fc.constant('state' as const), at: fc.nat(), value: fc.nat({ max: 0xffffffff }), how: fc.constantFrom('flip' as const, 'cut' as const, 'u32' as const) }),
  fc.record({ kind: fc.constant('state-step' as const), step: fc.oneof(fc.constantFrom('', '0x3', ' 3', '3.0', '-3', '99999999999999999999', '4'), fc.string({ maxLength: 6 })) }),
  fc.record({ kind: fc.constant('remove' as const), file: fc.constantFrom(RUN_FILE, STATE_FILE, TRAIN_FILE, VALIDATION_FILE) }),
);

interface Files {
  record: Record<string, unknown> | Uint8Array;
  state: Uint8Array | null;
  train: Uint8Array | null;
  validation: Uint8Array | null;
}

function apply(f: Files, m: Mutation, step: number): void {
  const record = (): Record<string, unknown> | null => (f.record instanceof Uint8Array ? null : f.record);
  switch (m.kind) {
    case 'field': {
      const r = record();
      if (r) Object.defineProperty(r, m.field, { value: m.value, enumerable: true, configurable: true, writable: true });
      return;
    }
    case 'hp': {
      const hp = record()?.hp;
      if (typeof hp === 'object' && hp !== null) Object.defineProperty(hp, m.field, { value: m.value, enumerable: true, configurable: true, writable: true });
      return;
    }
    case 'record-bytes': {
      const b = f.record instanceof Uint8Array ? f.record.slice() : new TextEncoder().encode(JSON.stringify(f.record));
      if (b.length === 0) return;
      f.record = m.cut ? b.slice(0, m.at % b.length) : (b[m.at % b.length] ^= m.xor, b);
      return;
    }
    case 'state': {
      if (!f.state || f.state.length < 4) return;
      const b = f.state.slice();
      if (m.how === 'cut') f.state = b.slice(0, m.at % b.length);
      else if (m.how === 'flip') (b[m.at % b.length] ^= (m.value % 255) + 1, (f.state = b));
      else (new DataView(b.buffer).setUint32(m.at % (b.length - 3), m.value, true), (f.state = b));
      return;
    }
    case 'state-step':
      // A state whose metadata says another step, or not a number: a state of another checkpoint, or a forged one.
      f.state = writeSafetensors([{ name: 'w', dtype: 'F32', shape: [3], data: new Float32Array(3).fill(step) }], { format: 'finetune-state', step: m.step });
      return;
    case 'remove':
      if (m.file === RUN_FILE) f.record = new Uint8Array(0);
      else if (m.file === STATE_FILE) f.state = null;
      else if (m.file === TRAIN_FILE) f.train = null;
      else f.validation = null;
  }
}

async function storeOf(f: Files): Promise<RunStore> {
  const store = memoryRunStore();
  const record = f.record instanceof Uint8Array ? f.record : new TextEncoder().encode(JSON.stringify(f.record));
  await store.commit({ [RUN_FILE]: record.length ? record : null, [STATE_FILE]: f.state, [TRAIN_FILE]: f.train, [VALIDATION_FILE]: f.validation });
  return store;
}

function savedFiles(step: number, withValidation: boolean): Files {
  const run = { ...fakeRun(step), totalSteps: Math.max(step, 4), quantization: 'nf4-double' as const, validationName: withValidation ? 'val.jsonl' : null };
  const files = checkpointFiles(run, fakeState(step, 3), { train: new TextEncoder().encode('{"prompt":"a","completion":"b"}\n'), validation: withValidation ? new TextEncoder().encode('{"prompt":"c","completion":"d"}\n') : null });
  return {
    // The record's JSON, without its check line (the fuzz writes records back as JSON alone, as before the line).
    record: JSON.parse(new TextDecoder().decode(files[RUN_FILE]!).replace(/\ncrc32:[0-9a-f]{8}\n$/, '')) as Record<string, unknown>,
    state: files[STATE_FILE],
    train: files[TRAIN_FILE] ?? null,
    validation: files[VALIDATION_FILE] ?? null,
  };
}

/** A property over megabytes of input: seconds alone, longer beside the other tiers on a 2-core machine. */
const SLOW_FUZZ_MS = 30_000;

describe('saved run reader under fuzzing', () => {
  it('a saved checkpoint reads back whole', async () => {
    for (const v of [false, true]) expect(await checkContract(await storeOf(savedFiles(3, v)))).toBe(true);
  });

  it('records, states and data changed, cut or missing are refused whole or read consistently', async () => {
    let accepted = 0;
    let refused = 0;
    await fc.assert(
      fc.asyncProperty(fc.integer({ min: 0, max: 4 }), fc.boolean(), fc.array(mutationArb, { minLength: 0, maxLength: 3 }), async (step, withValidation, muts) => {
        const f = savedFiles(step, withValidation);
        for (const m of muts) apply(f, m, step);
        if (await checkContract(await storeOf(f))) accepted++;
        else refused++;
      }),
      { numRuns: 400 },
    );
    expect(accepted).toBeGreaterThan(30);
    expect(refused).toBeGreaterThan(100);
  });

  it('huge values: any field of the record holding a string of 1 MB or a list of 20,000 is refused shortly or read', async () => {
    await fc.assert(
      fc.asyncProperty(fc.constantFrom(...FIELDS), fc.constantFrom<unknown>('x'.repeat(1 << 20), Array.from({ length: 20_000 }, (_, i) => i), Object.fromEntries(Array.from({ length: 20_000 }, (_, i) => [`k${i}`, i]))), async (field, value) => {
        const f = savedFiles(2, false);
        apply(f, { kind: 'field', field, value }, 2);
        await checkContract(await storeOf(f));
      }),
      { numRuns: 60 },
    );
  }, SLOW_FUZZ_MS);

  it('random bytes as run.json and as the state', async () => {
    await fc.assert(
      fc.asyncProperty(fc.uint8Array({ maxLength: 100 }), fc.boolean(), async (bytes, asRecord) => {
        const f = savedFiles(2, false);
        if (asRecord) f.record = bytes;
        else f.state = bytes;
        await checkContract(await storeOf(f));
      }),
      { numRuns: 200 },
    );
  });
});
