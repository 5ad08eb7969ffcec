// A run record carries its own check (a CRC-32 line after its JSON): a flipped byte in it resumed a run at another
// learning rate, seed or dropout, exported another lora_alpha, and a flip in the key "stateChecksum" switched the
// state's own check off. A record from before the line is read as it was; damage to the line is never taken for one.
import { describe, expect, it } from 'vitest';
import { memoryRunStore } from '../../../src/run/run-store.ts';
import { checkpointFiles, isDamagedRun, readSavedRun, recordBytes, RUN_FILE, STATE_FILE } from '../../../src/run/saved-run.ts';
import { fakeRun, fakeState } from '../../helpers/fake-checkpoint.ts';
import { errorOf } from '../model/helpers.ts';

const train = new TextEncoder().encode('{"text":"a"}\n');
const text = (b: Uint8Array): string => new TextDecoder().decode(b);
const bytes = (s: string): Uint8Array => new TextEncoder().encode(s);

async function withRecord(record: Uint8Array): Promise<ReturnType<typeof memoryRunStore>> {
  const store = memoryRunStore();
  await store.commit({ [RUN_FILE]: record, [STATE_FILE]: fakeState(2, 4) });
  return store;
}

describe("a run record's check line", () => {
  const run = { ...fakeRun(2), hp: { ...fakeRun(2).hp, learning_rate: 0.0001 }, stateChecksum: `sha256:${'0'.repeat(64)}` };

  it('is written after the JSON, and a record read back is the one written', async () => {
    const written = text(recordBytes(run));
    expect(written).toMatch(/^\{.*\}\ncrc32:[0-9a-f]{8}\n$/s);
    const store = memoryRunStore();
    await store.commit(checkpointFiles(run, fakeState(2, 4), { train, validation: null }));
    expect((await readSavedRun(store))?.hp.learning_rate).toBe(0.0001);
  });

  it('refuses a record with one byte changed: a value (the learning rate), or a key (stateChecksum)', async () => {
    const good = text(recordBytes(run));
    for (const damaged of [good.replace('"learning_rate":0.0001', '"learning_rate":0.0003'), good.replace('"stateChecksum"', '"statechecksum"')]) {
      expect(damaged).not.toBe(good);
      const e = await errorOf(async () => readSavedRun(await withRecord(bytes(damaged)), 'OUT/run'));
      expect(isDamagedRun(e)).toBe(true);
      expect(e.message).toMatch(/^the saved run in "OUT\/run" is unreadable \(run\.json: its contents do not match its check \(crc32 [0-9a-f]{8}, written [0-9a-f]{8}\): the record is damaged\)$/);
    }
  });

  it('refuses a record whose check line is damaged: it is never taken for a record from before the line', async () => {
    const good = text(recordBytes(run));
    const line = good.lastIndexOf('crc32:');
    for (const damaged of [`${good.slice(0, line)}crc33:${good.slice(line + 6)}`, `${good.slice(0, line - 1)} ${good.slice(line)}`, good.slice(0, -2)]) {
      const e = await errorOf(async () => readSavedRun(await withRecord(bytes(damaged))));
      expect(isDamagedRun(e)).toBe(true);
    }
  });

  it('reads a record written before the line (JSON alone) as it was', async () => {
    const legacy = bytes(JSON.stringify(run));
    expect((await readSavedRun(await withRecord(legacy)))?.hp.learning_rate).toBe(0.0001);
  });
});
