// Token embedding lookup (frozen in QLoRA: no backward): out[t, c] = table[ids[t], c].
// The table (V, C) is stored f32, or with HALF as bf16 or f16 (HALF_F16) packed two per u32, low half first (the
// Hub's byte order), so element e of the row-major table is the (e & 1) half of word e >> 1 (shaders/half.wgsl).
// An id ≥ V (the vocabulary size, p.V) writes a row of zeros instead of reading out of range; the wrapper can
// reject such ids on the CPU beforehand (src/engine/kernels/embedding.ts).
// One thread per output element, 256 per workgroup on a 2-D grid.

struct Params {
  n: u32, // BT · C
  C: u32,
  V: u32,
  _p0: u32,
}

@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read_write> out: array<f32>;
@group(0) @binding(2) var<storage, read> ids: array<u32>;
//#if HALF
@group(0) @binding(3) var<storage, read> table: array<u32>;
//#else
@group(0) @binding(3) var<storage, read> table: array<f32>;
//#endif

@compute @workgroup_size(256)
fn main(@builtin(workgroup_id) wg: vec3u, @builtin(num_workgroups) nwg: vec3u, @builtin(local_invocation_id) lid: vec3u) {
  let i = (wg.y * nwg.x + wg.x) * 256u + lid.x;
  if (i >= p.n) { return; }
  let t = i / p.C;
  let c = i - t * p.C;
  let id = ids[t];
  if (id >= p.V) {
    out[i] = 0.0;
    return;
  }
  let e = id * p.C + c;
//#if HALF
  out[i] = halfToF32(table[e >> 1u], (e & 1u) == 1u);
//#else
  out[i] = table[e];
//#endif
}

//#if HALF
//#include half
//#endif
