// Shared helpers of the data tests: the project's tokenizer, byte sources cut into chunks, fixtures.
import { readFileSync } from 'node:fs';
import { loadTokenizer, type Tokenizer } from '../../../src/data/tokenizer.ts';

export const FIXTURES = 'test/fixtures';
export const DATA = `${FIXTURES}/data`;

let tok: Promise<Tokenizer> | null = null;
/** The Mistral tokenizer of test/fixtures, loaded once per test file. */
export function mistralTokenizer(): Promise<Tokenizer> {
  tok ??= loadTokenizer(new Uint8Array(readFileSync(`${FIXTURES}/mistral-tokenizer/tokenizer.model`)));
  return tok;
}

export function fixtureBytes(name: string): Uint8Array {
  return new Uint8Array(readFileSync(`${DATA}/${name}`));
}

export const utf8 = (s: string): Uint8Array => new TextEncoder().encode(s);

/** `bytes` cut at the given offsets (sorted, deduplicated), as an async iterable of chunks. */
export async function* chunked(bytes: Uint8Array, cuts: number[]): AsyncGenerator<Uint8Array> {
  const points = [...new Set(cuts.filter((c) => c > 0 && c < bytes.length))].sort((a, b) => a - b);
  let prev = 0;
  for (const p of [...points, bytes.length]) {
    // Copies, and the producer then scribbles over its buffer, as a stream that reuses buffers may do.
    const piece = bytes.slice(prev, p);
    yield piece;
    piece.fill(0x7a);
    prev = p;
  }
}

/** A WHATWG ReadableStream over the bytes, `size` bytes per chunk. */
export function streamOf(bytes: Uint8Array, size: number): ReadableStream<Uint8Array> {
  let pos = 0;
  return new ReadableStream<Uint8Array>({
    pull(controller) {
      if (pos >= bytes.length) controller.close();
      else {
        controller.enqueue(bytes.slice(pos, pos + size));
        pos += size;
      }
    },
  });
}

export interface Golden {
  texts: { text: string; ids: number[] }[];
  formats: {
    replicate: { examples: ({ text: string; ids: number[] } | { prompt: string; completion: string; ids: number[] })[] };
    instruct: { examples: { prompt: string; completion: string; prompt_ids: number[]; completion_ids: number[] }[] };
  };
}

export function golden(): Golden {
  return JSON.parse(readFileSync(`${FIXTURES}/tokenizer_golden.json`, 'utf8')) as Golden;
}
