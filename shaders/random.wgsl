// Fills a buffer with uniform values in [-scale, scale) from a counter-based hash of (seed, element): random
// weights made on the GPU for benchmarks, without streaming gigabytes of random numbers from the CPU.

struct Params { n: u32, seed: u32, gridX: u32, _p: u32, scale: f32, _q: f32, _r: f32, _s: f32 }

@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read_write> out: array<f32>;

fn hash(x: u32) -> u32 {
  var h = x * 0x9e3779b1u;
  h ^= h >> 16u;
  h *= 0x85ebca6bu;
  h ^= h >> 13u;
  h *= 0xc2b2ae35u;
  h ^= h >> 16u;
  return h;
}

@compute @workgroup_size(256)
fn main(@builtin(workgroup_id) wg: vec3u, @builtin(local_invocation_index) li: u32) {
  let i = (wg.y * p.gridX + wg.x) * 256u + li;
  if (i >= p.n) { return; }
  let u = f32(hash(i ^ hash(p.seed)) >> 8u) / 16777216.0;
  out[i] = (2.0 * u - 1.0) * p.scale;
}

// The same values rounded toward zero to bf16, two per u32 (low half first): random 16-bit weights, as the Hub
// stores embeddings and lm_head, for benchmarks. p.n counts bf16 values (even).
@group(0) @binding(1) var<storage, read_write> outPairs: array<u32>;

fn uniformAt(i: u32) -> f32 {
  let u = f32(hash(i ^ hash(p.seed)) >> 8u) / 16777216.0;
  return (2.0 * u - 1.0) * p.scale;
}

@compute @workgroup_size(256)
fn bf16_pairs(@builtin(workgroup_id) wg: vec3u, @builtin(local_invocation_index) li: u32) {
  let j = (wg.y * p.gridX + wg.x) * 256u + li;
  if (2u * j >= p.n) { return; }
  let lo = bitcast<u32>(uniformAt(2u * j)) >> 16u;
  let hi = bitcast<u32>(uniformAt(2u * j + 1u)) & 0xffff0000u;
  outPairs[j] = lo | hi;
}
