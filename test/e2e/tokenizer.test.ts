// The tokenizer and the data layouts inside the browser's worker (SentencePiece WASM, the streaming JSONL reader over
// a Blob stream) must give exactly the ids of canonical SentencePiece and of the goldens' layouts.
import type { EngineApi } from '../../src/worker/api.ts';
import { readFileSync } from 'node:fs';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type * as Comlink from 'comlink';
import { openApp, type App } from './browser.ts';

interface Golden {
  texts: { text: string; ids: number[] }[];
  formats: {
    replicate: { examples: { prompt?: string; completion?: string; text?: string; ids: number[] }[] };
    instruct: { examples: { prompt: string; completion: string; prompt_ids: number[]; completion_ids: number[] }[] };
  };
}
const golden = JSON.parse(readFileSync('test/fixtures/tokenizer_golden.json', 'utf8')) as Golden;
type Win = { finetuneEngine: Comlink.Remote<EngineApi> };

describe('tokenizer goldens in the browser worker', () => {
  let app: App;
  beforeAll(async () => {
    app = await openApp();
    await app.page.waitForFunction(() => 'finetuneEngine' in window);
  });
  afterAll(async () => {
    await app?.close();
  });

  it(`encodes all ${golden.texts.length} golden texts exactly as SentencePiece`, async () => {
    const texts = golden.texts.map((t) => t.text);
    const ids = await app.page.evaluate((t) => (window as unknown as Win).finetuneEngine.tokenize(t), texts);
    expect(ids).toEqual(golden.texts.map((t) => t.ids));
  });

  it('lays rows out as Replicate does and as mistral-common does (ids and loss labels)', async () => {
    const rows = (examples: object[]): string => examples.map((e) => JSON.stringify(Object.fromEntries(Object.entries(e).filter(([k]) => ['prompt', 'completion', 'text'].includes(k))))).join('\n');
    const rep = golden.formats.replicate.examples.filter((e) => e.prompt !== undefined);
    const got = await app.page.evaluate(([jsonl]) => (window as unknown as Win).finetuneEngine.encodeDataset(jsonl, 'replicate'), [rows(rep)] as const);
    expect(got.examples.map((e) => e.ids)).toEqual(rep.map((e) => e.ids));
    expect(got.examples.every((e) => e.labels.every((l, i) => l === e.ids[i]))).toBe(true);

    const ins = golden.formats.instruct.examples;
    const got2 = await app.page.evaluate(([jsonl]) => (window as unknown as Win).finetuneEngine.encodeDataset(jsonl, 'instruct'), [rows(ins)] as const);
    expect(got2.examples.map((e) => e.ids)).toEqual(ins.map((e) => [...e.prompt_ids, ...e.completion_ids]));
    expect(got2.examples.map((e) => e.labels)).toEqual(ins.map((e) => [...e.prompt_ids.map(() => -100), ...e.completion_ids]));
  });

  it('reports problems of a broken file with line numbers', async () => {
    const bad = '{"prompt": "a", "completion": "b"}\n{not json}\n\n{"text": 5}\n';
    const got = await app.page.evaluate(([jsonl]) => (window as unknown as Win).finetuneEngine.encodeDataset(jsonl, 'replicate'), [bad] as const);
    expect(got.problems.some((p) => p.startsWith('line 2'))).toBe(true);
    expect(got.problems.some((p) => p.startsWith('line 4'))).toBe(true);
  });
});
