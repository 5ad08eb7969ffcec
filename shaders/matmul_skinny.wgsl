// Skinny fp32 GEMM for LoRA's rank-r products: the contract of shaders/matmul.wgsl,
//   C[b] = alpha · op(A[b]) · op(B[b]) + beta · C[b]
// A is [M, K] (or [K, M] with TRANS_A), B is [K, N] (or [N, K] with TRANS_B), C is [M, N], all row-major, B f32,
// for shapes whose small output side S = min(M, N) is at most 16 while the reduction K is long (4096–14336 features,
// or the 2048 tokens). The general kernels tile C in 64- or 128-wide blocks: with N = 8 they launch a handful of
// workgroups that each leave 7/8 of their FMAs idle and walk all of K. Here a workgroup owns few long indices and all
// S small ones, so there are many workgroups, and it splits K among its threads: each element of the long operand is
// read once, coalesced, and used for S FMAs. Deterministic: no atomics, every sum in a fixed order.
//
// Layout (256 threads, thread t = 32·g + lane, g = t / 32 its warp-sized group):
// - The long side L is M, or N with SMALL_M; the long operand is the one indexed by it (A, or B with SMALL_M), the
//   small operand the other. Grid: x = ceil(L / RL) blocks of RL long indices, y = batch entry.
// - LANES_ON_K (the long operand contiguous along K: A without TRANS_A, or B with TRANS_B with SMALL_M): RL = 8; group
//   g takes long index l0 + g, its 32 lanes k ≡ lane (mod 32), so a warp reads 32 consecutive floats per step.
//   Otherwise (the long operand contiguous along L): RL = 32; lane takes long index l0 + lane, group g the k ≡ g
//   (mod 8), so a warp again reads 32 consecutive floats, and its reads of the small operand are one broadcast.
// - Each thread sums its k's for all S small indices in four vec4 accumulators (S ≤ 16; groups of 4 past S skipped,
//   lanes past S read as zero), fma by fma in increasing k, no dynamically indexed arrays in the loop (SwiftShader
//   keeps those in memory; see shaders/matmul.wgsl).
// - Partial sums go to workgroup memory, part[s][g][lane ^ ((8·s + g) mod 32)]: 16 × 256 floats, 16 KiB, the WebGPU
//   minimum. The XOR swizzle keeps both phases free of bank conflicts without padding (which would not fit): a warp
//   writing one s covers one (s, g) row; a warp reducing covers 32 outputs o = s·RL + r that, with RL = 8, all read
//   the same lane j of distinct (s, g) rows, 8·s + g distinct mod 32, and with RL = 32 one (s, g) row's 32 lanes.
// - One barrier, then thread t reduces outputs o = t, t + 256, … < RL · S (small index s = o / RL, long index
//   l0 + o mod RL): 32 partials (LANES_ON_K, lanes in order) or 8 (groups in order), left to right from 0, and writes
//   C with alpha and beta, or the dropout epilogue. Partials of long indices past L are zeros never read.
// - Any M, N, K, strides: long indices past L compute nothing, K = 0 leaves sums of 0 (C = alpha · 0 + beta · C), and
//   beta 0 never reads C.
// - DROPOUT with DROP_A, DROP_B or DROP_OUT: the LoRA mask of shaders/lora.wgsl, as in shaders/matmul.wgsl (same
//   expressions): an operand element (flat index i in its stored matrix of one batch entry) becomes
//   select(0, v · scale, keep(i)) as it is loaded, long or small operand alike; DROP_OUT stores
//   C[o] = (C[o] +) select(0, (alpha · acc) · scale, keep(o)), beta 0 or 1.
// - ALIGNED (lanes on K only; the host takes it when K % 4 == 0 and the long operand's binding and batch entries start
//   on 16-byte boundaries): the long operand is bound as vec4 (A_VEC4 or B_VEC4) and lane `lane` of group g takes the
//   quads j = lane, lane + 32, … (k = 4j … 4j + 3), four quads in flight before any is used: 16 floats per thread where
//   the scalar path has 4, and a warp's load covers 512 contiguous bytes. The small operand is read in quads too: along
//   k for each s where it is stored along K (B [N, K] with TRANS_B, or A [M, K] for a small M), along s for each k
//   where it is stored along the small side and bound as vec4 (S % 4 == 0), else one float at a time. Each sum still
//   takes its terms one fma at a time in increasing k (a different order of k per thread than the scalar path, so
//   other bits, but fixed); dropout masks each element of a quad with its own flat index. The host sends a product
//   there by itself only when its small operand is stored along K (t = drop(x)·Aᵀ): stored along the small side (dt =
//   dy·B), a lane's four k are four rows S floats long, so each quad load of the small operand has the warp's lanes
//   128 bytes apart (32 cache lines per load, 8 loads per quad of the long operand), which cost dt ≈ 113 µs a product
//   on the H200 where t took 64 (run b, 2026-12-04).
// - The scalar path (any layout): sixteen of a thread's k in flight, their long-operand loads issued before any is used;
//   the small operand in quads along s where it is stored along the small side, S % 4 == 0 and it can be bound as vec4
//   (`smallVec4` on the host: A_VEC4 or B_VEC4 without ALIGNED), so a lane reads its row k in S / 4 loads and a warp's 32
//   consecutive rows are contiguous; else one float at a time. Either way each sum takes the same terms in the same
//   order: the same bits.

