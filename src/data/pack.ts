// Packing examples into sequences (the rows of a batch), with Replicate's semantics (docs/replicate-trainer.md, llama-recipes'
// Concatenator) — except that the final partial pack is kept, never dropped:
//   pack_sequences false: one example per sequence.
//   pack_sequences true, wrap_packed_sequences false (greedy): append whole examples while the pack stays
//     ≤ chunk_size tokens; an example longer than chunk_size makes a pack of its own (it is already ≤ max_seq_len).
//   pack_sequences true, wrap_packed_sequences true: concatenate every example and cut every chunk_size tokens; an
//     example can be split across two packs.
// A sequence is a list of segments (a token range of one example). Segments never attend to each other: the batch
// builder gives each its own segment id and positions restarting at 0.

export interface Segment {
  /** Index into the examples array. */
  example: number;
  /** Token range [start, end) of that example. */
  start: number;
  end: number;
}

export type Sequence = Segment[];

export interface PackOptions {
  pack: boolean;
  wrap: boolean;
  chunkSize: number;
}

export function sequenceLength(seq: Sequence): number {
  let n = 0;
  for (const s of seq) n += s.end - s.start;
  return n;
}

/**
 * Packs the examples taken in `order` (indices into `lengths`, e.g. an epoch's shuffle) into sequences.
 * `lengths[i]` is the token count of example i (≥ 1).
 */
export function packSequences(lengths: ArrayLike<number>, order: ArrayLike<number>, opts: PackOptions): Sequence[] {
  const out: Sequence[] = [];
  if (!opts.pack) {
    for (let k = 0; k < order.length; k++) {
      const e = order[k];
      out.push([{ example: e, start: 0, end: lengths[e] }]);
    }
    return out;
  }
  const chunk = opts.chunkSize;
  if (!Number.isInteger(chunk) || chunk < 1) throw new RangeError(`packSequences: chunkSize must be a positive integer, got ${chunk}`);
  if (!opts.wrap) {
    let cur: Sequence = [];
    let curLen = 0;
    for (let k = 0; k < order.length; k++) {
      const e = order[k];
      const len = lengths[e];
      if (curLen > 0 && curLen + len > chunk) {
        out.push(cur);
        cur = [];
        curLen = 0;
      }
      cur.push({ example: e, start: 0, end: len });
      curLen += len;
    }
    if (curLen > 0) out.push(cur);
    return out;
  }
  let cur: Sequence = [];
  let room = chunk;
  for (let k = 0; k < order.length; k++) {
    const e = order[k];
    const len = lengths[e];
    let start = 0;
    while (start < len) {
      const take = Math.min(room, len - start);
      cur.push({ example: e, start, end: start + take });
      start += take;
      room -= take;
      if (room === 0) {
        out.push(cur);
        cur = [];
        room = chunk;
      }
    }
  }
  if (cur.length > 0) out.push(cur);
  return out;
}
