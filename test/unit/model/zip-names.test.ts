// zipNamesFromTail lists a zip's entries from its last bytes alone: the names fflate's own reader (listZip) finds, and
// null where the directory does not lie in the bytes given.
import { strToU8, zipSync } from 'fflate';
import { describe, expect, it } from 'vitest';
import { listZip, zipNamesFromTail } from '../../../src/model/zip-archive.ts';

describe('zipNamesFromTail', () => {
  const big = new Uint8Array(200_000).map((_, i) => (i * 7919) % 251); // incompressible enough to stay large
  const zip = zipSync({ 'a/': new Uint8Array(0), 'a/first.bin': big, 'a/é.txt': strToU8('x'), 'last.json': strToU8('{}') }, { level: 0 });

  it("finds fflate's names, in order, from a tail that holds the directory, and the whole file", () => {
    const fflate = listZip(zip, 'test').map((e) => e.name);
    for (const tail of [zip, zip.subarray(zip.length - 1000)]) {
      const names = zipNamesFromTail(tail, zip.length);
      expect(names?.filter((n) => !n.endsWith('/'))).toEqual(fflate);
      expect(names).toContain('a/');
    }
  });

  it('null when the directory starts before the tail, for bytes that are not a zip, and for an empty tail', () => {
    expect(zipNamesFromTail(zip.subarray(zip.length - 40), zip.length)).toBeNull();
    expect(zipNamesFromTail(new Uint8Array(100), 100)).toBeNull();
    expect(zipNamesFromTail(new Uint8Array(0), 0)).toBeNull();
    expect(zipNamesFromTail(zipSync({}), 22)).toEqual([]);
  });
});
