// The byte helpers every floor shares: joining chunks, and the SHA-256 that names a saved state, a data file, a
// tokenizer and each part of a weight-cache entry.
import { describe, expect, it } from 'vitest';
import { concatBytes, readAtMost, sha256Hex } from '../../../src/core/bytes.ts';

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

describe('readAtMost', () => {
  /** A body of `chunks`, recording how many were pulled and whether the reader canceled it. */
  const body = (chunks: number[]) => {
    const seen = { pulled: 0, canceled: false };
    let i = 0;
    const stream = new ReadableStream<Uint8Array>({
      pull(c) {
        if (i === chunks.length) return c.close();
        seen.pulled++;
        c.enqueue(new Uint8Array(chunks[i]).fill(i + 1));
        i++;
      },
      cancel() {
        seen.canceled = true;
      },
    });
    return { stream, seen };
  };

  it('reads a body up to the bound whole, in order', async () => {
    const { stream } = body([3, 2, 5]);
    expect(await readAtMost(stream, 10)).toEqual(Uint8Array.from([1, 1, 1, 2, 2, 3, 3, 3, 3, 3]));
    expect(await readAtMost(null, 10)).toEqual(new Uint8Array(0));
    expect(await readAtMost(body([]).stream, 0)).toEqual(new Uint8Array(0));
  });

  it('gives up at the chunk that passes the bound and cancels the rest unread', async () => {
    const { stream, seen } = body([4, 4, 4, 4, 4, 4]);
    expect(await readAtMost(stream, 9)).toBeNull();
    expect(seen.canceled).toBe(true);
    expect(seen.pulled).toBeLessThanOrEqual(4); // the third chunk passes 9; at most one more queued ahead
  });
});
