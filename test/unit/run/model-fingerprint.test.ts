// A local model file's sampled content hash (src/run/model-fingerprint.ts): what a resume compares where a local file's
// name, size and modification time cannot tell two models apart.
import { describe, expect, it } from 'vitest';
import { contentFingerprint, FINGERPRINT_BLOCK, localFingerprints, withFingerprints } from '../../../src/run/model-fingerprint.ts';
import { blobFileSet, memoryFileSet } from '../../../src/model/source.ts';

const print = (bytes: Uint8Array) => contentFingerprint(async (o, n) => bytes.slice(o, o + n), bytes.length);
const bytesOf = (n: number, seed: number) => new Uint8Array(n).map((_, i) => (i * 31 + seed) & 0xff);

describe('contentFingerprint', () => {
  it('is the same for the same bytes, and another for a change in a sampled block or another size', async () => {
    const big = bytesOf(10 * FINGERPRINT_BLOCK + 123, 1);
    const a = await print(big);
    expect(a).toMatch(/^sampled-sha256:[0-9a-f]{64}$/);
    expect(await print(big.slice())).toBe(a);
    // The start, the thirds and the end are sampled: a change in any of them shows.
    for (const at of [5, Math.floor(big.length / 3) + 10, Math.floor((2 * big.length) / 3) + 10, big.length - 1]) {
      const changed = big.slice();
      changed[at] ^= 1;
      expect(await print(changed), `byte ${at}`).not.toBe(a);
    }
    expect(await print(big.subarray(0, big.length - 1))).not.toBe(a);
  });

  it('hashes a file smaller than a block whole, each byte of it', async () => {
    const small = bytesOf(1000, 2);
    const a = await print(small);
    for (const at of [0, 500, 999]) {
      const changed = small.slice();
      changed[at] ^= 1;
      expect(await print(changed)).not.toBe(a);
    }
    expect(await print(new Uint8Array(0))).toMatch(/^sampled-sha256:/);
  });
});

describe('localFingerprints', () => {
  it('prints local files only (a server\'s files have versions of their own), and withFingerprints adds them by name', async () => {
    const local = blobFileSet([new File([bytesOf(300, 3)], 'config.json', { lastModified: 1 })]);
    const prints = await localFingerprints(local, ['config.json']);
    expect(prints.get('config.json')).toBe(await print(bytesOf(300, 3)));
    // Memory sources (no version) are not local files.
    expect((await localFingerprints(memoryFileSet({ 'config.json': bytesOf(300, 3) }), ['config.json'])).size).toBe(0);
    expect(withFingerprints([{ name: 'config.json', size: 300, version: 'file 300 1' }, { name: 'x', size: 1, version: null }], prints)).toEqual([
      { name: 'config.json', size: 300, version: 'file 300 1', fingerprint: prints.get('config.json') },
      { name: 'x', size: 1, version: null },
    ]);
  });
});
