// RMSNorm, forward and backward (the norm weight is frozen: no weight gradient).
//   forward   rstd = 1 / sqrt(mean(x²) + eps);  out = (x · rstd) · w        (HF Mistral's order, in f32)
//   backward  dx = rstd · (w ⊙ dout) − x · rstd³ · Σ_c(w_c · dout_c · x_c) / C
// One workgroup of 256 threads per row: each thread strides over the row's C columns, then a tree reduction in
// workgroup memory. Rows are laid on a 2-D grid (row = wg.y · num_workgroups.x + wg.x) so BT may exceed 65535.
// Entry points: forward (out, rstd, x, w), backward (dx, dout, x, w, rstd). ACCUMULATE: dx += instead of dx =.

struct Params {
  rows: u32,
  C: u32,
  eps: f32,
  _p0: u32,
}

@group(0) @binding(0) var<uniform> p: Params;

//#if BACKWARD
@group(0) @binding(1) var<storage, read_write> dx: array<f32>;
@group(0) @binding(2) var<storage, read> dout: array<f32>;
@group(0) @binding(3) var<storage, read> x: array<f32>;
@group(0) @binding(4) var<storage, read> w: array<f32>;
@group(0) @binding(5) var<storage, read> rstdIn: array<f32>;
//#else
@group(0) @binding(1) var<storage, read_write> out: array<f32>;
@group(0) @binding(2) var<storage, read_write> rstdOut: array<f32>;
@group(0) @binding(3) var<storage, read> x: array<f32>;
@group(0) @binding(4) var<storage, read> w: array<f32>;
//#endif

const WG = 256u;
var<workgroup> red: array<f32, 256>;

// Sum of `v` over the workgroup; every thread gets the result.
fn workgroupSum(v: f32, li: u32) -> f32 {
  red[li] = v;
  workgroupBarrier();
  for (var s = WG / 2u; s > 0u; s >>= 1u) {
    if (li < s) { red[li] += red[li + s]; }
    workgroupBarrier();
  }
  let total = red[0];
  workgroupBarrier();
  return total;
}

//#if BACKWARD
@compute @workgroup_size(256)
fn main(@builtin(workgroup_id) wg: vec3u, @builtin(num_workgroups) nwg: vec3u, @builtin(local_invocation_index) li: u32) {
  let row = wg.y * nwg.x + wg.x;
  if (row >= p.rows) { return; } // uniform per workgroup: the barriers below stay in uniform control flow
  let base = row * p.C;
  var s = 0.0;
  for (var c = li; c < p.C; c += WG) { s += w[c] * dout[base + c] * x[base + c]; }
  let dot = workgroupSum(s, li);
  let r = rstdIn[row];
  let k = r * r * dot / f32(p.C);
  for (var c = li; c < p.C; c += WG) {
    let o = base + c;
    var g = r * (w[c] * dout[o] - x[o] * k);
//#if ACCUMULATE
    g += dx[o];
//#endif
    dx[o] = g;
  }
}
//#else
@compute @workgroup_size(256)
fn main(@builtin(workgroup_id) wg: vec3u, @builtin(num_workgroups) nwg: vec3u, @builtin(local_invocation_index) li: u32) {
  let row = wg.y * nwg.x + wg.x;
  if (row >= p.rows) { return; }
  let base = row * p.C;
  var s = 0.0;
  for (var c = li; c < p.C; c += WG) {
    let v = x[base + c];
    s += v * v;
  }
  let ss = workgroupSum(s, li);
  let r = 1.0 / sqrt(ss / f32(p.C) + p.eps);
  if (li == 0u) { rstdOut[row] = r; }
  for (var c = li; c < p.C; c += WG) {
    out[base + c] = (x[base + c] * r) * w[c];
  }
}
//#endif
