// Register-tiled fp32 GEMM: the contract of shaders/matmul.wgsl, laid out for throughput (docs/performance.md,
// "The register-tiled matmul"):
//   C[b] = alpha · op(A[b]) · op(B[b]) + beta · C[b]
// A is [M, K] (or [K, M] with TRANS_A), B is [K, N] (or [N, K] with TRANS_B), C is [M, N], all row-major; B is f32 or
// (B_HALF) bf16 or f16 (HALF_F16), two per u32, low half first (shaders/half.wgsl). Accumulation is f32. 39.5
// TFLOP/s at 4096³ on an H200, 35–41 at Mistral-7B's shapes, one stage (2026-12-04, docs/benchmarks.md).
//
// Layout:
// - A workgroup computes a 128×128 block of C (128×64 with NARROW) with 256 (128) threads; each thread owns 8×8
//   outputs as 2×2 vec4 sub-tiles: rows 4·ty… and 64 + 4·ty…, columns 4·tx… and BN/2 + 4·tx…. Per K element a
//   thread reads 2 vec4 of A and 2 vec4 of B from workgroup memory for 64 FMAs; within a warp the A reads are
//   broadcasts and the B reads consecutive vec4s.
// - K steps by 16. Both tiles sit in workgroup memory k-major ([k][m], [k][n]) as vec4s: 8 KiB each, 16 KiB in all,
//   the WebGPU minimum every adapter offers. The next K tile is fetched into registers before the FMAs of the
//   current one, so global loads overlap arithmetic; one barrier pair per K step. The 16 steps of a K tile are written
//   out (//#unroll) on named accumulators: 1.15–1.28× the same design as loops over arrays on the H200.
// - DEEP_K (where the adapter offers 32 KiB; one stage only): K steps by 32, so both tiles are 16 KiB each (the narrow
//   block's B tile 8 KiB) and a K step's two barriers cover twice the FMAs. The sweep's generated 128×128×32 kernel
//   ran 1.10–1.11× this one's 16-step form on the H200 (docs/benchmarks.md, run c); this is that step on every variant
//   here. Each output still sums its K products one fma at a time in increasing k, so the bits are the 16-step
//   kernel's (zeros past K add +0: at most the sign of an exact zero sum differs). Its swizzle spans 8 k-quads
//   (swz(k) = (k >> 2) & 7) where a warp's stores now reach 8; the NF4 code book moves to a 64-byte storage buffer
//   (nf4Table), since the wide block's tiles fill the 32 KiB that desktop adapters and SwiftShader offer.
// - DOUBLE (where the adapter offers 32 KiB; 24 KiB for NARROW; not with DEEP_K): two stages of both tiles. The
//   registers holding the next K tile are stored into the other stage right after the FMAs of this one, so a K step
//   needs one barrier instead of two (the stage written was last read a step earlier, before the barrier that ended that step). Same
//   arithmetic in the same order: the same bits as one stage.
// - Stores that transpose (a vec4 read along k scattered over 4 rows of the k-major tile: A without TRANS_A, B with
//   TRANS_B) would hit the same banks from threads whose k differs; instead of padding rows (which breaks the 16 KiB
//   and the vec4 alignment), the vec4 column of row k is XORed with swz(k) = 2·((k >> 2) & 3). Readers XOR the same.
//   swz < 8 ≤ half a row, so each half of a row maps onto itself: a thread's two sub-tiles stay BM/2 (BN/2) apart.
// - ALIGNED (every contiguous dimension and batch stride a multiple of 4): A, B, C are bound as vec4 (16-bit B as
//   vec2<u32>) and read 128 bits at a time; a quad of 4 is then entirely inside or outside the matrix. Otherwise
//   every element is loaded and stored on its own.
// - CHECK (override): edge tests on loads (zeros outside) and stores (skipped outside). The host turns it off when
//   M % 128, N % BN and K % 16 are all 0, and the compiler drops the tests.
// - WARP_MAP: threads take their (tx, ty) so that a warp of 32 covers 8 × 4 of the thread grid instead of 16 × 2
//   (fewer shared-memory wavefronts per K element on a 32-wide warp; `finetune bench sweep` measures the two maps).
// - FIXED_M/N/K (overrides, 0 = read the uniform): sizes compiled into the pipeline, so index arithmetic folds.
//   One pipeline per shape: the host uses them only when asked (the `tiled-fixed` choice).
// - NF4 (without TRANS_A): B is a frozen NF4 weight W (layout in shaders/nf4.wgsl; its columns a multiple of 64), read
//   through its code book; DQ reads double-quantised scales. The 16-entry table adds 64 bytes of workgroup memory.
//   Both fused products of shaders/nf4_matmul.wgsl run on this tiling, told apart by TRANS_B:
//   - with TRANS_B, the forward: W is [N, K], C = alpha · X · deq(W)ᵀ (+ beta · C). Each thread fetches one code word
//     (8 weights along k) and its block scale per K step and scatters it down 8 rows of the k-major B tile.
//   - without, the input gradient: W is [K, N] (the layer's [out, in]: here the reduction runs over the layer's
//     outputs), C = dX = alpha · dY · deq(W) (+ beta · C). A B tile row is then BN consecutive weights of one row of
//     W, BN/8 code words: each thread fetches one word and its scale and writes it as two vec4s into one tile row.
//   With one stage the fetched word is dequantised into 8 registers right after the FMAs of the step before, ahead
//   of the barrier (DEQ_BEFORE_BARRIER), so the phase between the barriers only stores, as for f32 weights (the NF4
//   forward ran 0.93–0.94× plain on the H200 where the f32 X·Wᵀ ran 0.99–1.06×, the store pattern being the same).
// - DROPOUT with DROP_A, DROP_B or DROP_OUT (f32 operands, not with NF4): the LoRA dropout mask of shaders/lora.wgsl
//   fused in, as in shaders/matmul.wgsl (same contract, same bits): an operand element (flat index i in its stored
//   matrix of one batch entry) becomes select(0, v · scale, keep(i)) as it is fetched, component by component of a
//   vec4; DROP_OUT stores C[o] = (C[o] +) select(0, (alpha · acc) · scale, keep(o)), beta 0 or 1.
// - LOW_RANK (not with DROP_A/B/OUT): a rank-R product added in the epilogue, C = alpha · acc (+ beta · C) +
//   drop(lrScale · U·op(V)), with U (M, R) and V (N, R) under LR_TRANS_V, else (R, N), both row-major f32; LR_DROP
//   masks that term with the dropout of DROP_OUT (index r · N + c). It is LoRA's up-projection (y += s · t·Bᵀ) on
//   the frozen base's forward and its input gradient (dx += drop(dt·A)) on the base's, where they were a second
//   GEMM over all of C (kernels/lora.ts). The R products of an element are added one fma at a time in increasing j
//   from 0, as this kernel adds a K = R product, and then added to the base's result as that GEMM's epilogue adds
//   them (alpha R-sum + beta · C), so the output is the two-pass path's (to the bit where the compiler contracts
//   multiply-adds alike in both, as SwiftShader's does).

