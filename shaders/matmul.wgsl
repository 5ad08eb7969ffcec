// Tiled fp32 GEMM, the workhorse of forward and backward:
//   C[b] = alpha · op(A[b]) · op(B[b]) + beta · C[b]
// A is [M, K] (or [K, M] with TRANS_A), B is [K, N] (or [N, K] with TRANS_B), C is [M, N], all row-major.
// The three products of a linear layer Y = X·Wᵀ are this one kernel with different transposes:
//   forward   Y  = X · Wᵀ      (TRANS_B)
//   backward  dX = dY · W      (no transpose)
//             dW = dYᵀ · X     (TRANS_A); beta = 1 accumulates gradients.
// Each 16×16 workgroup computes a 64×64 block of C, 4×4 values per thread, stepping K by 16 through workgroup memory.
// Thread (tx, ty) owns rows 4·ty .. 4·ty + 3 and columns 4·tx .. 4·tx + 3: each k of a step reads its 4 rows of A and
// 4 columns of B as two 128-bit loads (a warp's A load is a broadcast, its B loads 16 distinct vec4s) for 16 FMAs.
// The tiles are [k][16 vec4s] with the vec4 column XORed by k, so the tile stores, which run along k or along m/n
// depending on the transposes, never conflict. (Threads used to own rows and columns 16 apart, 8 scalar loads per 16
// FMAs, and A's tile took 16-way conflicted stores; each output sums in the same k order either way: the same bits.)
// Ragged edges (any M, N, K) load zeros and skip out-of-range stores.
// B may be stored as f32, or (B_HALF) as bf16 or f16 (HALF_F16), two per u32, low half first: the Hub's format,
// decoded exactly by shaders/half.wgsl with no feature needed; accumulation is always f32.
// LoRA dropout fused into the product (DROPOUT with one of DROP_A, DROP_B, DROP_OUT; src/engine/kernels/lora.ts): the
// mask of shaders/lora.wgsl, keep(i) = murmur3(state, i) ≥ threshold, regenerated from the element's flat index i in
// its (stored) matrix of one batch entry instead of being materialised:
//   DROP_A    an A element a becomes select(0, a · scale, keep(i)) as it is loaded;
//   DROP_B    the same for B (f32 storage only);
//   DROP_OUT  the epilogue: C[o] = (C[o] +) select(0, (alpha · acc) · scale, keep(o)), beta 0 or 1 (1 reads C).
// Each is bit for bit the two-step path (lora_dropout into a buffer, then this kernel; for DROP_OUT this kernel with
// beta 0, then lora_dropout's ACCUMULATE): the same f32 operations on the same values.

// dstate, dthreshold, dscale: the dropout mask's murmur3 state, threshold and f32(1 / (1 − p)) (read with DROPOUT).
struct Params {
  M: u32, N: u32, K: u32, dstate: u32,
  strideA: u32, strideB: u32, strideC: u32, dthreshold: u32,
  alpha: f32, beta: f32, dscale: f32, _p3: f32,
}

@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read> A: array<f32>;
//#if B_HALF
@group(0) @binding(2) var<storage, read> B: array<u32>; // two 16-bit values per word (HALF_F16: f16, else bf16)
//#else
@group(0) @binding(2) var<storage, read> B: array<f32>;
//#endif
@group(0) @binding(3) var<storage, read_write> C: array<f32>;

override TRANS_A: bool = false;
override TRANS_B: bool = false;

//#if SHORT
// SHORT: products with at most 16 output rows (a batch of 16 tokens or fewer; src/engine/kernels/matmul.ts picks it).
// A 64-row block computes 64 rows whatever M is, so at M = 16 three quarters of its FMAs multiply zeros: on
// SwiftShader, whose time grows with the FMAs issued, the tiny models' vocabulary-wide head then cost 4× what it
// needs. Here a block is 16 rows × 64 columns on 64 threads (as many blocks along N as the 64-row kernel has, so as
// much parallelism where N is small), thread t owning rows 4·(t / 16) .. + 3 and columns 4·(t % 16) .. + 3, stepping
// K by 16 (5 KiB of workgroup memory). Each output still sums fma by fma in k order from 0, and the zeros past K add
// nothing (an f32 sum that starts at +0 never becomes −0): the same bits as the 64-row block.
const BM = 16u;
const BN = 64u;
const BK = 16u;

var<workgroup> As: array<vec4f, 64>; // [BK][BM/4], unswizzled: [k][4 vec4s]
var<workgroup> Bs: array<vec4f, 256>; // [BK][BN/4]: [k][16 vec4s]
//#else
const BM = 64u;
const BN = 64u;
const BK = 16u;

