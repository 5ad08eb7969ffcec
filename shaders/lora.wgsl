// LoRA dropout with a counter-based RNG: the mask is a pure function of (seed, step, layer, module, element), so it is
// never stored and the backward regenerates exactly the mask of the forward.
//   hash(i) = murmur3_x86_32 of the five u32 words (seed, step, layer, module, i), hash seed 0
//   keep(i) = hash(i) ≥ threshold, threshold = round(p · 2³²)           (keep rate 1 − p)
//   out[i]  = keep(i) ? x[i] · scale : 0, scale = f32(1 / (1 − p))        (p = 0: threshold 0, scale 1: an exact copy)
// The first four words do not depend on i: the CPU folds them into `state` (src/engine/kernels/lora.ts, which also
// holds a bit-exact CPU copy of the hash); each thread mixes in its element index and finalises.
// Variants: out = drop(x) (out, x); INPLACE out = drop(out) (out); ACCUMULATE out += drop(x) (out, x).
// The LoRA products do not call this kernel: both GEMMs (shaders/matmul.wgsl, shaders/matmul_tiled.wgsl) apply the
// same mask with the same expression inside the product (DROP_A, DROP_B, DROP_OUT), so drop(x) is never stored. This
// kernel is the standalone form, kept as the two-step reference the fused products are tested against bit for bit.
// The murmur functions are shaders/dropout_hash.wgsl, included here and in both GEMMs: one text for all three.

struct Params {
  n: u32,
  state: u32,     // murmur3 state after the words seed, step, layer, module
  threshold: u32,
  scale: f32,
}

@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read_write> out: array<f32>;
//#if !INPLACE
@group(0) @binding(2) var<storage, read> x: array<f32>;
//#endif

//#include dropout_hash

@compute @workgroup_size(256)
fn main(@builtin(workgroup_id) wg: vec3u, @builtin(num_workgroups) nwg: vec3u, @builtin(local_invocation_id) lid: vec3u) {
  let i = (wg.y * nwg.x + wg.x) * 256u + lid.x;
  if (i >= p.n) { return; }
  let keep = murmurFinal(murmurBlock(p.state, i), 20u) >= p.threshold;
//#if INPLACE
  let v = out[i];
//#else
  let v = x[i];
//#endif
  let d = select(0.0, v * p.scale, keep);
//#if ACCUMULATE
  out[i] = out[i] + d;
//#else
  out[i] = d;
//#endif
}
