// Y = alpha · X · Wᵀ + beta · Y for a few rows of X: the products of generation, where one new token is one row.
// The tiled GEMM (matmul.wgsl) computes 64×64 blocks of Y, so a single row wastes 63 of every 64 multiply-adds; here
// every weight is read once and used for each of the M ≤ MAX_M rows.
// X (M, K) f32, W (N, K) row-major f32 or (W_HALF) bf16 or f16 (HALF_F16), two per u32, low half first
// (shaders/half.wgsl), Y (M, N) f32.
// One thread per output column n: it walks W's row n once, keeping M sums. No workgroup memory and no barrier: on
// SwiftShader (finetune's software adapter) splitting K over threads and reducing through workgroup memory measured
// 2–6× slower than this, and the time there is per workgroup. On a hardware GPU neighbouring threads read rows K apart
// (not coalesced); generation is a small share of the work, so that is accepted.

struct Params {
  M: u32,
  N: u32,
  K: u32,
  nx: u32, // workgroups along x (the grid is 2-D when N/WG exceeds 65535)
  alpha: f32,
  beta: f32,
  _p0: u32,
  _p1: u32,
}

@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read> X: array<f32>;
//#if W_HALF
@group(0) @binding(2) var<storage, read> W: array<u32>;
//#else
@group(0) @binding(2) var<storage, read> W: array<f32>;
//#endif
@group(0) @binding(3) var<storage, read_write> Y: array<f32>;

const WG = 64u;
const MAX_M = 8u;

//#if W_HALF
//#include half
//#endif

fn loadW(i: u32) -> f32 {
//#if W_HALF
  return halfToF32(W[i >> 1u], (i & 1u) == 1u);
//#else
  return W[i];
//#endif
}

@compute @workgroup_size(WG)
fn main(@builtin(workgroup_id) wg: vec3u, @builtin(local_invocation_index) t: u32) {
  let n = (wg.y * p.nx + wg.x) * WG + t;
  if (n >= p.N) { return; }
  var acc: array<f32, MAX_M>;
  let wRow = n * p.K;
  for (var k = 0u; k < p.K; k++) {
    let w = loadW(wRow + k);
    for (var m = 0u; m < p.M; m++) { acc[m] = fma(X[m * p.K + k], w, acc[m]); }
  }
  for (var m = 0u; m < p.M; m++) {
    let yi = m * p.N + n;
    var v = p.alpha * acc[m];
    if (p.beta != 0.0) { v += p.beta * Y[yi]; }
    Y[yi] = v;
  }
}
