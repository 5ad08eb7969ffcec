// Float64 reference of the attention family (shaders/attention.wgsl): plain softmax attention with the causal segment
// mask, one (query, head) row at a time, and its exact gradient.

import type { Vec } from './common.ts';

export interface AttentionDims {
  B: number;
  T: number;
  nH: number;
  nKV: number;
  hd: number;
}

/** Query i of row b sees key j iff j ≤ i, same segment id, and the query is not padding (seg 0). */
export function attends(seg: ArrayLike<number>, b: number, T: number, i: number, j: number): boolean {
  const si = seg[b * T + i];
  return j <= i && si !== 0 && seg[b * T + j] === si;
}

/** Softmax probabilities of one (b, i, h) row over keys 0..i (masked ones 0), and its lse; null for padding. */
function probs(q: Vec, k: Vec, seg: ArrayLike<number>, d: AttentionDims, b: number, i: number, h: number): { P: Float64Array; lse: number } | null {
  const { T, nH, nKV, hd } = d;
  const kvh = Math.floor(h / (nH / nKV));
  const scale = 1 / Math.sqrt(hd);
  const S = new Float64Array(i + 1).fill(-Infinity);
  let m = -Infinity;
  const qo = (b * T + i) * nH * hd + h * hd;
  for (let j = 0; j <= i; j++) {
    if (!attends(seg, b, T, i, j)) continue;
    const ko = (b * T + j) * nKV * hd + kvh * hd;
    let s = 0;
    for (let c = 0; c < hd; c++) s += q[qo + c] * k[ko + c];
    S[j] = s * scale;
    m = Math.max(m, S[j]);
  }
  if (m === -Infinity) return null;
  let sum = 0;
  for (let j = 0; j <= i; j++) sum += S[j] === -Infinity ? 0 : Math.exp(S[j] - m);
  const lse = m + Math.log(sum);
  const P = new Float64Array(i + 1);
  for (let j = 0; j <= i; j++) P[j] = S[j] === -Infinity ? 0 : Math.exp(S[j] - lse);
  return { P, lse };
}

/** out (BT, nH·hd), lse (BT, nH) in float64. */
export function attentionForwardRef(q: Vec, k: Vec, v: Vec, seg: ArrayLike<number>, d: AttentionDims): { out: Float64Array; lse: Float64Array } {
  const { B, T, nH, nKV, hd } = d;
  const out = new Float64Array(B * T * nH * hd);
  const lse = new Float64Array(B * T * nH);
  const G = nH / nKV;
  for (let b = 0; b < B; b++) {
    for (let i = 0; i < T; i++) {
      for (let h = 0; h < nH; h++) {
        const r = probs(q, k, seg, d, b, i, h);
        if (!r) continue;
        lse[(b * T + i) * nH + h] = r.lse;
        const oo = (b * T + i) * nH * hd + h * hd;
        for (let j = 0; j <= i; j++) {
          if (r.P[j] === 0) continue;
          const vo = (b * T + j) * nKV * hd + Math.floor(h / G) * hd;
          for (let c = 0; c < hd; c++) out[oo + c] += r.P[j] * v[vo + c];
        }
      }
    }
  }
  return { out, lse };
}

/** dq (BT, nH·hd), dk, dv (BT, nKV·hd) in float64, for the loss Σ dout·out. */
export function attentionBackwardRef(
  dout: Vec,
  q: Vec,
  k: Vec,
  v: Vec,
  seg: ArrayLike<number>,
  d: AttentionDims,
): { dq: Float64Array; dk: Float64Array; dv: Float64Array } {
  const { B, T, nH, nKV, hd } = d;
  const G = nH / nKV;
  const scale = 1 / Math.sqrt(hd);
  const dq = new Float64Array(B * T * nH * hd);
  const dk = new Float64Array(B * T * nKV * hd);
  const dv = new Float64Array(B * T * nKV * hd);
  for (let b = 0; b < B; b++) {
    for (let i = 0; i < T; i++) {
      for (let h = 0; h < nH; h++) {
        const r = probs(q, k, seg, d, b, i, h);
        if (!r) continue;
        const qo = (b * T + i) * nH * hd + h * hd;
        const kvh = Math.floor(h / G);
        // dP_j = dout·v_j; dS_j = P_j (dP_j − Σ_l P_l dP_l)
        const dP = new Float64Array(i + 1);
        let Dsum = 0;
        for (let j = 0; j <= i; j++) {
          if (r.P[j] === 0) continue;
          const vo = (b * T + j) * nKV * hd + kvh * hd;
          let s = 0;
          for (let c = 0; c < hd; c++) s += dout[qo + c] * v[vo + c];
          dP[j] = s;
          Dsum += r.P[j] * s;
        }
        for (let j = 0; j <= i; j++) {
          const p = r.P[j];
          if (p === 0) continue;
          const ko = (b * T + j) * nKV * hd + kvh * hd;
          const dS = p * (dP[j] - Dsum) * scale;
          for (let c = 0; c < hd; c++) {
            dq[qo + c] += dS * k[ko + c];
            dk[ko + c] += dS * q[qo + c];
            dv[ko + c] += p * dout[qo + c];
          }
        }
      }
    }
  }
  return { dq, dk, dv };
}