// The block of shaders/matmul.wgsl (dstate, dthreshold, dscale: the dropout mask, read with DROPOUT).
struct Params {
  M: u32, N: u32, K: u32, dstate: u32,
  strideA: u32, strideB: u32, strideC: u32, dthreshold: u32,
  alpha: f32, beta: f32, dscale: f32, _p3: f32,
}

@group(0) @binding(0) var<uniform> p: Params;
// A binding is declared once per pipeline, so an operand bound as vec4 (A_VEC4, B_VEC4: the long operand with ALIGNED,
// the small one with or without it) is read through elemA/elemB and quadA/quadB below, which the rest of the shader
// uses whichever way it is bound.
//#if A_VEC4
@group(0) @binding(1) var<storage, read> A: array<vec4f>;
const A_QUADS = true;
//#else
@group(0) @binding(1) var<storage, read> A: array<f32>;
const A_QUADS = false;
//#endif
//#if B_VEC4
@group(0) @binding(2) var<storage, read> B: array<vec4f>;
const B_QUADS = true;
//#else
@group(0) @binding(2) var<storage, read> B: array<f32>;
const B_QUADS = false;
//#endif
@group(0) @binding(3) var<storage, read_write> C: array<f32>;

override TRANS_A: bool = false;
override TRANS_B: bool = false;
// The small side is M (the long operand is B) instead of N (the long operand is A).
override SMALL_M: bool = false;
// The thread layout (header); the host sets it true exactly when the long operand is contiguous along K.
override LANES_ON_K: bool = true;

const THREADS = 256u;
const WARP = 32u;
const GROUPS = 8u; // THREADS / WARP
const SMAX = 16u;

var<workgroup> part: array<f32, SMAX * THREADS>; // 16 KiB

// Element offsets of the batch entry this workgroup works on.
var<private> aBase: u32;
var<private> bBase: u32;

//#if DROPOUT
// murmur3_x86_32 on u32 words (shaders/dropout_hash.wgsl, the same functions lora.wgsl uses):
//#include dropout_hash

// select(0, v · scale, keep(i)), exactly lora.wgsl's expression.
fn drop1(v: f32, i: u32) -> f32 {
  let keep = murmurFinal(murmurBlock(p.dstate, i), 20u) >= p.dthreshold;
  return select(0.0, v * p.dscale, keep);
}

// The mask on the four consecutive elements i … i + 3 of a quad, each with its own index.
fn drop4(v: vec4f, i: u32) -> vec4f {
  return vec4f(drop1(v.x, i), drop1(v.y, i + 1u), drop1(v.z, i + 2u), drop1(v.w, i + 3u));
}
//#endif

// Element j of A's and B's bindings. Scalar reads of a vec4-bound operand are compiled but never run: the aligned path
// reads such an operand only in quads.
fn elemA(j: u32) -> f32 {
//#if A_VEC4
  return A[j / 4u][j % 4u];
//#else
  return A[j];
//#endif
}

fn elemB(j: u32) -> f32 {
//#if B_VEC4
  return B[j / 4u][j % 4u];
//#else
  return B[j];
//#endif
}

