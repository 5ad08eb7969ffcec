// Float64 references of the elementwise family (shaders/elementwise.wgsl).

import type { Vec } from './common.ts';

export function addRef(a: Vec, b: Vec): Float64Array {
  return Float64Array.from(a, (v, i) => v + b[i]);
}

export function axpyRef(y: Vec, x: Vec, alpha: number): Float64Array {
  return Float64Array.from(y, (v, i) => v + alpha * x[i]);
}

export function scaleRef(x: Vec, alpha: number): Float64Array {
  return Float64Array.from(x, (v) => alpha * v);
}
