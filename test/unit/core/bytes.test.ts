// The byte helpers every floor shares: joining chunks, and the SHA-256 that names a saved state, a data file, a
// tokenizer and each part of a weight-cache entry.
import { describe, expect, it } from 'vitest';
import { concatBytes, sha256Hex } from '../../../src/core/bytes.ts';

describe('concatBytes', () => {
  it('joins the parts in order, returns a lone part itself, and gives an empty array for none', () => {
    const a = new Uint8Array([1, 2]);
    expect([...concatBytes([a, new Uint8Array([]), new Uint8Array([3])])]).toEqual([1, 2, 3]);
    expect(concatBytes([a])).toBe(a);
    expect(concatBytes([]).byteLength).toBe(0);
  });
});

describe('sha256Hex', () => {
  it('gives FIPS 180-2 test vectors, for a view into a larger buffer and one on a SharedArrayBuffer too', async () => {
    expect(await sha256Hex(new TextEncoder().encode('abc'))).toBe('ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad');
    expect(await sha256Hex(new Uint8Array(0))).toBe('e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855');
    const padded = new TextEncoder().encode('xxabcxx').subarray(2, 5);
    expect(await sha256Hex(padded)).toBe('ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad');
    const shared = new Uint8Array(new SharedArrayBuffer(3));
    shared.set(new TextEncoder().encode('abc'));
    expect(await sha256Hex(shared)).toBe('ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad');
  });
});
