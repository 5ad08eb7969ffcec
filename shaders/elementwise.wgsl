// Small elementwise kernels a transformer block needs between the big products (residual adds, gradient
// accumulation, scaling, clearing to a value). All f32, one thread per element, 256 threads per workgroup on a
// 2-D grid (x · y workgroups, each axis ≤ 65535) so any element count fits; the flat index is
//   i = (wg.y · num_workgroups.x + wg.x) · 256 + local_id.x.
// Entry points (bindings after the uniform block, in the order the wrappers in src/engine/kernels/elementwise.ts pass):
//   add            out = a + b                 (out, a, b)
//   axpy           out += alpha · a             (out, a)       also the in-place residual add with alpha = 1
//   scale          out = alpha · a              (out, a)
//   scale_inplace  out *= alpha                 (out)
//   fill           out = alpha                  (out)
// WebGPU forbids binding one buffer both writable and read-only in a dispatch, so in-place forms are separate
// entry points that bind the buffer once.

struct Params {
  n: u32,
  alpha: f32,
  _p0: u32,
  _p1: u32,
}

@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read_write> out: array<f32>;
@group(0) @binding(2) var<storage, read> a: array<f32>;
@group(0) @binding(3) var<storage, read> b: array<f32>;

const WG = 256u;

fn flatIndex(wg: vec3u, nwg: vec3u, lid: vec3u) -> u32 {
  return (wg.y * nwg.x + wg.x) * WG + lid.x;
}

@compute @workgroup_size(256)
fn add(@builtin(workgroup_id) wg: vec3u, @builtin(num_workgroups) nwg: vec3u, @builtin(local_invocation_id) lid: vec3u) {
  let i = flatIndex(wg, nwg, lid);
  if (i >= p.n) { return; }
  out[i] = a[i] + b[i];
}

@compute @workgroup_size(256)
fn axpy(@builtin(workgroup_id) wg: vec3u, @builtin(num_workgroups) nwg: vec3u, @builtin(local_invocation_id) lid: vec3u) {
  let i = flatIndex(wg, nwg, lid);
  if (i >= p.n) { return; }
  out[i] = out[i] + p.alpha * a[i];
}

@compute @workgroup_size(256)
fn scale(@builtin(workgroup_id) wg: vec3u, @builtin(num_workgroups) nwg: vec3u, @builtin(local_invocation_id) lid: vec3u) {
  let i = flatIndex(wg, nwg, lid);
  if (i >= p.n) { return; }
  out[i] = p.alpha * a[i];
}

@compute @workgroup_size(256)
fn scale_inplace(@builtin(workgroup_id) wg: vec3u, @builtin(num_workgroups) nwg: vec3u, @builtin(local_invocation_id) lid: vec3u) {
  let i = flatIndex(wg, nwg, lid);
  if (i >= p.n) { return; }
  out[i] = p.alpha * out[i];
}

@compute @workgroup_size(256)
fn fill(@builtin(workgroup_id) wg: vec3u, @builtin(num_workgroups) nwg: vec3u, @builtin(local_invocation_id) lid: vec3u) {
  let i = flatIndex(wg, nwg, lid);
  if (i >= p.n) { return; }
  out[i] = p.alpha;
}
