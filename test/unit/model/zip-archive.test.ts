// The zip reader's answers to archives whose directory claims what the file cannot hold: counterexamples the fuzz test
// (zip-archive-fuzz.test.ts) found, pinned.
import { strToU8, zipSync } from 'fflate';
import { describe, expect, it } from 'vitest';
import { extractZip, listZip } from '../../../src/model/zip-archive.ts';
import { errorOf } from './helpers.ts';

/** The offset of the end-of-central-directory record and of the first central record of `zip`. */
function layout(zip: Uint8Array): { eocd: number; firstRecord: number } {
  const dv = new DataView(zip.buffer, zip.byteOffset, zip.byteLength);
  const eocd = zip.length - 22;
  expect(dv.getUint32(eocd, true)).toBe(0x06054b50);
  return { eocd, firstRecord: dv.getUint32(eocd + 16, true) };
}

/** `zip` with a zip64 end record and locator in front of its end record, claiming `count` entries. */
function withZip64Count(zip: Uint8Array, count: number): Uint8Array {
  const { eocd, firstRecord } = layout(zip);
  const z = new Uint8Array(56 + 20);
  const zv = new DataView(z.buffer);
  zv.setUint32(0, 0x06064b50, true);
  zv.setUint32(24, count, true);
  zv.setUint32(32, count, true);
  zv.setUint32(48, firstRecord, true);
  zv.setUint32(56, 0x07064b50, true);
  zv.setUint32(56 + 8, eocd, true);
  const out = new Uint8Array(zip.length + z.length);
  out.set(zip.subarray(0, eocd));
  out.set(z, eocd);
  out.set(zip.subarray(eocd), eocd + z.length);
  return out;
}

describe('a directory claiming more than the file holds', () => {
  it('an end record counting entries the file has no records for is refused, not listed as phantom entries', async () => {
    // The fuzzer's counterexample: an empty zip (22 bytes) whose end record counts 33,920 entries was listed as 33,920
    // entries named "", each read from zeros past the end of the file.
    const empty = zipSync({});
    new DataView(empty.buffer).setUint16(8, 33_920, true);
    expect((await errorOf(() => listZip(empty, 'x.zip'))).message).toMatch(/^x\.zip: not a readable zip archive \(its central directory: .*\)$/);
    expect((await errorOf(() => extractZip(empty, 'x.zip', () => true))).kind).toBe('bad-input');
  });

  it('a zip64 end record counting a million entries in a 200-byte file is refused at once', async () => {
    // With 2^32 - 1 in place of 10^6 the listing never ended (and grew without bound): every count was walked, each
    // record read as zeros past the end of the file.
    const zip = withZip64Count(zipSync({ 'a.txt': strToU8('hello') }, { level: 0 }), 1_000_000);
    const started = Date.now();
    const e = await errorOf(() => listZip(zip, 'x.zip'));
    expect(e.kind).toBe('bad-input');
    expect(e.message).toMatch(/central directory/);
    expect((await errorOf(() => extractZip(zip, 'x.zip', () => true))).kind).toBe('bad-input');
    expect(Date.now() - started).toBeLessThan(1000);
  });

  it('a deflated entry claiming more compressed bytes than the whole archive is refused before it is inflated', async () => {
    // 2,000,000 compressed bytes "may" deflate to 2,000,000,000, under the 2 GiB entry limit: a 117-byte zip made
    // extractZip allocate 2 GB for the entry before finding it damaged.
    const zip = zipSync({ 'a.txt': strToU8('hello hello hello hello') }, { level: 6 });
    const { firstRecord } = layout(zip);
    const dv = new DataView(zip.buffer);
    dv.setUint32(firstRecord + 20, 2_000_000, true);
    dv.setUint32(firstRecord + 24, 2_000_000_000, true);
    const e = await errorOf(() => extractZip(zip, 'x.zip', () => true));
    expect(e.kind).toBe('bad-input');
    expect(e.message).toBe(`x.zip: "a.txt" claims 2000000 compressed bytes, more than the whole archive's ${zip.length}: the archive is damaged or cut short; get it again`);
  });
});