//#if NF4
@group(0) @binding(2) var<storage, read> codes: array<u32>;
//#if DQ
@group(0) @binding(4) var<storage, read> q8: array<u32>;
@group(0) @binding(5) var<storage, read> dqScale: array<f32>;
@group(0) @binding(6) var<storage, read> dqOffset: array<f32>;
@group(0) @binding(7) var<storage, read> dqTable: array<f32>;
//#else
@group(0) @binding(4) var<storage, read> absmax: array<f32>;
//#endif
//#else
//#if B_HALF
//#if ALIGNED
@group(0) @binding(2) var<storage, read> B: array<vec2<u32>>;
//#else
@group(0) @binding(2) var<storage, read> B: array<u32>;
//#endif
//#else
//#if ALIGNED
@group(0) @binding(2) var<storage, read> B: array<vec4<f32>>;
//#else
@group(0) @binding(2) var<storage, read> B: array<f32>;
//#endif
//#endif
//#endif
//#if NF4
//#if DEEP_K
// The NF4 code book (NF4_VALUES), bound after every other buffer: the workgroup memory is all tiles.
//#if DQ
//#if LOW_RANK
@group(0) @binding(10) var<storage, read> nf4Table: array<f32, 16>;
//#else
@group(0) @binding(8) var<storage, read> nf4Table: array<f32, 16>;
//#endif
//#else
//#if LOW_RANK
@group(0) @binding(7) var<storage, read> nf4Table: array<f32, 16>;
//#else
@group(0) @binding(5) var<storage, read> nf4Table: array<f32, 16>;
//#endif
//#endif
//#endif
//#endif
//#if LOW_RANK
// After the variant's own buffers (ctx.dispatch binds them in order from 1).
//#if NF4
//#if DQ
@group(0) @binding(8) var<storage, read> U: array<f32>;
@group(0) @binding(9) var<storage, read> V: array<f32>;
//#else
@group(0) @binding(5) var<storage, read> U: array<f32>;
@group(0) @binding(6) var<storage, read> V: array<f32>;
//#endif
//#else
@group(0) @binding(4) var<storage, read> U: array<f32>;
@group(0) @binding(5) var<storage, read> V: array<f32>;
//#endif
//#endif
//#if ALIGNED
@group(0) @binding(1) var<storage, read> A: array<vec4<f32>>;
@group(0) @binding(3) var<storage, read_write> C: array<vec4<f32>>;
//#else
@group(0) @binding(1) var<storage, read> A: array<f32>;
@group(0) @binding(3) var<storage, read_write> C: array<f32>;
//#endif

