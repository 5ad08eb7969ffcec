// Float64 reference of RMSNorm (shaders/norm.wgsl).

import type { Vec } from './common.ts';

export function rmsnormForwardRef(x: Vec, w: Vec, BT: number, C: number, eps: number): { out: Float64Array; rstd: Float64Array } {
  const out = new Float64Array(BT * C);
  const rstd = new Float64Array(BT);
  for (let t = 0; t < BT; t++) {
    let ss = 0;
    for (let c = 0; c < C; c++) ss += x[t * C + c] ** 2;
    const r = 1 / Math.sqrt(ss / C + eps);
    rstd[t] = r;
    for (let c = 0; c < C; c++) out[t * C + c] = x[t * C + c] * r * w[c];
  }
  return { out, rstd };
}

/** dx = J(x)ᵀ · dout, derived from y_j = x_j · r · w_j with r = (mean(x²) + eps)^(-1/2). */
export function rmsnormBackwardRef(dout: Vec, x: Vec, w: Vec, BT: number, C: number, eps: number): Float64Array {
  const dx = new Float64Array(BT * C);
  for (let t = 0; t < BT; t++) {
    let ss = 0;
    let dot = 0;
    for (let c = 0; c < C; c++) {
      ss += x[t * C + c] ** 2;
      dot += dout[t * C + c] * w[c] * x[t * C + c];
    }
    const r = 1 / Math.sqrt(ss / C + eps);
    for (let c = 0; c < C; c++) dx[t * C + c] = r * w[c] * dout[t * C + c] - (r ** 3 / C) * x[t * C + c] * dot;
  }
  return dx;
}