var<workgroup> As: array<vec4f, 256>; // [BK][BM/4], swizzled (tileAt)
var<workgroup> Bs: array<vec4f, 256>; // [BK][BN/4]
//#endif

// tileAt(k, c4): where the vec4 holding tile row k, elements 4·c4 .. 4·c4 + 3, sits: k·16 + (c4 ^ k), for k and c4
// below 16. Written out at each use as k·16 + (c4 ^ k) % 16 (the same value), not as a function: the robustness
// pass bounds that expression from k's and c4's own ranges, but knows nothing of a function's parameters, and would
// clamp every tile access (docs/performance.md, "Bounds clamps").

//#if B_HALF
//#include half
//#endif

fn loadB(i: u32) -> f32 {
//#if B_HALF
  return halfToF32(B[i >> 1u], (i & 1u) == 1u);
//#else
  return B[i];
//#endif
}

//#if DROPOUT
// murmur3_x86_32 on u32 words (shaders/dropout_hash.wgsl, the same functions lora.wgsl uses):
//#include dropout_hash

// select(0, v · scale, keep(i)), exactly lora.wgsl's expression.
fn drop1(v: f32, i: u32) -> f32 {
  let keep = murmurFinal(murmurBlock(p.dstate, i), 20u) >= p.dthreshold;
  return select(0.0, v * p.dscale, keep);
}
//#endif

// A's element (gm, gk) of batch entry aBase, or 0 outside the matrix; dropped as the DROP_A variant asks.
fn tileA(aBase: u32, gm: u32, gk: u32) -> f32 {
  var a = 0.0;
  if (gm < p.M && gk < p.K) {
    var ia: u32;
    if (TRANS_A) { ia = gk * p.M + gm; } else { ia = gm * p.K + gk; }
    a = A[aBase + ia];
//#if DROP_A
    a = drop1(a, ia);
//#endif
  }
  return a;
}

// B's element (gk, gn) of batch entry bBase, or 0 outside the matrix; dropped as the DROP_B variant asks.
fn tileB(bBase: u32, gn: u32, gk: u32) -> f32 {
  var b = 0.0;
  if (gn < p.N && gk < p.K) {
    var ib: u32;
    if (TRANS_B) { ib = gn * p.K + gk; } else { ib = gk * p.N + gn; }
    b = loadB(bBase + ib);
//#if DROP_B
    b = drop1(b, ib);
//#endif
  }
  return b;
}

// The epilogue: the thread's 4×4 outputs from rows r0 .. r0 + 3 and columns c0 .. c0 + 3 (alpha, dropout, beta).
fn storeBlock(cBase: u32, r0: u32, c0: u32, accs: array<vec4f, 4>) {
  for (var i = 0u; i < 4u; i++) {
    let r = r0 + i;
    if (r >= p.M) { continue; }
    let row = accs[i];
    for (var j = 0u; j < 4u; j++) {
      let c = c0 + j;
      if (c >= p.N) { continue; }
      let o = cBase + r * p.N + c;
      var v = p.alpha * row[j];
//#if DROP_OUT
      v = drop1(v, r * p.N + c);
      if (p.beta != 0.0) { v = C[o] + v; }
//#else
      if (p.beta != 0.0) { v += p.beta * C[o]; }
//#endif
      C[o] = v;
    }
  }
}

