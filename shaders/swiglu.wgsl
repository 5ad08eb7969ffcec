// SwiGLU, the gate of Mistral's MLP, forward and backward:
//   forward   h = silu(g) · u,  silu(g) = g · σ(g)
//   backward  dup = dh · silu(g);  dgate = dh · u · σ(g) · (1 + g · (1 − σ(g)))
// One thread per element, 256 per workgroup on a 2-D grid. σ is 1 / (1 + exp(−g)): exp overflows to +inf for
// g < −88 and σ becomes exactly 0, which is the right limit.
// Bindings: forward (h, gate, up); BACKWARD (dgate, dup, dh, gate, up); BACKWARD with IN_PLACE (dh, which receives
// dgate, dup, gate, up).

struct Params {
  n: u32,
  _p0: u32,
  _p1: u32,
  _p2: u32,
}

@group(0) @binding(0) var<uniform> p: Params;
//#if BACKWARD
//#if IN_PLACE
// dgate over dh: each thread reads its element of dh before writing dgate there.
@group(0) @binding(1) var<storage, read_write> dh: array<f32>;
@group(0) @binding(2) var<storage, read_write> dup: array<f32>;
@group(0) @binding(3) var<storage, read> gate: array<f32>;
@group(0) @binding(4) var<storage, read> up: array<f32>;
//#else
@group(0) @binding(1) var<storage, read_write> dgate: array<f32>;
@group(0) @binding(2) var<storage, read_write> dup: array<f32>;
@group(0) @binding(3) var<storage, read> dh: array<f32>;
@group(0) @binding(4) var<storage, read> gate: array<f32>;
@group(0) @binding(5) var<storage, read> up: array<f32>;
//#endif
//#else
@group(0) @binding(1) var<storage, read_write> h: array<f32>;
@group(0) @binding(2) var<storage, read> gate: array<f32>;
@group(0) @binding(3) var<storage, read> up: array<f32>;
//#endif

fn sigmoid(g: f32) -> f32 {
  return 1.0 / (1.0 + exp(-g));
}

@compute @workgroup_size(256)
fn main(@builtin(workgroup_id) wg: vec3u, @builtin(num_workgroups) nwg: vec3u, @builtin(local_invocation_id) lid: vec3u) {
  let i = (wg.y * nwg.x + wg.x) * 256u + lid.x;
  if (i >= p.n) { return; }
  let g = gate[i];
  let u = up[i];
  let s = sigmoid(g);
//#if BACKWARD
  let d = dh[i];
  dup[i] = d * (g * s);
//#if IN_PLACE
  dh[i] = d * u * s * (1.0 + g * (1.0 - s));
//#else
  dgate[i] = d * u * s * (1.0 + g * (1.0 - s));
//#endif
//#else
  h[i] = (g * s) * u;
//#endif
}
