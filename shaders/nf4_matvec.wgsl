// Y (M, N) = alpha · X (M, K) · deq(W)ᵀ (+ Y) for a few rows (M ≤ MAX_M) with a frozen NF4 weight W [N, K]: the
// generation-step counterpart of nf4_matmul.wgsl's forward (same storage, shaders/nf4.wgsl; K % 64 == 0), as
// matvec.wgsl is of the tiled GEMM. One thread per output column n walks W's row n once, 8 codes per u32 word and one
// block scale per 64 codes, keeping M sums; no workgroup memory, no barrier (see matvec.wgsl for why on SwiftShader).
// Define DQ for double-quantised block scales.

struct Params {
  M: u32,
  N: u32,
  K: u32,
  nx: u32, // workgroups along x
  alpha: f32,
  accumulate: u32,
  _p0: u32,
  _p1: u32,
}

@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read> X: array<f32>;
@group(0) @binding(2) var<storage, read> codes: array<u32>;
//#if DQ
@group(0) @binding(3) var<storage, read> q8: array<u32>;
@group(0) @binding(4) var<storage, read> dqScale: array<f32>;
@group(0) @binding(5) var<storage, read> dqOffset: array<f32>;
@group(0) @binding(6) var<storage, read> dqTable: array<f32>;
@group(0) @binding(7) var<storage, read_write> Y: array<f32>;
//#else
@group(0) @binding(3) var<storage, read> absmax: array<f32>;
@group(0) @binding(4) var<storage, read_write> Y: array<f32>;
//#endif

//#include nf4_values

const WG = 64u;
const MAX_M = 8u;

fn blockScale(b: u32) -> f32 {
//#if DQ
  let q = (q8[b >> 2u] >> ((b & 3u) * 8u)) & 255u;
  return dqTable[q] * dqScale[b >> 8u] + dqOffset[0];
//#else
  return absmax[b];
//#endif
}

@compute @workgroup_size(WG)
fn main(@builtin(workgroup_id) wg: vec3u, @builtin(local_invocation_index) t: u32) {
  let n = (wg.y * p.nx + wg.x) * WG + t;
  if (n >= p.N) { return; }
  var acc: array<f32, MAX_M>;
  let words = p.K / 8u;
  for (var w = 0u; w < words; w++) {
    let e0 = n * p.K + w * 8u; // first element of this word
    let scale = blockScale(e0 / 64u);
    let word = codes[e0 / 8u];
    for (var j = 0u; j < 8u; j++) {
      // Element j of a word: byte j/2, the high nibble for even j (bitsandbytes' order).
      let shift = (j >> 1u) * 8u + select(0u, 4u, (j & 1u) == 0u);
      let v = NF4_VALUES[(word >> shift) & 15u] * scale;
      let k = w * 8u + j;
      for (var m = 0u; m < p.M; m++) { acc[m] = fma(X[m * p.K + k], v, acc[m]); }
    }
  }
  for (var m = 0u; m < p.M; m++) {
    let yi = m * p.N + n;
    var v = p.alpha * acc[m];
    if (p.accumulate != 0u) { v += Y[yi]; }
    Y[yi] = v;
  }
}