// The same block as shaders/matmul.wgsl, so both kernels take one uniform layout (dstate, dthreshold, dscale: the
// dropout mask, read with DROPOUT; lrScale: LOW_RANK's scale, padding in matmul.wgsl).
struct Params {
  M: u32, N: u32, K: u32, dstate: u32,
  strideA: u32, strideB: u32, strideC: u32, dthreshold: u32,
  alpha: f32, beta: f32, dscale: f32, lrScale: f32,
}
@group(0) @binding(0) var<uniform> p: Params;

override TRANS_A: bool = false;
override TRANS_B: bool = false;
override CHECK: bool = true;
override FIXED_M: u32 = 0u;
override FIXED_N: u32 = 0u;
override FIXED_K: u32 = 0u;
//#if LOW_RANK
override LR_R: u32 = 1u;
override LR_TRANS_V: bool = false;
//#endif

const BM = 128u;
//#if DEEP_K
const BK = 32u;
//#else
const BK = 16u;
//#endif
//#if NARROW
const BN = 64u;
//#else
const BN = 128u;
//#endif
const TX = BN / 8u;           // threads along N
const TY = BM / 8u;           // threads along M
const THREADS = TX * TY;      // 256, or 128 with NARROW
const BM4 = BM / 4u;          // vec4s per tile row of A
const BN4 = BN / 4u;          // vec4s per tile row of B
const BK4 = BK / 4u;
const_assert BK == 16u || BK == 32u; // the K step is written out BK times in main (//#unroll … DEEP_K 32)
const LA = BK * BM4 / THREADS; // vec4s of the A tile each thread fetches: 2 (4 with NARROW), twice that with DEEP_K
//#if NF4
// What a thread fetches of the B tile: code words of W (8 weights along k with TRANS_B, along n without), each with
// its block's scale. BK × BN weights are BK·BN/8 words: one per thread in both blocks and both directions, two with
// DEEP_K.
struct BReg { word: u32, scale: f32 }
const LB = BK / 16u;
// A fetched word dequantised: its weights j = 0 … 3 in lo and 4 … 7 in hi (j as in nibbleShift).
struct BVal { lo: vec4<f32>, hi: vec4<f32> }
// Single stage: a K step's word is dequantised into registers right after the FMAs of the step before, ahead of the
// barrier, so its table reads and multiplies overlap other warps' FMAs (and this warp's, as the compiler schedules
// them); the phase between the two barriers then only stores, as for f32 weights. false (TiledOptions.dequantAtStore)
// dequantises at the store, as before 2026-12-04 (late): the same values, so the same bits; `bench nf4` times both.
override DEQ_BEFORE_BARRIER: bool = true;
//#else
alias BReg = vec4<f32>;
const LB = BK * BN4 / THREADS; // vec4s of the B tile each thread fetches: 2 (4 with DEEP_K)
//#endif

//#if DOUBLE
const STAGES = 2u;
// The stage put* write (0 or 1).
var<private> putStage: u32;
//#else
const STAGES = 1u;
const putStage = 0u;
//#endif
const A_STAGE = BK * BM4; // vec4s of one stage of the A tile
const B_STAGE = BK * BN4;

var<workgroup> As: array<vec4<f32>, STAGES * A_STAGE>; // per stage [BK][BM/4], vec4 columns swizzled by swz(k)
var<workgroup> Bs: array<vec4<f32>, STAGES * B_STAGE>; // per stage [BK][BN/4]
//#if NF4
//#if !DEEP_K
var<workgroup> lut: array<f32, 16>;
//#endif
//#endif

fn dimM() -> u32 { return select(p.M, FIXED_M, FIXED_M != 0u); }
fn dimN() -> u32 { return select(p.N, FIXED_N, FIXED_N != 0u); }
fn dimK() -> u32 { return select(p.K, FIXED_K, FIXED_K != 0u); }

//#if DEEP_K
// A warp's transposing stores reach 8 k-quads of a 32-row tile (a row of A's tile is 8 of them): all 8 XOR values.
fn swz(k: u32) -> u32 { return (k >> 2u) & 7u; }
//#else
fn swz(k: u32) -> u32 { return ((k >> 2u) & 3u) << 1u; }
//#endif
// The B tile's swizzle: none where each thread stores whole vec4s of one tile row (f32 or 16-bit B without TRANS_B), so
// the reads need no XOR; swz where stores scatter down tile rows (TRANS_B) or split a code word's halves (NF4).
//#if NF4
fn swzB(k: u32) -> u32 { return swz(k); }
//#else
fn swzB(k: u32) -> u32 { return select(0u, swz(k), TRANS_B); }
//#endif

//#if DROPOUT
// murmur3_x86_32 on u32 words (shaders/dropout_hash.wgsl, the same functions lora.wgsl uses):
//#include dropout_hash

fn keep(i: u32) -> bool {
  return murmurFinal(murmurBlock(p.dstate, i), 20u) >= p.dthreshold;
}

// Elements i … i + 3, each select(0, v · scale, keep): lora.wgsl's expression, component-wise.
fn drop4(v: vec4<f32>, i: u32) -> vec4<f32> {
  let k = vec4<bool>(keep(i), keep(i + 1u), keep(i + 2u), keep(i + 3u));
  return select(vec4<f32>(0.0), v * p.dscale, k);
}
//#endif

