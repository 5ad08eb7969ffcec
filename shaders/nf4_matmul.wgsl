// Products with a frozen NF4 weight W [N, K] (N = out features = rows, K = in features = cols, K % 64 == 0; layout
// in shaders/nf4.wgsl), never materialising the fp32 weight:
//   forward   Y  (M, N) = alpha · X  (M, K) · deq(W)ᵀ  (+ Y with accumulate)
//   backward  dX (M, K) = alpha · dY (M, N) · deq(W)   (+ dX with accumulate)
// Like shaders/matmul.wgsl, a workgroup of 256 threads computes a 64×64 block of the output, 4×4 values per thread, but
// it steps the reduction by 32 and dequantises each 32×64 slice of W once into workgroup memory, where all 64 rows of
// the block reuse it: one u32 of codes (8 weights) and one block scale per thread per step. Accumulation is f32. Thread
// li = 16·ty + tx owns rows 4·ty .. 4·ty + 3 and columns 4·tx .. 4·tx + 3, so each k of a step reads its 4 rows of A
// and 4 columns of B as two 128-bit loads (a warp's A load is a broadcast, its B loads 16 distinct vec4s) for 16 FMAs.
// (Its threads used to own rows and columns 16 apart: 8 scalar loads per 16 FMAs, which bounds a kernel by the loads on
// GPUs that issue one shared load per clock against four warp FMAs; every output sums in the same k order either way,
// so the results are the same bits.) Tiles are stored [k][16 vec4s] with the vec4 column XORed by k & 15: the
// transposing scalar stores spread over the banks (at most 2-way) without padding, and the whole workgroup memory is
// 16 KiB + 64 bytes.
// Ragged M and N are handled (zeros in, no stores out); K must be a multiple of 64 (one block = one tile row).
// Define DQ for double-quantised block scales; entry points `forward` and `backward`.
// SHORT: products with at most 16 rows (16 tokens or fewer; src/engine/kernels/nf4_matmul.ts picks it) run on 16-row
// blocks of 64 threads, as shaders/matmul.wgsl's SHORT does: a 64-row block at M = 16 spends three quarters of its
// FMAs on zero rows, which costs real time where the FMAs issued set the time (SwiftShader). The W slice and its
// dequantisation are the same per block (4 code words a thread instead of 1), the A tile is stored unswizzled
// ([k][4 vec4s]), and each output still sums fma by fma in k order from +0 over the same dequantised values: the same
// bits as the 64-row block. Both blocks run the same entry points; only BM, THREADS and the A tile's layout differ.

struct Params {
  M: u32, N: u32, K: u32, accumulate: u32,
  alpha: f32, _p0: f32, _p1: f32, _p2: f32,
}

@group(0) @binding(0) var<uniform> p: Params;
//#if BACKWARD
@group(0) @binding(1) var<storage, read> A: array<f32>;         // dY (M, N)
//#else
@group(0) @binding(1) var<storage, read> A: array<vec4<f32>>;   // X (M, K)
//#endif
@group(0) @binding(2) var<storage, read> codes: array<u32>;
//#if DQ
@group(0) @binding(3) var<storage, read> q8: array<u32>;
@group(0) @binding(4) var<storage, read> dqScale: array<f32>;
@group(0) @binding(5) var<storage, read> dqOffset: array<f32>;
@group(0) @binding(6) var<storage, read> dqTable: array<f32>;
@group(0) @binding(7) var<storage, read_write> C: array<f32>;
//#else
@group(0) @binding(3) var<storage, read> absmax: array<f32>;
@group(0) @binding(4) var<storage, read_write> C: array<f32>;
//#endif

//#include nf4_values

const BK = 32u;   // reduction step

//#if SHORT
const BM = 16u;       // output rows per block
const THREADS = 64u;
var<workgroup> As: array<vec4f, 128>;  // [BK][4]: A tile, 16 output rows, 4 per vec4 (unswizzled)
//#else
const BM = 64u;
const THREADS = 256u;
var<workgroup> As: array<vec4f, 512>;  // [BK][16]: A tile, 64 output rows, 4 per vec4 (swizzled: tileAt)
//#endif
// Code words of the step's W slice per thread: the slice is 256 words either way (64 rows × 4 words forward, 32 rows
// × 8 words backward).
const W_WORDS = 256u / THREADS;
var<workgroup> Bs: array<vec4f, 512>;  // [BK][16]: dequantised W tile, 64 output columns
var<workgroup> lut: array<f32, 16>;