// op(A)(m, k) and op(B)(k, n) of this batch entry; the mask index is the stored flat index.
fn opA(m: u32, k: u32) -> f32 {
  var i: u32;
  if (TRANS_A) { i = k * p.M + m; } else { i = m * p.K + k; }
  var v = elemA(aBase + i);
//#if DROP_A
  v = drop1(v, i);
//#endif
  return v;
}

fn opB(k: u32, n: u32) -> f32 {
  var i: u32;
  if (TRANS_B) { i = n * p.K + k; } else { i = k * p.N + n; }
  var v = elemB(bBase + i);
//#if DROP_B
  v = drop1(v, i);
//#endif
  return v;
}

// The long operand at (long index l, k).
fn longAt(l: u32, k: u32) -> f32 {
  if (SMALL_M) { return opB(k, l); }
  return opA(l, k);
}

// The small operand at (k, small index s), zero past the small side S.
fn smallAt(k: u32, s: u32, S: u32) -> f32 {
  if (s >= S) { return 0.0; }
  if (SMALL_M) { return opA(s, k); }
  return opB(k, s);
}

fn small4(k: u32, s0: u32, S: u32) -> vec4f {
  return vec4f(smallAt(k, s0, S), smallAt(k, s0 + 1u, S), smallAt(k, s0 + 2u, S), smallAt(k, s0 + 3u, S));
}

// One k of a thread's sums: the long operand's value v times the small operand's row k, into the S sums (four vec4
// accumulators, those past S untouched). The small operand's row comes in quads where it is bound as vec4 (on this
// path the host binds it so only where it is stored along the small side and S % 4 == 0), else a float at a time: the
// same values either way, so the same bits.
fn accumulate(v: f32, k: u32, S: u32, a0: ptr<function, vec4f>, a1: ptr<function, vec4f>, a2: ptr<function, vec4f>, a3: ptr<function, vec4f>) {
  let w = vec4f(v);
  *a0 = fma(w, smallAlongS(k, 0u, S), *a0);
  if (S > 4u) { *a1 = fma(w, smallAlongS(k, 4u, S), *a1); }
  if (S > 8u) { *a2 = fma(w, smallAlongS(k, 8u, S), *a2); }
  if (S > 12u) { *a3 = fma(w, smallAlongS(k, 12u, S), *a3); }
}

// Elements j … j + 3 of A's and B's bindings (j % 4 == 0): one 16-byte load where the operand is bound as vec4. The
// four scalar loads serve the small operand where it is stored along K but its batch entries or binding are not
// 16-byte aligned.
fn quadA(j: u32) -> vec4f {
//#if A_VEC4
  return A[j / 4u];
//#else
  return vec4f(A[j], A[j + 1u], A[j + 2u], A[j + 3u]);
//#endif
}

fn quadB(j: u32) -> vec4f {
//#if B_VEC4
  return B[j / 4u];
//#else
  return vec4f(B[j], B[j + 1u], B[j + 2u], B[j + 3u]);
//#endif
}

// The stored elements i … i + 3 of A and B in this batch entry (i % 4 == 0; the entry starts at a multiple of 4
// wherever it is bound as vec4), masked element by element.
fn opA4(i: u32) -> vec4f {
  var v = quadA(aBase + i);
//#if DROP_A
  v = drop4(v, i);
//#endif
  return v;
}

fn opB4(i: u32) -> vec4f {
  var v = quadB(bBase + i);
//#if DROP_B
  v = drop4(v, i);
//#endif
  return v;
}

// The small operand at k for s0 … s0 + 3: one quad where it is bound as vec4 (the host binds it so only where it is
// stored along the small side, row k of A [K, M] or B [K, N], and S % 4 == 0, so s0 + 3 < S), else four scalars in
// either storage order, zero past S.
fn smallAlongS(k: u32, s0: u32, S: u32) -> vec4f {
  if (select(B_QUADS, A_QUADS, SMALL_M)) {
    let i = k * S + s0;
    if (SMALL_M) { return opA4(i); }
    return opB4(i);
  }
  return small4(k, s0, S);
}

//#if ALIGNED
// Quad j of long index l: the long operand is stored along K here (A [M, K], or B [N, K] for a small M).
fn long4(l: u32, j: u32) -> vec4f {
  let i = l * p.K + 4u * j;
  if (SMALL_M) { return opB4(i); }
  return opA4(i);
}