//#if SHORT
@compute @workgroup_size(64)
fn main(@builtin(workgroup_id) wg: vec3u, @builtin(local_invocation_index) li: u32) {
  let row0 = wg.y * BM;
  let col0 = wg.x * BN;
  let aBase = wg.z * p.strideA;
  let bBase = wg.z * p.strideB;
  let cBase = wg.z * p.strideC;
  let ty = li / 16u; // the thread's rows: 4·ty .. 4·ty + 3
  let tx = li % 16u; // its columns: 4·tx .. 4·tx + 3
  var acc0 = vec4f(0.0);
  var acc1 = vec4f(0.0);
  var acc2 = vec4f(0.0);
  var acc3 = vec4f(0.0);
  for (var k0 = 0u; k0 < p.K; k0 += BK) {
    // A tile: BM·BK = 256 elements, 4 per thread, read along the stored row.
    for (var t = 0u; t < 4u; t++) {
      let idx = li + t * 64u;
      let m = select(idx / BK, idx % BM, TRANS_A);
      let k = select(idx % BK, idx / BM, TRANS_A);
      let gm = row0 + m;
      let gk = k0 + k;
      let a = tileA(aBase, gm, gk);
      As[(k % BK) * 4u + (m % BM) / 4u][m % 4u] = a;
    }
    // B tile: BK·BN = 1024 elements, 16 per thread.
    for (var t = 0u; t < 16u; t++) {
      let idx = li + t * 64u;
      let n = select(idx % BN, idx / BK, TRANS_B);
      let kb = select(idx / BN, idx % BK, TRANS_B);
      let gn = col0 + n;
      let gkb = k0 + kb;
      let b = tileB(bBase, gn, gkb);
      Bs[(kb % BK) * 16u + (n % BN) / 4u][n % 4u] = b;
    }
    workgroupBarrier();
    for (var kk = 0u; kk < BK; kk++) {
      let av = As[kk * 4u + ty % 4u];
      let bv = Bs[kk * 16u + tx % 16u];
      acc0 = fma(vec4f(av.x), bv, acc0);
      acc1 = fma(vec4f(av.y), bv, acc1);
      acc2 = fma(vec4f(av.z), bv, acc2);
      acc3 = fma(vec4f(av.w), bv, acc3);
    }
    workgroupBarrier();
  }
  storeBlock(cBase, row0 + 4u * ty, col0 + 4u * tx, array<vec4f, 4>(acc0, acc1, acc2, acc3));
}
//#else
@compute @workgroup_size(16, 16)
fn main(@builtin(workgroup_id) wg: vec3u, @builtin(local_invocation_id) lid: vec3u, @builtin(local_invocation_index) li: u32) {
  let row0 = wg.y * BM;
  let col0 = wg.x * BN;
  let aBase = wg.z * p.strideA;
  let bBase = wg.z * p.strideB;
  let cBase = wg.z * p.strideC;

  // One vec4 per output row of the thread, no dynamically indexed arrays: some compilers (SwiftShader's among them)
  // keep those in memory, which made the inner loop ≈ 4× slower there. Each output still sums fma by fma in k order.
  var acc0 = vec4f(0.0);
  var acc1 = vec4f(0.0);
  var acc2 = vec4f(0.0);
  var acc3 = vec4f(0.0);
  for (var k0 = 0u; k0 < p.K; k0 += BK) {
    for (var t = 0u; t < 4u; t++) {
      let idx = li + t * 256u;
      // A tile element (m, k): read along the stored row so neighbouring threads read neighbouring addresses. The
      // store below is written once per layout with m and k taken from idx by constants, so the robustness pass
      // bounds its offset (tileAt written out; values assigned in branches it cannot bound).
      let mT = idx % BM;
      let kT = idx / BM;
      let mN = idx / BK;
      let kN = idx % BK;
      let m = select(mN, mT, TRANS_A);
      let k = select(kN, kT, TRANS_A);
      let gm = row0 + m;
      let gk = k0 + k;
      let a = tileA(aBase, gm, gk);
      if (TRANS_A) {
        As[kT * 16u + ((mT >> 2u) ^ kT) % 16u][mT % 4u] = a;
      } else {
        As[kN * 16u + ((mN >> 2u) ^ kN) % 16u][mN % 4u] = a;
      }
      // B tile element (k, n), stored as A's.
      let nT = idx / BK;
      let kbT = idx % BK;
      let nN = idx % BN;
      let kbN = idx / BN;
      let n = select(nN, nT, TRANS_B);
      let kb = select(kbN, kbT, TRANS_B);
      let gn = col0 + n;
      let gkb = k0 + kb;
      let b = tileB(bBase, gn, gkb);
      if (TRANS_B) {
        Bs[kbT * 16u + ((nT >> 2u) ^ kbT) % 16u][nT % 4u] = b;
      } else {
        Bs[kbN * 16u + ((nN >> 2u) ^ kbN) % 16u][nN % 4u] = b;
      }
    }
    workgroupBarrier();
    for (var kk = 0u; kk < BK; kk++) {
      // tileAt, written out: no clamp in this loop.
      let av = As[kk * 16u + (lid.y ^ kk) % 16u];
      let bv = Bs[kk * 16u + (lid.x ^ kk) % 16u];
      acc0 = fma(vec4f(av.x), bv, acc0);
      acc1 = fma(vec4f(av.y), bv, acc1);
      acc2 = fma(vec4f(av.z), bv, acc2);
      acc3 = fma(vec4f(av.w), bv, acc3);
    }
    workgroupBarrier();
  }

  storeBlock(cBase, row0 + 4u * lid.y, col0 + 4u * lid.x, array<vec4f, 4>(acc0, acc1, acc2, acc3));
}
//#endif
