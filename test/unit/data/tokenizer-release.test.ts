// A model's own tokenizer is not disposed when another model loads (src/run/session.ts: a dataset read that began
// before the load may still use it). That frees nothing only if the processor outlives its last reference: the
// package's embind build deletes a handle when the garbage collector takes it (FinalizationRegistry). Checked in a
// process of its own, where the collector can be run on demand.
import { execFileSync } from 'node:child_process';
import { describe, expect, it } from 'vitest';
import { FIXTURES } from './helpers.ts';

const SCRIPT = `
const { loadTokenizer, tokenizerHeapBytes } = await import(process.argv[1]);
const bytes = new Uint8Array((await import('node:fs')).readFileSync(process.argv[2]));
const settle = async () => { for (let i = 0; i < 3; i++) { globalThis.gc(); await new Promise((r) => setTimeout(r, 0)); } };
(await loadTokenizer(bytes)).encode('warm');
await settle();
const start = await tokenizerHeapBytes();
for (let i = 0; i < 30; i++) {
  (await loadTokenizer(bytes)).encode('dropped');
  await settle();
}
const dropped = await tokenizerHeapBytes();
const kept = [];
for (let i = 0; i < 30; i++) kept.push(await loadTokenizer(bytes));
await settle();
console.log(JSON.stringify({ start, dropped, kept: await tokenizerHeapBytes(), alive: kept.length }));
`;

describe('a tokenizer nobody holds frees its WASM memory', () => {
  it("30 of Mistral's v3 tokenizers loaded and dropped leave the heap where it was; 30 kept grow it", { timeout: 90_000 }, () => {
    const out = execFileSync(
      process.execPath,
      ['--expose-gc', '--import', 'tsx', '--input-type=module', '-e', SCRIPT, new URL('../../../src/data/tokenizer.ts', import.meta.url).pathname, `${FIXTURES}/mistral-tokenizer-v3/tokenizer.model`],
      { encoding: 'utf8', timeout: 60_000 },
    );
    const m = JSON.parse(out.trim().split('\n').pop() ?? '{}') as { start: number; dropped: number; kept: number };
    expect(m.start).toBeGreaterThan(0);
    // Each processor of the v3 model holds over a megabyte: kept, 30 of them take 30 MB or more of new memory.
    expect(m.kept - m.dropped).toBeGreaterThanOrEqual(30 * 1024 * 1024);
    // Dropped (and collected before the next load, as a model load minutes later would find it), their memory is
    // reused: at most what two processors take.
    expect(m.dropped - m.start).toBeLessThanOrEqual(8 * 1024 * 1024);
  });
});