// Four consecutive elements of row r of the matrix as stored (R rows of Cc), from column c (a multiple of 4).
fn loadA4(base: u32, r: u32, c: u32, R: u32, Cc: u32) -> vec4<f32> {
//#if ALIGNED
  if (CHECK && (r >= R || c >= Cc)) { return vec4<f32>(0.0); }
  let v = A[(base + r * Cc + c) >> 2u];
//#else
  var v = vec4<f32>(0.0);
  for (var i = 0u; i < 4u; i++) {
    if (!CHECK || (r < R && c + i < Cc)) { v[i] = A[base + r * Cc + c + i]; }
  }
//#endif
//#if DROP_A
  // Elements outside the matrix are 0 and stay 0 (their indices are hashed for nothing).
  return drop4(v, r * Cc + c);
//#else
  return v;
//#endif
}

// Vec4 t of this thread's share of the A tile at k0: along m with TRANS_A (stored [K][M]), else along k.
fn fetchA(li: u32, t: u32, row0: u32, k0: u32, base: u32) -> vec4<f32> {
  let q = li + t * THREADS;
  if (TRANS_A) { return loadA4(base, k0 + q / BM4, row0 + (q % BM4) * 4u, dimK(), dimM()); }
  return loadA4(base, row0 + q / BK4, k0 + (q % BK4) * 4u, dimM(), dimK());
}

// The tile stores below bound every offset for the robustness pass, which sees nothing of a function's parameters:
// q is taken % the tile's vec4 count (li < THREADS and t < LA, so it is q itself), the swizzled column % the row's
// vec4s, the stage % STAGES. Each `%` is one AND where the clamps it saves were one UMin per store and lane.
fn putA(li: u32, t: u32, v: vec4<f32>) {
  let q = (li + t * THREADS) % A_STAGE;
  if (TRANS_A) {
    let k = q / BM4;
    As[(putStage % STAGES) * A_STAGE + k * BM4 + ((q % BM4) ^ swz(k)) % BM4] = v;
  } else {
    // v holds k = 4·kq … 4·kq + 3 of row m: one float into each of four tile rows (swz is the same for all four).
    let m = q / BK4;
    let k = (q % BK4) * 4u;
    let col = ((m / 4u) ^ swz(k)) % BM4;
    let lane = m % 4u;
    let o = (putStage % STAGES) * A_STAGE;
    As[o + (k + 0u) * BM4 + col][lane] = v.x;
    As[o + (k + 1u) * BM4 + col][lane] = v.y;
    As[o + (k + 2u) * BM4 + col][lane] = v.z;
    As[o + (k + 3u) * BM4 + col][lane] = v.w;
  }
}

//#if NF4
// The NF4 code book (the nf4_values partial) and helpers, as in shaders/nf4_matmul.wgsl.
//#include nf4_values

fn blockScale(b: u32) -> f32 {
//#if DQ
  let q = (q8[b >> 2u] >> ((b & 3u) * 8u)) & 255u;
  return dqTable[q] * dqScale[b >> 8u] + dqOffset[0];
//#else
  return absmax[b];
//#endif
}

// Where element j (0..7) of a code word sits: byte j/2, high nibble for even j.
fn nibbleShift(j: u32) -> u32 {
  return (j >> 1u) * 8u + select(0u, 4u, (j & 1u) == 0u);
}

// Code words per B tile row in the input gradient (no TRANS_B): 16 (wide) or 8 (narrow), so BK rows × WPR words is
// LB words per thread in both blocks.
const WPR = BN / 8u;
// Code words per row of W in a K step of the forward (TRANS_B): 2, or 4 with DEEP_K.
const WPK = BK / 8u;

// Forward (TRANS_B): row n = q / WPK of W, code word q % WPK of the tile's (k0 … k0 + BK − 1); rows past N read as
// zeros.
// Input gradient: tile row q / WPR is row k0 + q / WPR of W [K, N], word q % WPR of its BN columns from col0;
// neighbouring threads read neighbouring words. A word never straddles a 64-block (N % 64 == 0 and col0 % 64 == 0), so
// its one scale covers all 8 weights; rows past K and columns past N read as zeros.
// `prev` is what this thread fetched into the same register at the K step before (zeros before the first): the same
// row of W, since q depends on the thread and the register only.
fn fetchB(li: u32, t: u32, col0: u32, k0: u32, base: u32, prev: BReg) -> BReg {
  let q = li + t * THREADS;
  if (TRANS_B) {
    let gn = col0 + q / WPK;
    if (CHECK && gn >= dimN()) { return BReg(0u, 0.0); }
    let e = gn * dimK() + k0; // element index of the tile's first weight in row gn; K % 64 == 0
    // Row gn's 64-weight block spans 64 / BK K steps, and the thread fetches from the same row at each: its scale is
    // read (with double quantisation, a code, a table entry and two floats) at the block's first step and kept for the
    // others. k0 is the same for the whole workgroup, so the branch is uniform.
    var scale = prev.scale;
    if (k0 % 64u == 0u) { scale = blockScale(e >> 6u); }
    return BReg(codes[(e >> 3u) + q % WPK], scale);
  }
  let gk = k0 + q / WPR;
  let gc = col0 + (q % WPR) * 8u;
  if (CHECK && (gk >= dimK() || gc >= dimN())) { return BReg(0u, 0.0); }
  let e = gk * dimN() + gc;
  return BReg(codes[e >> 3u], blockScale(e >> 6u));
}

