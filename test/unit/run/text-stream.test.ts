// Streamed text: a multi-byte character split over byte-fallback tokens comes out whole, once its last byte arrives,
// and the pieces join to the decoding of all tokens.
import { describe, expect, it } from 'vitest';
import { TextStream } from '../../../src/run/text-stream.ts';

// A toy vocabulary: ids 0..255 are raw bytes (as SentencePiece's <0xNN> pieces), 256+ are words with a leading space.
const WORDS = ['Hello', 'world'];
function decode(ids: readonly number[]): string {
  const bytes: number[] = [];
  for (const id of ids) {
    if (id < 256) bytes.push(id);
    else bytes.push(...new TextEncoder().encode(` ${WORDS[id - 256]}`));
  }
  // As SentencePiece: the first piece's leading space is dropped.
  return new TextDecoder().decode(new Uint8Array(bytes)).replace(/^ /, '');
}

describe('TextStream', () => {
  it('holds back the bytes of a character until it is complete', () => {
    const s = new TextStream(decode);
    const euro = [...new TextEncoder().encode('€')]; // three bytes
    expect(s.push(256)).toBe('Hello');
    expect(s.push(euro[0])).toBe('');
    expect(s.push(euro[1])).toBe('');
    expect(s.push(euro[2])).toBe('€');
    expect(s.push(257)).toBe(' world');
    expect(s.finish()).toBe('');
    expect(s.text).toBe('Hello€ world');
  });

  it('the pieces join to decode(all ids), an unfinished character included at the end', () => {
    const ids = [257, 256, 0xe2, 0x82, 0xac, 256, 0xf0, 0x9f];
    const s = new TextStream(decode);
    const pieces = ids.map((id) => s.push(id));
    pieces.push(s.finish());
    expect(pieces.join('')).toBe(decode(ids));
    expect(pieces.at(-1)).toBe('\uFFFD');
  });

  it('continuing a prompt, the first generated word keeps its leading space (decoded after the prompt\'s last token)', () => {
    const s = new TextStream(decode, [256]); // the prompt ends in "Hello"
    expect(s.push(257)).toBe(' world');
    expect(s.push(256)).toBe(' Hello');
    expect(s.finish()).toBe('');
    expect(s.text).toBe(' world Hello');
  });
});
