// Rotary position embedding, HF's non-interleaved `rotate_half` convention, forward and backward.
// For each token t, head h and i < half = hd/2, with the angle a = pos[t] · theta^(−2i/hd):
//   forward   out[i] = x[i]·cos a − x[i+half]·sin a;   out[i+half] = x[i+half]·cos a + x[i]·sin a
//   backward  the transposed rotation (the same with sin a → −sin a):
//             dx[i] = d[i]·cos a + d[i+half]·sin a;    dx[i+half] = d[i+half]·cos a − d[i]·sin a
// x and out are (BT, nHeads·hd) row-major; pos is one u32 per token (positions may restart inside a packed row).
// The cos/sin table (see ropeTable in src/engine/kernels/rope.ts) is f32 [maxPos][half] cosines followed by
// [maxPos][half] sines. A position ≥ maxPos writes NaN, so a too-short table cannot go unnoticed.
// One thread per (token, head, i) pair, 256 per workgroup on a 2-D grid. Each thread reads both members of its pair
// before writing them, so INPLACE (out === x, bound once) is safe.
// PAIR rotates two tensors in place in one dispatch — a layer's q (nHeads heads) and k (nHeads2 heads), the same
// positions: threads g < pairs1 take q, the rest k. One launch instead of two, the same arithmetic per element.

struct Params {
  pairs: u32,   // BT · nHeads · half
  nHeads: u32,
  half: u32,
  maxPos: u32,
  sinSign: f32, // +1 forward, −1 backward
  nHeads2: u32, // PAIR: heads of the second tensor
  pairs1: u32,  // PAIR: pairs of the first tensor (pairs = pairs1 + the second's)
  _p2: u32,
}

@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read_write> out: array<f32>;
//#if PAIR
@group(0) @binding(2) var<storage, read_write> out2: array<f32>;
@group(0) @binding(3) var<storage, read> pos: array<u32>;
@group(0) @binding(4) var<storage, read> table: array<f32>;
//#else
//#if INPLACE
@group(0) @binding(2) var<storage, read> pos: array<u32>;
@group(0) @binding(3) var<storage, read> table: array<f32>;
//#else
@group(0) @binding(2) var<storage, read> x: array<f32>;
@group(0) @binding(3) var<storage, read> pos: array<u32>;
@group(0) @binding(4) var<storage, read> table: array<f32>;
//#endif
//#endif

// Where pair g of a tensor with nHeads heads lives: (lo, hi = lo + half, token, i).
fn pairAt(g: u32, nHeads: u32) -> vec4u {
  let i = g % p.half;
  let th = g / p.half; // token · nHeads + head
  let lo = th * 2u * p.half + i;
  return vec4u(lo, lo + p.half, th / nHeads, i);
}

// The rotated pair (x0, x1) of element i at position ps; NaN for a position beyond the table.
fn rotate(x0: f32, x1: f32, ps: u32, i: u32) -> vec2f {
  if (ps >= p.maxPos) {
    let nan = bitcast<f32>(0x7fc00000u | (ps & 0u)); // a runtime value: a constant NaN is a compile error
    return vec2f(nan, nan);
  }
  let c = table[ps * p.half + i];
  let s = p.sinSign * table[(p.maxPos + ps) * p.half + i];
  return vec2f(x0 * c - x1 * s, x1 * c + x0 * s);
}

//#if PAIR
@compute @workgroup_size(256)
fn main(@builtin(workgroup_id) wg: vec3u, @builtin(num_workgroups) nwg: vec3u, @builtin(local_invocation_id) lid: vec3u) {
  let g = (wg.y * nwg.x + wg.x) * 256u + lid.x;
  if (g >= p.pairs) { return; }
  if (g < p.pairs1) {
    let a = pairAt(g, p.nHeads);
    let r = rotate(out[a.x], out[a.y], pos[a.z], a.w);
    out[a.x] = r.x;
    out[a.y] = r.y;
  } else {
    let a = pairAt(g - p.pairs1, p.nHeads2);
    let r = rotate(out2[a.x], out2[a.y], pos[a.z], a.w);
    out2[a.x] = r.x;
    out2[a.y] = r.y;
  }
}
//#else
@compute @workgroup_size(256)
fn main(@builtin(workgroup_id) wg: vec3u, @builtin(num_workgroups) nwg: vec3u, @builtin(local_invocation_id) lid: vec3u) {
  let g = (wg.y * nwg.x + wg.x) * 256u + lid.x;
  if (g >= p.pairs) { return; }
  let a = pairAt(g, p.nHeads);
//#if INPLACE
  let x0 = out[a.x];
  let x1 = out[a.y];
//#else
  let x0 = x[a.x];
  let x1 = x[a.y];
//#endif
  let r = rotate(x0, x1, pos[a.z], a.w);
  out[a.x] = r.x;
  out[a.y] = r.y;
}
//#endif
