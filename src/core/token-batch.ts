// One micro-batch of token rows: what the data pipeline builds (data/batches.ts MicroBatch adds its bookkeeping) and
// what the GPU runner reads (engine/mistral/model.ts setBatch). One type, one set of field names, for both floors.

/** B rows of T tokens; every array is B·T long, row-major. */
export interface TokenBatch {
  B: number;
  T: number;
  inputIds: ArrayLike<number>;
  /** Already shifted: targets[t] is the token logits[t] must predict; −100 = no loss. */
  targets: ArrayLike<number>;
  /** Per-token segment id: 0 = padding, packed examples differ. */
  segmentIds: ArrayLike<number>;
  /** Position ids, restarting at each packed example. */
  positionIds: ArrayLike<number>;
}

/** B rows of T tokens, one sequence per row (nothing packed, nothing padded): segment 1 throughout, positions 0..T−1. */
export function unpackedBatch(B: number, T: number, inputIds: ArrayLike<number>, targets: ArrayLike<number>): TokenBatch {
  return { B, T, inputIds, targets, segmentIds: new Uint32Array(B * T).fill(1), positionIds: Uint32Array.from({ length: B * T }, (_, i) => i % T) };
}
