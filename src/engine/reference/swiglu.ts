// Float64 reference of SwiGLU (shaders/swiglu.wgsl).

import type { Vec } from './common.ts';

const sigmoid = (g: number): number => 1 / (1 + Math.exp(-g));

export function swigluForwardRef(gate: Vec, up: Vec): Float64Array {
  return Float64Array.from(gate, (g, i) => g * sigmoid(g) * up[i]);
}

export function swigluBackwardRef(dh: Vec, gate: Vec, up: Vec): { dgate: Float64Array; dup: Float64Array } {
  const n = gate.length;
  const dgate = new Float64Array(n);
  const dup = new Float64Array(n);
  for (let i = 0; i < n; i++) {
    const g = gate[i];
    const s = sigmoid(g);
    dup[i] = dh[i] * g * s;
    dgate[i] = dh[i] * up[i] * s * (1 + g * (1 - s));
  }
  return { dgate, dup };
}
