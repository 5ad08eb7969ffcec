// Text of generated tokens as they arrive. A token is not always whole text: SentencePiece's byte-fallback pieces
// carry one byte of a multi-byte UTF-8 character each, and a word's leading space depends on what precedes it. So the
// stream decodes everything generated so far and hands out only what is new, holding back a trailing U+FFFD (an
// incomplete character) until the bytes that complete it arrive. The pieces joined equal decode(all ids).

const REPLACEMENT = '\uFFFD';

export class TextStream {
  private readonly ids: number[] = [];
  private readonly contextText: string;
  private emitted: string;

  /**
   * `context`: the ids just before the generated ones (the prompt's last token or so). SentencePiece drops the leading
   * space of the first piece it decodes, so the generated ids are decoded after their context and the context's own
   * text is cut off: " world" after "Hello", not "world".
   */
  constructor(
    private readonly decode: (ids: readonly number[]) => string,
    private context: readonly number[] = [],
  ) {
    // A context that ends inside a character (a byte-fallback piece) would never be a prefix of the joined text.
    const text = context.length ? decode(context) : '';
    if (text.endsWith(REPLACEMENT)) this.context = [];
    this.contextText = this.context.length ? text : '';
    this.emitted = this.contextText;
  }

  /** Adds one token; returns the text it completes ('' when it only starts a character). */
  push(id: number): string {
    this.ids.push(id);
    return this.take(false);
  }

  /** Whatever is still held back (an incomplete character at the very end comes out as U+FFFD). */
  finish(): string {
    return this.take(true);
  }

  /** Everything generated so far, decoded at once (after the context, without the context's text). */
  get text(): string {
    const all = this.decodeAll();
    return all.startsWith(this.contextText) ? all.slice(this.contextText.length) : this.decode(this.ids);
  }

  private decodeAll(): string {
    return this.decode(this.context.length ? [...this.context, ...this.ids] : this.ids);
  }

  private take(final: boolean): string {
    const all = this.decodeAll();
    if (!final && all.endsWith(REPLACEMENT)) return '';
    if (!all.startsWith(this.emitted)) return ''; // a decoder that rewrote earlier text: wait until it agrees again
    const piece = all.slice(this.emitted.length);
    this.emitted = all;
    return piece;
  }
}
