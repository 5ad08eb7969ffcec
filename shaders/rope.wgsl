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

struct Params {
  pairs: u32,   // BT · nHeads · half
  nHeads: u32,
  half: u32,
  maxPos: u32,
  sinSign: f32, // +1 forward, −1 backward
  _p0: u32,
  _p1: u32,
  _p2: u32,
}

@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read_write> out: array<f32>;
//#if INPLACE
@group(0) @binding(2) var<storage, read> pos: array<u32>;
@group(0) @binding(3) var<storage, read> table: array<f32>;
//#else
@group(0) @binding(2) var<storage, read> x: array<f32>;
@group(0) @binding(3) var<storage, read> pos: array<u32>;
@group(0) @binding(4) var<storage, read> table: array<f32>;
//#endif

@compute @workgroup_size(256)
fn main(@builtin(workgroup_id) wg: vec3u, @builtin(num_workgroups) nwg: vec3u, @builtin(local_invocation_id) lid: vec3u) {
  let g = (wg.y * nwg.x + wg.x) * 256u + lid.x;
  if (g >= p.pairs) { return; }
  let i = g % p.half;
  let th = g / p.half; // token · nHeads + head
  let t = th / p.nHeads;
  let lo = th * 2u * p.half + i;
  let hi = lo + p.half;
//#if INPLACE
  let x0 = out[lo];
  let x1 = out[hi];
//#else
  let x0 = x[lo];
  let x1 = x[hi];
//#endif
  let ps = pos[t];
  if (ps >= p.maxPos) {
    let nan = bitcast<f32>(0x7fc00000u | (ps & 0u)); // a runtime value: a constant NaN is a compile error
    out[lo] = nan;
    out[hi] = nan;
    return;
  }
  let c = table[ps * p.half + i];
  let s = p.sinSign * table[(p.maxPos + ps) * p.half + i];
  out[lo] = x0 * c - x1 * s;
  out[hi] = x1 * c + x0 * s;
}