// tileAt(k, c4): where the vec4 holding tile row k, elements 4·c4 .. 4·c4 + 3, sits: k·16 + (c4 ^ (k % 16)), for c4
// below 16. Written out at each use as k·16 + (c4 ^ (k % 16)) % 16 (the same value), with the other indices taken `%`
// or `>>` by constants rather than masked: the robustness pass then bounds every tile and table access from the
// indices' own ranges, where a function's parameters or a mask (`&`) would leave it a clamp per access
// (docs/performance.md, "Bounds clamps").

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

// Elements j0 .. j0 + 3 of a code word, dequantised (each value times the scale, as one element at a time would be).
fn deq4(word: u32, j0: u32, scale: f32) -> vec4f {
  let x = (word >> nibbleShift(j0)) % 16u;
  let y = (word >> nibbleShift(j0 + 1u)) % 16u;
  let z = (word >> nibbleShift(j0 + 2u)) % 16u;
  let w = (word >> nibbleShift(j0 + 3u)) % 16u;
  return vec4f(lut[x], lut[y], lut[z], lut[w]) * scale;
}

// The thread's 4×4 outputs as one vec4 per row (acc[i][j]: row 4·ty + i, column 4·tx + j).
struct Acc { r: array<vec4f, 4> }

// One 32-deep step of the block product from the shared tiles, for the thread owning rows 4·ty .. 4·ty + 3 and
// columns 4·tx .. 4·tx + 3. vec4 rows and constant indices throughout: compilers that keep dynamically indexed arrays
// in memory (SwiftShader's) ran the array form ≈ 4× slower. Each output still sums fma by fma in k order.
fn tileStep(acc: ptr<function, Acc>, ty: u32, tx: u32) {
  for (var kk = 0u; kk < BK; kk++) {
    // tileAt, written out: no clamp in this loop.
//#if SHORT
    let av = As[kk * 4u + ty % 4u];
//#else
    let av = As[kk * 16u + (ty ^ (kk % 16u)) % 16u];
//#endif
    let bv = Bs[kk * 16u + (tx ^ (kk % 16u)) % 16u];
    (*acc).r[0] = fma(vec4f(av.x), bv, (*acc).r[0]);
    (*acc).r[1] = fma(vec4f(av.y), bv, (*acc).r[1]);
    (*acc).r[2] = fma(vec4f(av.z), bv, (*acc).r[2]);
    (*acc).r[3] = fma(vec4f(av.w), bv, (*acc).r[3]);
  }
}

fn store(acc: Acc, row0: u32, col0: u32, ty: u32, tx: u32, ldc: u32) {
  for (var i = 0u; i < 4u; i++) {
    let r = row0 + 4u * ty + i;
    if (r >= p.M) { continue; }
    let row = acc.r[i];
    for (var j = 0u; j < 4u; j++) {
      let c = col0 + 4u * tx + j;
      if (c >= ldc) { continue; }
      let o = r * ldc + c;
      var v = p.alpha * row[j];
      if (p.accumulate != 0u) { v += C[o]; }
      C[o] = v;
    }
  }
}