// One weight of a code word (element j at nibbleShift(j)), scaled. `% 16u` rather than `& 15u`: the robustness pass
// bounds a remainder by a constant (not a mask), so the table read carries no clamp (docs/performance.md, "Bounds
// clamps"); the same instruction either way.
fn deq(word: u32, shift: u32, scale: f32) -> f32 {
//#if DEEP_K
  return nf4Table[(word >> shift) % 16u] * scale;
//#else
  return lut[(word >> shift) % 16u] * scale;
//#endif
}

// The word's 8 weights, scaled: j = 0 … 7 at nibbleShift(j) = 4, 0, 12, 8, 20, 16, 28, 24.
fn dequantB(v: BReg) -> BVal {
  return BVal(
    vec4<f32>(deq(v.word, 4u, v.scale), deq(v.word, 0u, v.scale), deq(v.word, 12u, v.scale), deq(v.word, 8u, v.scale)),
    vec4<f32>(deq(v.word, 20u, v.scale), deq(v.word, 16u, v.scale), deq(v.word, 28u, v.scale), deq(v.word, 24u, v.scale)),
  );
}

// Offsets bounded as in putA (q < LB · THREADS).
fn putB(li: u32, t: u32, v: BVal) {
  let q = (li + t * THREADS) % (LB * THREADS);
  if (TRANS_B) {
    // The word's weights into 8 tile rows k … k + 7 of column n (two swizzle groups of 4).
    let n = q / WPK;
    let k = (q % WPK) * 8u;
    let lane = n % 4u;
    let o = (putStage % STAGES) * B_STAGE;
    let c = n / 4u;
    Bs[o + (k + 0u) * BN4 + (c ^ swz(k + 0u)) % BN4][lane] = v.lo.x;
    Bs[o + (k + 1u) * BN4 + (c ^ swz(k + 1u)) % BN4][lane] = v.lo.y;
    Bs[o + (k + 2u) * BN4 + (c ^ swz(k + 2u)) % BN4][lane] = v.lo.z;
    Bs[o + (k + 3u) * BN4 + (c ^ swz(k + 3u)) % BN4][lane] = v.lo.w;
    Bs[o + (k + 4u) * BN4 + (c ^ swz(k + 4u)) % BN4][lane] = v.hi.x;
    Bs[o + (k + 5u) * BN4 + (c ^ swz(k + 5u)) % BN4][lane] = v.hi.y;
    Bs[o + (k + 6u) * BN4 + (c ^ swz(k + 6u)) % BN4][lane] = v.hi.z;
    Bs[o + (k + 7u) * BN4 + (c ^ swz(k + 7u)) % BN4][lane] = v.hi.w;
    return;
  }
  // The word is columns 8w … 8w + 7 of tile row r: vec4 columns 2w (elements 0–3) and 2w + 1 (4–7). The table reads
  // cannot conflict (16 entries in 16 banks). For the vec4 stores, 8 neighbouring threads (one row, w = 8i … 8i + 7)
  // would hit only the even columns in the first store, two threads per bank group; so threads with w & 4 store their
  // high half first: each store then covers 8 distinct columns mod 8, and the row's swizzle (an XOR by an even value
  // below 8) keeps them distinct.
  let r = q / WPR;
  let w = q % WPR;
  let lo = v.lo;
  let hi = v.hi;
  let h = (w >> 2u) & 1u;
  let s = swz(r);
  let o = (putStage % STAGES) * B_STAGE + r * BN4;
  Bs[o + ((2u * w + h) ^ s) % BN4] = select(lo, hi, h == 1u);
  Bs[o + ((2u * w + 1u - h) ^ s) % BN4] = select(hi, lo, h == 1u);
}

// What fetchB fetched, into the B tile: dequantised on the way.
fn putFetched(li: u32, t: u32, v: BReg) {
  putB(li, t, dequantB(v));
}
//#else
//#if B_HALF
//#include half
//#endif

