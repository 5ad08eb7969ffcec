// Float64 reference of the fused lm_head + cross-entropy (shaders/xent.wgsl with the matmul family around it).

import type { Vec } from './common.ts';

export interface XentRef {
  /** lossScale · Σ over counted tokens of (lse − logit[target]), each term times weights[t] when given. */
  loss: number;
  /** (BT) logsumexp of each row of logits. */
  lse: Float64Array;
  /** (BT, C) = ((softmax − onehot(target)) · gradScale) · W, zero rows for ignored targets. */
  dh: Float64Array;
  /** Number of tokens whose target is in [0, V). */
  counted: number;
}

/** logits = h (BT, C) · Wᵀ with W (V, C) given as float values; targets −100 (or outside [0, V)) are ignored. */
export function lmheadXentRef(h: Vec, W: Vec, targets: ArrayLike<number>, BT: number, C: number, V: number, gradScale: number, lossScale = 1, weights?: ArrayLike<number>): XentRef {
  const lse = new Float64Array(BT);
  const dh = new Float64Array(BT * C);
  const logits = new Float64Array(V);
  let loss = 0;
  let counted = 0;
  for (let t = 0; t < BT; t++) {
    let m = -Infinity;
    for (let v = 0; v < V; v++) {
      let s = 0;
      for (let c = 0; c < C; c++) s += h[t * C + c] * W[v * C + c];
      logits[v] = s;
      m = Math.max(m, s);
    }
    let sum = 0;
    for (let v = 0; v < V; v++) sum += Math.exp(logits[v] - m);
    lse[t] = m + Math.log(sum);
    const tgt = targets[t];
    if (!(tgt >= 0 && tgt < V)) continue;
    counted++;
    loss += (lse[t] - logits[tgt]) * (weights ? weights[t] : 1);
    for (let v = 0; v < V; v++) {
      const g = (Math.exp(logits[v] - lse[t]) - (v === tgt ? 1 : 0)) * gradScale;
      for (let c = 0; c < C; c++) dh[t * C + c] += g * W[v * C + c];
    }
  }
  return { loss: loss * lossScale, lse, dh, counted };
}

/** gather_rows: out[i, :] = src[index[row0 + i], :] for i < n. */
export function gatherRowsRef(src: Vec, index: ArrayLike<number>, row0: number, n: number, width: number): Float64Array {
  const out = new Float64Array(n * width);
  for (let i = 0; i < n; i++) for (let c = 0; c < width; c++) out[i * width + c] = src[index[row0 + i] * width + c];
  return out;
}

/** scatter_rows: a copy of `into` with into[index[row0 + i], :] = src[i, :] for i < n. */
export function scatterRowsRef(into: Vec, src: Vec, index: ArrayLike<number>, row0: number, n: number, width: number): Float64Array {
  const out = Float64Array.from(into);
  for (let i = 0; i < n; i++) for (let c = 0; c < width; c++) out[index[row0 + i] * width + c] = src[i * width + c];
  return out;
}
