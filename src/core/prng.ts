// A seeded PRNG of our own (xoshiro128**, seeded through splitmix32) so that shuffling is reproducible bit for bit
// in Node and in every browser: Math.random is neither seedable nor the same across engines. Only 32-bit integer
// arithmetic (Math.imul, >>>) is used, which every JS engine computes identically.

/** splitmix32 step: a well-mixed 32-bit output from a 32-bit counter. */
function splitmix32(state: { s: number }): number {
  state.s = (state.s + 0x9e3779b9) >>> 0;
  let z = state.s;
  z = Math.imul(z ^ (z >>> 16), 0x85ebca6b) >>> 0;
  z = Math.imul(z ^ (z >>> 13), 0xc2b2ae35) >>> 0;
  return (z ^ (z >>> 16)) >>> 0;
}

function rotl(x: number, k: number): number {
  return ((x << k) | (x >>> (32 - k))) >>> 0;
}

export interface Rng {
  /** A uniform 32-bit unsigned integer. */
  nextU32(): number;
  /** A uniform float in [0, 1) with 32 bits of randomness. */
  next(): number;
  /** A uniform integer in [0, n) without modulo bias; n must be an integer from 1 to 2^32. */
  int(n: number): number;
}

/**
 * A deterministic generator for a seed (any safe integer, e.g. the `seed` hyperparameter) and a stream number
 * (e.g. the epoch), so that every (seed, stream) pair gives an independent, reproducible sequence.
 */
export function createRng(seed: number, stream = 0): Rng {
  if (!Number.isSafeInteger(seed) || !Number.isSafeInteger(stream)) {
    throw new RangeError(`createRng: seed and stream must be safe integers, got ${seed}, ${stream}`);
  }
  // Fold both 32-bit halves of each number (negative numbers included) into the splitmix state.
  const lo = (x: number) => x >>> 0;
  const hi = (x: number) => Math.floor(x / 4294967296) >>> 0;
  const init = { s: 0 };
  init.s = lo(seed);
  const a = splitmix32(init);
  init.s = (a ^ hi(seed)) >>> 0;
  const b = splitmix32(init);
  init.s = (b ^ lo(stream)) >>> 0;
  const c = splitmix32(init);
  init.s = (c ^ hi(stream)) >>> 0;
  const s = [splitmix32(init), splitmix32(init), splitmix32(init), splitmix32(init)];
  if ((s[0] | s[1] | s[2] | s[3]) === 0) s[0] = 1; // the all-zero state is the one xoshiro cannot leave

  const nextU32 = (): number => {
    const result = Math.imul(rotl(Math.imul(s[1], 5) >>> 0, 7), 9) >>> 0;
    const t = (s[1] << 9) >>> 0;
    s[2] = (s[2] ^ s[0]) >>> 0;
    s[3] = (s[3] ^ s[1]) >>> 0;
    s[1] = (s[1] ^ s[2]) >>> 0;
    s[0] = (s[0] ^ s[3]) >>> 0;
    s[2] = (s[2] ^ t) >>> 0;
    s[3] = rotl(s[3], 11);
    return result;
  };
  return {
    nextU32,
    next: () => nextU32() / 4294967296,
    int(n: number): number {
      if (!Number.isInteger(n) || n < 1 || n > 4294967296) throw new RangeError(`Rng.int: n must be an integer from 1 to 2^32, got ${n}`);
      // Rejection sampling: accept only draws below the largest multiple of n, so every residue is equally likely.
      const limit = 4294967296 - (4294967296 % n);
      for (;;) {
        const x = nextU32();
        if (x < limit) return x % n;
      }
    },
  };
}

/** Fisher–Yates shuffle in place with a seeded generator. */
export function shuffleInPlace<T>(items: { length: number; [i: number]: T }, rng: Rng): void {
  for (let i = items.length - 1; i > 0; i--) {
    const j = rng.int(i + 1);
    const tmp = items[i];
    items[i] = items[j];
    items[j] = tmp;
  }
}

/** The permutation of 0..n-1 used for epoch `epoch` of a run with seed `seed`. */
export function epochPermutation(n: number, seed: number, epoch: number): Uint32Array {
  const order = new Uint32Array(n);
  for (let i = 0; i < n; i++) order[i] = i;
  shuffleInPlace(order, createRng(seed, epoch));
  return order;
}

/**
 * The stream that initialises a new LoRA adapter's A matrices for a `seed`: far from the epoch numbers that the
 * data order uses as streams, so the two never share a sequence.
 */
export const ADAPTER_INIT_STREAM = 0x4c6f5241; // 'LoRA'

/** Uniform floats in [0, 1) from (seed, stream), as a plain function (what adapter initialisation takes). */
export function uniformSource(seed: number, stream = 0): () => number {
  const rng = createRng(seed, stream);
  return () => rng.next();
}