fn loadB4(base: u32, r: u32, c: u32, R: u32, Cc: u32) -> vec4<f32> {
//#if ALIGNED
  if (CHECK && (r >= R || c >= Cc)) { return vec4<f32>(0.0); }
//#if B_HALF
  let w = B[(base + r * Cc + c) >> 2u];
  return vec4<f32>(halfToF32(w.x, false), halfToF32(w.x, true), halfToF32(w.y, false), halfToF32(w.y, true));
//#else
//#if DROP_B
  return drop4(B[(base + r * Cc + c) >> 2u], r * Cc + c);
//#else
  return B[(base + r * Cc + c) >> 2u];
//#endif
//#endif
//#else
  var v = vec4<f32>(0.0);
  for (var i = 0u; i < 4u; i++) {
    if (!CHECK || (r < R && c + i < Cc)) {
      let e = base + r * Cc + c + i;
//#if B_HALF
      v[i] = halfToF32(B[e >> 1u], (e & 1u) == 1u);
//#else
      v[i] = B[e];
//#endif
    }
  }
//#if DROP_B
  return drop4(v, r * Cc + c);
//#else
  return v;
//#endif
//#endif
}

// B tile at k0: along n unless TRANS_B (stored [N][K]: along k). `prev` (the NF4 fetch's) is not needed here.
fn fetchB(li: u32, t: u32, col0: u32, k0: u32, base: u32, prev: BReg) -> BReg {
  let q = li + t * THREADS;
  if (TRANS_B) { return loadB4(base, col0 + q / BK4, k0 + (q % BK4) * 4u, dimN(), dimK()); }
  return loadB4(base, k0 + q / BN4, col0 + (q % BN4) * 4u, dimK(), dimN());
}

// Offsets bounded as in putA.
fn putB(li: u32, t: u32, v: BReg) {
  let q = (li + t * THREADS) % B_STAGE;
  if (TRANS_B) {
    let n = q / BK4;
    let k = (q % BK4) * 4u;
    let col = ((n / 4u) ^ swz(k)) % BN4;
    let lane = n % 4u;
    let o = (putStage % STAGES) * B_STAGE;
    Bs[o + (k + 0u) * BN4 + col][lane] = v.x;
    Bs[o + (k + 1u) * BN4 + col][lane] = v.y;
    Bs[o + (k + 2u) * BN4 + col][lane] = v.z;
    Bs[o + (k + 3u) * BN4 + col][lane] = v.w;
  } else {
    let k = q / BN4;
    Bs[(putStage % STAGES) * B_STAGE + k * BN4 + ((q % BN4) ^ swzB(k)) % BN4] = v;
  }
}

// What fetchB fetched, into the B tile as it is.
fn putFetched(li: u32, t: u32, v: BReg) {
  putB(li, t, v);
}

//#endif

//#if LOW_RANK
// Columns c … c+3 of row j of op(V)ᵀ, i.e. V[n, j] (LR_TRANS_V) or V[j, n]. Columns past N read column N − 1 (their
// stores are skipped).
fn lowRankV4(c: u32, j: u32) -> vec4<f32> {
  let N = dimN();
  var v = vec4<f32>(0.0);
  for (var i = 0u; i < 4u; i++) {
    let n = min(c + i, N - 1u);
    if (LR_TRANS_V) { v[i] = V[n * LR_R + j]; } else { v[i] = V[j * N + n]; }
  }
  return v;
}

// U·op(V) at row r (row M − 1 past M) for the thread's two column quads c0 … c0+3 and c1 … c1+3: the R products of an
// element added one fma at a time in increasing j from 0 (the order of a K = R product on this kernel). One row at a
// time, each stored before the next is formed, so the epilogue holds 2 quads beside the accumulators (and frees two
// accumulator quads per row). Forming all 8 rows of both quads first held 16 quads there: 64 floats of term beside
// the 64 accumulators, 128 before any address or V, the most registers a thread may hold where two 256-thread
// workgroups share an NVIDIA SM (64 Ki registers), the occupancy the K loop is laid out for. V's quads are read again for each row; they are few and
// stay in cache.
fn lowRankRow(r: u32, c0: u32, c1: u32) -> array<vec4<f32>, 2> {
  let u = min(r, dimM() - 1u) * LR_R;
  var l0 = vec4<f32>(0.0);
  var l1 = vec4<f32>(0.0);
  for (var j = 0u; j < LR_R; j++) {
    let x = vec4<f32>(U[u + j]);
    l0 = fma(x, lowRankV4(c0, j), l0);
    l1 = fma(x, lowRankV4(c1, j), l1);
  }
  return array<vec4<f32>, 2>(l0, l1);
}
//#endif