//#if BACKWARD
// dX block (BM tokens × 64 input features = one NF4 block column). W slice: 32 rows n × 64 columns k = one block
// per row, 8 code words; thread li dequantises word li % 8 of rows li / 8 + (THREADS / 8)·t.
@compute @workgroup_size(THREADS)
fn backward(@builtin(workgroup_id) wg: vec3u, @builtin(local_invocation_index) li: u32) {
  let row0 = wg.y * BM;
  let col0 = wg.x * 64u;
  if (li < 16u) { lut[li] = NF4_VALUES[li]; }
  let kWords = p.K / 8u;
  let kBlocks = p.K / 64u;
  let ty = li / 16u;
  let tx = li % 16u;
  let wq = li % 8u;
  var acc = Acc();
  workgroupBarrier();
  for (var n0 = 0u; n0 < p.N; n0 += BK) {
    // dY slice: BM rows × 32 columns, 8 per thread; 32 neighbouring threads read one row.
    for (var t = 0u; t < 8u; t++) {
      let idx = li + t * THREADS;
      let m = idx >> 5u;
      let nn = idx % 32u;
      let gm = row0 + m;
      let gn = n0 + nn;
      var v = 0.0;
      if (gm < p.M && gn < p.N) { v = A[gm * p.N + gn]; }
//#if SHORT
      As[nn * 4u + (m >> 2u) % 4u][m % 4u] = v;
//#else
      As[nn * 16u + ((m >> 2u) ^ (nn % 16u)) % 16u][m % 4u] = v;
//#endif
    }
    for (var t = 0u; t < W_WORDS; t++) {
      let wn = (li >> 3u) + (THREADS / 8u) * t;
      let gn = n0 + wn;
      var word = 0u;
      var scale = 0.0;
      if (gn < p.N) {
        scale = blockScale(gn * kBlocks + wg.x);
        word = codes[gn * kWords + (col0 >> 3u) + wq];
      }
      // Columns 8·wq .. 8·wq + 7 of row wn: two vec4s.
      Bs[wn * 16u + ((2u * wq) ^ (wn % 16u)) % 16u] = deq4(word, 0u, scale);
      Bs[wn * 16u + ((2u * wq + 1u) ^ (wn % 16u)) % 16u] = deq4(word, 4u, scale);
    }
    workgroupBarrier();
    tileStep(&acc, ty, tx);
    workgroupBarrier();
  }
  store(acc, row0, col0, ty, tx, p.K);
}
//#else
// Y block (BM tokens × 64 output features). W slice: 64 rows n × 32 columns k = 4 code words per row; thread li
// dequantises word li % 4 of rows li / 4 + (THREADS / 4)·t, keeping those rows' block scales for the 64 k they cover.
@compute @workgroup_size(THREADS)
fn forward(@builtin(workgroup_id) wg: vec3u, @builtin(local_invocation_index) li: u32) {
  let row0 = wg.y * BM;
  let col0 = wg.x * 64u;
  if (li < 16u) { lut[li] = NF4_VALUES[li]; }
  let kWords = p.K / 8u;
  let kBlocks = p.K / 64u;
  let K4 = p.K / 4u;
  let ty = li / 16u;
  let tx = li % 16u;
  let wq = li % 4u;
  var scales = vec4f(0.0); // one per t below W_WORDS (≤ 4)
  var acc = Acc();
  workgroupBarrier();
  for (var k0 = 0u; k0 < p.K; k0 += BK) {
    // X slice: BM rows × 32 columns = BM · 8 vec4, 2 per thread; 8 neighbouring threads read one row's 128 bytes.
    for (var t = 0u; t < 2u; t++) {
      let idx = li + t * THREADS;
      let m = idx >> 3u;
      let kq = idx % 8u;
      let gm = row0 + m;
      var v = vec4<f32>(0.0);
      if (gm < p.M) { v = A[gm * K4 + (k0 >> 2u) + kq]; }
      let k = kq * 4u;
      let c4 = m >> 2u;
      let lane = m % 4u;
//#if SHORT
      As[k * 4u + c4 % 4u][lane] = v.x;
      As[(k + 1u) * 4u + c4 % 4u][lane] = v.y;
      As[(k + 2u) * 4u + c4 % 4u][lane] = v.z;
      As[(k + 3u) * 4u + c4 % 4u][lane] = v.w;
//#else
      As[k * 16u + (c4 ^ (k % 16u)) % 16u][lane] = v.x;
      As[(k + 1u) * 16u + (c4 ^ ((k + 1u) % 16u)) % 16u][lane] = v.y;
      As[(k + 2u) * 16u + (c4 ^ ((k + 2u) % 16u)) % 16u][lane] = v.z;
      As[(k + 3u) * 16u + (c4 ^ ((k + 3u) % 16u)) % 16u][lane] = v.w;
//#endif
    }
    for (var t = 0u; t < W_WORDS; t++) {
      let wn = (li >> 2u) + (THREADS / 4u) * t;
      let gn = col0 + wn;
      var word = 0u;
      if (gn < p.N) {
        if ((k0 & 63u) == 0u) { scales[t] = blockScale(gn * kBlocks + (k0 >> 6u)); }
        word = codes[gn * kWords + (k0 >> 3u) + wq];
      }
      let scale = scales[t];
      for (var j = 0u; j < 8u; j++) {
        let row = wq * 8u + j;
        Bs[row * 16u + ((wn >> 2u) ^ (row % 16u)) % 16u][wn % 4u] = lut[(word >> nibbleShift(j)) % 16u] * scale;
      }
    }
    workgroupBarrier();
    tileStep(&acc, ty, tx);
    workgroupBarrier();
  }
  store(acc, row0, col0, ty, tx, p.N);
}
//#endif