// The small operand at k … k + 3 for small index s where it is stored along K (row s); zero past S, whose sums are
// never stored, without reading it: a row past S may lie past the binding.
fn smallAlongK(k: u32, s: u32, S: u32) -> vec4f {
  if (s >= S) { return vec4f(0.0); }
  let i = s * p.K + k;
  if (SMALL_M) { return opA4(i); }
  return opB4(i);
}

// acc + v.x · m[0] + v.y · m[1] + v.z · m[2] + v.w · m[3], one fma at a time in that order: m[c] holds the small
// operand at k + c for four small indices, so each sum takes its terms in increasing k.
fn mac4(v: vec4f, m: mat4x4f, acc: vec4f) -> vec4f {
  var a = fma(vec4f(v.x), m[0], acc);
  a = fma(vec4f(v.y), m[1], a);
  a = fma(vec4f(v.z), m[2], a);
  return fma(vec4f(v.w), m[3], a);
}

// Quad j of a thread's sums: the long operand's values v at k = 4j … 4j + 3 times the small operand's rows k … k + 3,
// into the S sums (accumulators past S untouched). Stored along K, the small operand comes as one quad per s (a column
// of the transposed matrix per k); stored along s, as one quad per k.
fn accumulate4(v: vec4f, j: u32, S: u32, a0: ptr<function, vec4f>, a1: ptr<function, vec4f>, a2: ptr<function, vec4f>, a3: ptr<function, vec4f>) {
  let k = 4u * j;
  if (select(TRANS_B, !TRANS_A, SMALL_M)) {
    *a0 = mac4(v, transpose(mat4x4f(smallAlongK(k, 0u, S), smallAlongK(k, 1u, S), smallAlongK(k, 2u, S), smallAlongK(k, 3u, S))), *a0);
    if (S > 4u) { *a1 = mac4(v, transpose(mat4x4f(smallAlongK(k, 4u, S), smallAlongK(k, 5u, S), smallAlongK(k, 6u, S), smallAlongK(k, 7u, S))), *a1); }
    if (S > 8u) { *a2 = mac4(v, transpose(mat4x4f(smallAlongK(k, 8u, S), smallAlongK(k, 9u, S), smallAlongK(k, 10u, S), smallAlongK(k, 11u, S))), *a2); }
    if (S > 12u) { *a3 = mac4(v, transpose(mat4x4f(smallAlongK(k, 12u, S), smallAlongK(k, 13u, S), smallAlongK(k, 14u, S), smallAlongK(k, 15u, S))), *a3); }
  } else {
    *a0 = mac4(v, mat4x4f(smallAlongS(k, 0u, S), smallAlongS(k + 1u, 0u, S), smallAlongS(k + 2u, 0u, S), smallAlongS(k + 3u, 0u, S)), *a0);
    if (S > 4u) { *a1 = mac4(v, mat4x4f(smallAlongS(k, 4u, S), smallAlongS(k + 1u, 4u, S), smallAlongS(k + 2u, 4u, S), smallAlongS(k + 3u, 4u, S)), *a1); }
    if (S > 8u) { *a2 = mac4(v, mat4x4f(smallAlongS(k, 8u, S), smallAlongS(k + 1u, 8u, S), smallAlongS(k + 2u, 8u, S), smallAlongS(k + 3u, 8u, S)), *a2); }
    if (S > 12u) { *a3 = mac4(v, mat4x4f(smallAlongS(k, 12u, S), smallAlongS(k + 1u, 12u, S), smallAlongS(k + 2u, 12u, S), smallAlongS(k + 3u, 12u, S)), *a3); }
  }
}
//#endif

// Where thread (g, lane) keeps its partial sum for small index s (the swizzle of the header).
fn slot(s: u32, g: u32, lane: u32) -> u32 {
  return s * THREADS + g * WARP + (lane ^ ((s * GROUPS + g) % WARP));
}