// alpha · v (+ beta · C) into C[r, c … c+3]; beta = 0 never reads C (it may hold garbage, even NaN). With LOW_RANK,
// `l` (U·op(V) there) is then added as drop(lrScale · l).
fn storeQuad(base: u32, r: u32, c: u32, v: vec4<f32>, l: vec4<f32>) {
  let M = dimM();
  let N = dimN();
//#if ALIGNED
  if (CHECK && (r >= M || c >= N)) { return; }
  let o = (base + r * N + c) >> 2u;
  var y = p.alpha * v;
//#if DROP_OUT
  y = drop4(y, r * N + c);
  if (p.beta != 0.0) { y = C[o] + y; }
//#else
  if (p.beta != 0.0) { y += p.beta * C[o]; }
//#endif
//#if LOW_RANK
  var z = p.lrScale * l;
//#if LR_DROP
  z = drop4(z, r * N + c);
//#endif
  y = z + y;
//#endif
  C[o] = y;
//#else
  for (var i = 0u; i < 4u; i++) {
    if (!CHECK || (r < M && c + i < N)) {
      let o = base + r * N + c + i;
      var y = p.alpha * v[i];
//#if DROP_OUT
      y = select(0.0, y * p.dscale, keep(r * N + c + i));
      if (p.beta != 0.0) { y = C[o] + y; }
//#else
      if (p.beta != 0.0) { y += p.beta * C[o]; }
//#endif
//#if LOW_RANK
      var z = p.lrScale * l[i];
//#if LR_DROP
      z = select(0.0, z * p.dscale, keep(r * N + c + i));
//#endif
      y = z + y;
//#endif
      C[o] = y;
    }
  }
//#endif
}

fn storeRow(base: u32, r: u32, c0: u32, c1: u32, v0: vec4<f32>, v1: vec4<f32>) {
//#if LOW_RANK
  let l = lowRankRow(r, c0, c1);
//#else
  // No term to add (storeQuad ignores it).
  let l = array<vec4<f32>, 2>();
//#endif
  storeQuad(base, r, c0, v0, l[0]);
  storeQuad(base, r, c1, v1, l[1]);
}

