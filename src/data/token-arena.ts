// Token ids of a whole dataset held compactly: many examples' ids packed into a few large typed arrays, each example
// a view into one of them. One typed array per example costs a separate backing store (a few hundred bytes of
// bookkeeping per row, more than the ids of a short row); a Mistral id fits in 16 bits, half of a Uint32Array.

import type { TokenIds } from './layout.ts';

const FIRST_BLOCK = 1 << 16; // tokens: small datasets (tests, the demo) stay small
const LARGEST_BLOCK = 1 << 20; // 2 MiB of Uint16: a row never wastes more than its own length at a block's end

export class TokenArena {
  /** True when ids need 32 bits (a vocabulary above 65536). */
  readonly wide: boolean;
  private block: TokenIds;
  private used = 0;
  /** Tokens held, over every block. */
  tokens = 0;

  constructor(vocabSize: number) {
    this.wide = vocabSize > 0x10000;
    this.block = this.allocate(FIRST_BLOCK);
  }

  private allocate(n: number): TokenIds {
    return this.wide ? new Uint32Array(n) : new Uint16Array(n);
  }

  /** A copy of `ids` inside the arena (every id must be below the vocabulary size given). */
  hold(ids: ArrayLike<number>): TokenIds {
    const n = ids.length;
    if (this.used + n > this.block.length) {
      // The next block doubles (up to LARGEST_BLOCK) and always fits this row; the old block's tail stays unused.
      this.block = this.allocate(Math.max(n, Math.min(LARGEST_BLOCK, this.block.length * 2)));
      this.used = 0;
    }
    const view = this.block.subarray(this.used, this.used + n);
    view.set(ids);
    this.used += n;
    this.tokens += n;
    return view;
  }
}