@compute @workgroup_size(256)
fn main(@builtin(workgroup_id) wg: vec3u, @builtin(local_invocation_index) t: u32) {
  aBase = wg.y * p.strideA;
  bBase = wg.y * p.strideB;
  let cBase = wg.y * p.strideC;
  let S = select(p.N, p.M, SMALL_M);
  let L = select(p.M, p.N, SMALL_M);
  let rl = select(WARP, GROUPS, LANES_ON_K);
  let l0 = wg.x * rl;
  let g = t / WARP;
  let lane = t % WARP;
  var l: u32;
  var kFirst: u32;
  var kStep: u32;
  if (LANES_ON_K) { l = l0 + g; kFirst = lane; kStep = WARP; } else { l = l0 + lane; kFirst = g; kStep = GROUPS; }

  var acc0 = vec4f(0.0);
  var acc1 = vec4f(0.0);
  var acc2 = vec4f(0.0);
  var acc3 = vec4f(0.0);
  if (l < L) {
//#if ALIGNED
    // Four of the thread's quads at a time (16 k), their four 16-byte long-operand loads issued before any is used:
    // four times the scalar path's bytes in flight per thread (below), by Little's law four times its bandwidth
    // ceiling. A remainder loop takes the quads left over; K % 4 == 0 here (host).
    let K4 = p.K / 4u;
    var j = lane;
    for (; j + 3u * WARP < K4; j += 4u * WARP) {
      let v0 = long4(l, j);
      let v1 = long4(l, j + WARP);
      let v2 = long4(l, j + 2u * WARP);
      let v3 = long4(l, j + 3u * WARP);
      accumulate4(v0, j, S, &acc0, &acc1, &acc2, &acc3);
      accumulate4(v1, j + WARP, S, &acc0, &acc1, &acc2, &acc3);
      accumulate4(v2, j + 2u * WARP, S, &acc0, &acc1, &acc2, &acc3);
      accumulate4(v3, j + 3u * WARP, S, &acc0, &acc1, &acc2, &acc3);
    }
    for (; j < K4; j += WARP) {
      accumulate4(long4(l, j), j, S, &acc0, &acc1, &acc2, &acc3);
    }
//#else
    // Sixteen of the thread's k at a time, their sixteen long-operand loads issued before any is used. The product
    // is bound by the latency of those loads: a thread's k run one after another, so its loop is a chain of round
    // trips to memory, one per batch of loads. One load at a time kept about 2 KB in flight per SM on the H200, which
    // Little's law caps near 0.4 TB/s, and that is what it ran at (2026-11-30); four at a time still left dA and dB
    // (groups on K: 2048 tokens / 8 groups = 64 batches of four a thread, at most 448 workgroups) at ≈ 85 µs each, about
    // 64 round trips (run b, 2026-12-04). Sixteen make that 16. The sums still take their terms one fma at a time in
    // increasing k: the same bits as one at a time.
    var k = kFirst;
    for (; k + 15u * kStep < p.K; k += 16u * kStep) {
//#unroll u 16
      let v$(u) = longAt(l, k + $(u)u * kStep);
//#endunroll
//#unroll u 16
      accumulate(v$(u), k + $(u)u * kStep, S, &acc0, &acc1, &acc2, &acc3);
//#endunroll
    }
    for (; k < p.K; k += kStep) {
      accumulate(longAt(l, k), k, S, &acc0, &acc1, &acc2, &acc3);
    }
//#endif
  }

  let accs = array<vec4f, 4>(acc0, acc1, acc2, acc3);
  for (var q = 0u; q * 4u < S; q++) {
    let a = accs[q];
    for (var c = 0u; c < 4u; c++) { part[slot(4u * q + c, g, lane)] = a[c]; }
  }
  workgroupBarrier();

  for (var o = t; o < rl * S; o += THREADS) {
    let s = o / rl;
    let r = o % rl;
    let lo = l0 + r;
    if (lo >= L) { continue; }
    var acc = 0.0;
    if (LANES_ON_K) {
      for (var j = 0u; j < WARP; j++) { acc += part[slot(s, r, j)]; }
    } else {
      for (var j = 0u; j < GROUPS; j++) { acc += part[slot(s, j, r)]; }
    }
    var m = lo;
    var n = s;
    if (SMALL_M) { m = s; n = lo; }
    let ci = cBase + m * p.N + n;
    var v = p.alpha * acc;
//#if DROP_OUT
    v = drop1(v, m * p.N + n);
    if (p.beta != 0.0) { v = C[ci] + v; }
//#else
    if (p.beta != 0.0) { v += p.beta * C[ci]; }
//#endif
    C[ci] = v;
  }
}