@compute @workgroup_size(THREADS)
fn main(@builtin(workgroup_id) wg: vec3u, @builtin(local_invocation_index) li: u32) {
//#if WARP_MAP
  // Each warp of 32 threads an 8 × 4 patch of the thread grid (warps in rows of TX / 8): its B reads per K element are
  // 8 consecutive vec4s (one 128-byte wavefront) and its A reads 4 distinct vec4s, where a row of the grid (16 × 2)
  // reads 16 and 2. Which pairs of (tx, ty) share a warp is all that changes: the same outputs, the same bits.
  let tx = (li / 32u) % (TX / 8u) * 8u + li % 8u;
  let ty = (li / 32u) / (TX / 8u) * 4u + (li % 32u) / 8u;
//#else
  let tx = li % TX;
  let ty = li / TX;
//#endif
  let row0 = wg.y * BM;
  let col0 = wg.x * BN;
  let aBase = wg.z * p.strideA;
  let bBase = wg.z * p.strideB;
  let cBase = wg.z * p.strideC;
  let tiles = (dimK() + BK - 1u) / BK;
//#if NF4
//#if !DEEP_K
  if (li < 16u) { lut[li] = NF4_VALUES[li]; }
  workgroupBarrier(); // the table is read by the first putB
//#endif
//#endif

  // acc{2i + j}: row i of the thread's 8 (0–3: 4·ty + i; 4–7: BM/2 + 4·ty + i - 4), column sub-tile j. Named
  // variables, as are the registers holding the next K tile (ra*, rb*), and the BK multiply-add steps of a K tile
  // written out (//#unroll, src/engine/preprocess.ts): on the H200 this form ran 1.15–1.28× the earlier arrays and
  // loops (`finetune bench sweep`, docs/benchmarks.md 2026-12-04), its shared-memory offsets constants.
//#unroll i 16
  var acc$(i) = vec4<f32>(0.0);
//#endunroll
  // LA is at most 4 (the narrow block's A tile) and LB at most 2, twice that with DEEP_K: the copies past them are
  // compiled out.
//#unroll t 4 DEEP_K 8
  var ra$(t): vec4<f32>;
  if ($(t)u < LA) { ra$(t) = fetchA(li, $(t)u, row0, 0u, aBase); }
//#endunroll
//#unroll t 2 DEEP_K 4
  var rb$(t): BReg;
  if ($(t)u < LB) { rb$(t) = fetchB(li, $(t)u, col0, 0u, bBase, rb$(t)); }
//#endunroll
//#if NF4
//#if !DOUBLE
  // The first K step's weights, dequantised (DEQ_BEFORE_BARRIER); each step then dequantises the next one's.
//#unroll t 2
  var db$(t): BVal;
  if ($(t)u < LB) { db$(t) = dequantB(rb$(t)); }
//#endunroll
//#endif
//#endif

//#if DOUBLE
  // The first tile into stage 0 (putStage starts at 0); each step then fills the other stage for the next one.
//#unroll t 4 DEEP_K 8
  if ($(t)u < LA) { putA(li, $(t)u, ra$(t)); }
//#endunroll
//#unroll t 2 DEEP_K 4
  if ($(t)u < LB) { putFetched(li, $(t)u, rb$(t)); }
//#endunroll
  workgroupBarrier();
//#endif
  for (var kt = 0u; kt < tiles; kt++) {
//#if DOUBLE
    let useA = (kt % 2u) * A_STAGE;
    let useB = (kt % 2u) * B_STAGE;
//#else
//#unroll t 4 DEEP_K 8
    if ($(t)u < LA) { putA(li, $(t)u, ra$(t)); }
//#endunroll
//#if NF4
//#unroll t 2
    if ($(t)u < LB) { if (DEQ_BEFORE_BARRIER) { putB(li, $(t)u, db$(t)); } else { putFetched(li, $(t)u, rb$(t)); } }
//#endunroll
//#else
//#unroll t 2 DEEP_K 4
    if ($(t)u < LB) { putFetched(li, $(t)u, rb$(t)); }
//#endunroll
//#endif
    workgroupBarrier();
    let useA = 0u;
    let useB = 0u;
//#endif
    // The next tile's global loads are issued now and land while the FMAs below run.
    if (kt + 1u < tiles) {
      let k0 = (kt + 1u) * BK;
//#unroll t 4 DEEP_K 8
      if ($(t)u < LA) { ra$(t) = fetchA(li, $(t)u, row0, k0, aBase); }
//#endunroll
//#unroll t 2 DEEP_K 4
      if ($(t)u < LB) { rb$(t) = fetchB(li, $(t)u, col0, k0, bBase, rb$(t)); }
//#endunroll
    }
    // The tile reads index workgroup memory only with offsets the robustness pass proves in range (a constant plus a
    // column reduced `% BM4` or `% BN4`), so it compiles no clamp into this loop, which is four shared reads for 64
    // FMAs per step (docs/performance.md, "Bounds clamps"; test/gpu/clamp_free.test.ts).
//#unroll kk 16 DEEP_K 32
    {
      let a0 = As[useA + $(kk)u * BM4 + (ty ^ swz($(kk)u)) % BM4];
      let a1 = As[useA + $(kk)u * BM4 + ((ty + TY) ^ swz($(kk)u)) % BM4];
      let b0 = Bs[useB + $(kk)u * BN4 + (tx ^ swzB($(kk)u)) % BN4];
      let b1 = Bs[useB + $(kk)u * BN4 + ((tx + TX) ^ swzB($(kk)u)) % BN4];
      acc0 = fma(vec4<f32>(a0.x), b0, acc0);
      acc1 = fma(vec4<f32>(a0.x), b1, acc1);
      acc2 = fma(vec4<f32>(a0.y), b0, acc2);
      acc3 = fma(vec4<f32>(a0.y), b1, acc3);
      acc4 = fma(vec4<f32>(a0.z), b0, acc4);
      acc5 = fma(vec4<f32>(a0.z), b1, acc5);
      acc6 = fma(vec4<f32>(a0.w), b0, acc6);
      acc7 = fma(vec4<f32>(a0.w), b1, acc7);
      acc8 = fma(vec4<f32>(a1.x), b0, acc8);
      acc9 = fma(vec4<f32>(a1.x), b1, acc9);
      acc10 = fma(vec4<f32>(a1.y), b0, acc10);
      acc11 = fma(vec4<f32>(a1.y), b1, acc11);
      acc12 = fma(vec4<f32>(a1.z), b0, acc12);
      acc13 = fma(vec4<f32>(a1.z), b1, acc13);
      acc14 = fma(vec4<f32>(a1.w), b0, acc14);
      acc15 = fma(vec4<f32>(a1.w), b1, acc15);
    }
//#endunroll
//#if DOUBLE
    // The next tile into the other stage, which every thread finished reading before the last step's barrier.
    if (kt + 1u < tiles) {
      putStage = (kt + 1u) & 1u;
//#unroll t 4
      if ($(t)u < LA) { putA(li, $(t)u, ra$(t)); }
//#endunroll
//#unroll t 2
      if ($(t)u < LB) { putFetched(li, $(t)u, rb$(t)); }
//#endunroll
    }
//#else
//#if NF4
    // The next step's weights (fetched above; on the last step the word already used, dequantised for nothing), in
    // the same basic block as the FMAs so the compiler may interleave them.
//#unroll t 2
    if (DEQ_BEFORE_BARRIER && $(t)u < LB) { db$(t) = dequantB(rb$(t)); }
//#endunroll
//#endif
//#endif
    workgroupBarrier();
  }

  let r0 = row0 + ty * 4u;
  let r1 = r0 + BM / 2u;
  let c0 = col0 + tx * 4u;
  let c1 = c0 + BN / 2u;
  storeRow(cBase, r0 + 0u, c0, c1, acc0, acc1);
  storeRow(cBase, r0 + 1u, c0, c1, acc2, acc3);
  storeRow(cBase, r0 + 2u, c0, c1, acc4, acc5);
  storeRow(cBase, r0 + 3u, c0, c1, acc6, acc7);
  storeRow(cBase, r1 + 0u, c0, c1, acc8, acc9);
  storeRow(cBase, r1 + 1u, c0, c1, acc10, acc11);
  storeRow(cBase, r1 + 2u, c0, c1, acc12, acc13);
  storeRow(cBase, r1 + 3u, c0, c1, acc14, acc15);
}
