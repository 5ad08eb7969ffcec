// Text of generated tokens as they arrive. A token is not always whole text: SentencePiece's byte-fallback pieces
// carry one byte of a multi-byte UTF-8 character each, and a word's leading space depends on what precedes it. So the
// stream decodes everything generated so far and hands out only what is new, holding back a trailing U+FFFD (an
// incomplete character) until the bytes that complete it arrive. The pieces joined equal decode(all ids).

const REPLACEMENT = '\uFFFD';

export class TextStream {
  private readonly ids: number[] = [];
  private emitted = '';

  constructor(private readonly decode: (ids: readonly number[]) => string) {}

  /** Adds one token; returns the text it completes ('' when it only starts a character). */
  push(id: number): string {
    this.ids.push(id);
    return this.take(false);
  }

  /** Whatever is still held back (an incomplete character at the very end comes out as U+FFFD). */
  finish(): string {
    return this.take(true);
  }

  /** Everything so far, decoded at once. */
  get text(): string {
    return this.decode(this.ids);
  }

  private take(final: boolean): string {
    const all = this.decode(this.ids);
    if (!final && all.endsWith(REPLACEMENT)) return '';
    if (!all.startsWith(this.emitted)) return ''; // a decoder that rewrote earlier text: wait until it agrees again
    const piece = all.slice(this.emitted.length);
    this.emitted = all;
    return piece;
  }
}
