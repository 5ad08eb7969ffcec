// Int8 products with int32 accumulation (dot4I8Packed: four int8 multiply-adds per instruction, DP4A where the
// hardware has it), for the experimental int8 base path (docs/int8.md). Operands are symmetric int8 with one f32
// scale per row of the reduction, so the scales factor out of the sum and apply once, in the epilogue:
//   C[m, n] (+)= alpha · (sa[m] · sb[n]) · f32(Σ_k qa[m, k] · qb[n, k])
// The integer sum is exact (|Σ| ≤ 127² · K < 2^31 for K < 133,000), so any kernel that forms the same int8 operands
// (a DP4A loop here, tensor-core subgroup matrices elsewhere) produces the same numbers.
//
// A, the activation side, is always packed int8 from shaders/int8_quant.wgsl: (M rows, KW words), 4 values per u32,
// with its per-row scales sa. B comes in three forms, by define:
//   (none)        packed int8 (N rows, KW words) with scales sb: the plain int8 GEMM (tests, the raw-rate bench);
//   NF4           the frozen NF4 weight W [N, K] read as deq(W)ᵀ (the forward Y = X · deq(W)ᵀ): each output row n of
//                 W gets the scale s_n = max_k |deq(W)[n, k]| = the largest of its 64-block scales (the block's
//                 largest element is coded ±1 exactly), and qb = round(127 · NF4[code] · absmax / s_n);
//   NF4 BACKWARD  W read as deq(W) (the input gradient dX = dY · deq(W), reducing over W's N rows): an output column
//                 k gets S_b = max_n absmax[n, b] over its 64-column block b (an upper bound of the column's largest
//                 |deq(W)|, readable from the block scales alone), qb = round(127 · NF4[code] · absmax[n, b] / S_b).
// The weight codes are formed as each tile is loaded; no int8 copy of the weight exists. DQ: double-quantised scales.
//
// Tiling (the basic kernels' shape): a 16×16 workgroup owns a 64×64 block of C, 4×4 values per thread (rows and
// columns 16 apart); the reduction steps by 64 elements = 16 packed words, staged [word][65] in workgroup memory.
// Ragged M, N (and K for the plain GEMM) are handled: zeros in, no stores out. The NF4 forms need K % 64 == 0.

struct Params {
  M: u32, N: u32, K: u32, accumulate: u32,
  alpha: f32, KW: u32, _p0: u32, _p1: u32,
}

@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read> A: array<u32>;
@group(0) @binding(2) var<storage, read> sa: array<f32>;
//#if NF4
@group(0) @binding(3) var<storage, read> codes: array<u32>;
//#if DQ
@group(0) @binding(4) var<storage, read> q8: array<u32>;
@group(0) @binding(5) var<storage, read> dqScale: array<f32>;
@group(0) @binding(6) var<storage, read> dqOffset: array<f32>;
@group(0) @binding(7) var<storage, read> dqTable: array<f32>;
@group(0) @binding(8) var<storage, read_write> C: array<f32>;
//#else
@group(0) @binding(4) var<storage, read> absmax: array<f32>;
@group(0) @binding(5) var<storage, read_write> C: array<f32>;
//#endif
//#else
@group(0) @binding(3) var<storage, read> B: array<u32>;
@group(0) @binding(4) var<storage, read> sb: array<f32>;
@group(0) @binding(5) var<storage, read_write> C: array<f32>;
//#endif

const NF4_TABLE = array<f32, 16>(
  -0x1p0f, -0x1.647362p-1f, -0x1.0cd66p-1f, -0x1.94654p-2f, -0x1.23449ap-2f, -0x1.7a6a7ep-3f, -0x1.74f0e2p-4f, 0.0f,
  0x1.45f5fep-4f, 0x1.4995c6p-3f, 0x1.f809bap-3f, 0x1.5a0674p-2f, 0x1.c3497p-2f, 0x1.200f56p-1f, 0x1.722766p-1f, 0x1p0f);

const WORDS = 16u;  // packed words per reduction step (64 int8 values)
const S = 65u;      // padded row stride of the tiles

var<workgroup> As: array<u32, 1040>;  // [WORDS][S]: 64 rows of A
var<workgroup> Bs: array<u32, 1040>;  // [WORDS][S]: 64 output columns of B
var<workgroup> lut: array<f32, 16>;
var<workgroup> red: array<f32, 256>;   // scale reductions
var<workgroup> colScale: array<f32, 64>;  // sb of this block's 64 output columns

// The thread's 4×4 integer sums, one vec4 per row (acc.r[i][j]: row lid.y + 16i, column lid.x + 16j).
struct Acc { r: array<vec4i, 4> }

// A's 64 rows × 16 words of reduction step `step`, 4 words per thread; rows past M and words past KW load 0.
fn loadA(row0: u32, step: u32, li: u32) {
  for (var t = 0u; t < 4u; t++) {
    let idx = li + t * 256u;
    let m = idx >> 4u;
    let w = idx & 15u;
    let gm = row0 + m;
    let gw = step * WORDS + w;
    var v = 0u;
    if (gm < p.M && gw < p.KW) { v = A[gm * p.KW + gw]; }
    As[w * S + m] = v;
  }
}

fn tileStep(acc: ptr<function, Acc>, lid: vec3u) {
  for (var w = 0u; w < WORDS; w++) {
    let ar = w * S + lid.y;
    let br = w * S + lid.x;
    let b0 = Bs[br];
    let b1 = Bs[br + 16u];
    let b2 = Bs[br + 32u];
    let b3 = Bs[br + 48u];
    for (var i = 0u; i < 4u; i++) {
      let a = As[ar + 16u * i];
      (*acc).r[i] += vec4i(dot4I8Packed(a, b0), dot4I8Packed(a, b1), dot4I8Packed(a, b2), dot4I8Packed(a, b3));
    }
  }
}

// C = alpha · (sa[m] · sb[n]) · f32(acc) (+ C): the order the CPU reference (src/engine/reference/int8.ts) follows.
fn store(acc: Acc, row0: u32, col0: u32, lid: vec3u, ldc: u32) {
  for (var i = 0u; i < 4u; i++) {
    let r = row0 + lid.y + 16u * i;
    if (r >= p.M) { continue; }
    let s = sa[r];
    let row = acc.r[i];
    for (var j = 0u; j < 4u; j++) {
      let cl = lid.x + 16u * j;
      let c = col0 + cl;
      if (c >= ldc) { continue; }
      let o = r * ldc + c;
      var v = p.alpha * ((s * colScale[cl]) * f32(row[j]));
      if (p.accumulate != 0u) { v += C[o]; }
      C[o] = v;
    }
  }
}

//#if NF4
fn blockScale(b: u32) -> f32 {
//#if DQ
  let q = (q8[b >> 2u] >> ((b & 3u) * 8u)) & 255u;
  return dqTable[q] * dqScale[b >> 8u] + dqOffset[0];
//#else
  return absmax[b];
//#endif
}

// Where element j (0..7) of a code word sits: byte j/2, high nibble for even j (bitsandbytes' order).
fn nibbleShift(j: u32) -> u32 {
  return (j >> 1u) * 8u + select(0u, 4u, (j & 1u) == 0u);
}

fn code8(nib: u32, factor: f32) -> i32 {
  return i32(clamp(round(lut[nib] * factor), -127.0, 127.0));
}

fn tree(li: u32) {
  for (var s = 128u; s > 0u; s >>= 1u) {
    if (li < s) { red[li] = max(red[li], red[li + s]); }
    workgroupBarrier();
  }
}
//#endif

//#if NF4
//#if BACKWARD
// dX block: 64 tokens × 64 input features (= NF4 block column wg.x). Reduction over W's rows n, 64 per step: words
// w = 0..15 pack rows n0 + 4w .. n0 + 4w + 3 of one column.
@compute @workgroup_size(16, 16)
fn main(@builtin(workgroup_id) wg: vec3u, @builtin(local_invocation_id) lid: vec3u, @builtin(local_invocation_index) li: u32) {
  let row0 = wg.y * 64u;
  let col0 = wg.x * 64u;
  let kWords = p.K / 8u;
  let kBlocks = p.K / 64u;
  if (li < 16u) { lut[li] = NF4_TABLE[li]; }
  // S_b: the largest block scale down this block column.
  var m = 0.0;
  for (var n = li; n < p.N; n += 256u) { m = max(m, blockScale(n * kBlocks + wg.x)); }
  red[li] = m;
  workgroupBarrier();
  tree(li);
  let sCol = red[0];
  if (li < 64u) { colScale[li] = sCol / 127.0; }
  let inv = select(0.0, 127.0 / sCol, sCol > 0.0);
  // This thread's B work: word w of the step, columns 4·cg .. 4·cg + 3 (half `cg & 1` of a code word).
  let w = li >> 4u;
  let cg = li & 15u;
  var acc = Acc();
  let steps = (p.N + 63u) / 64u;
  for (var step = 0u; step < steps; step++) {
    loadA(row0, step, li);
    var q: array<vec4i, 4>;  // q[j]: column 4·cg + j, rows 4w .. 4w + 3
    for (var rr = 0u; rr < 4u; rr++) {
      let n = step * 64u + 4u * w + rr;
      if (n < p.N) {
        let word = codes[n * kWords + wg.x * 8u + (cg >> 1u)];
        let factor = blockScale(n * kBlocks + wg.x) * inv;
        for (var j = 0u; j < 4u; j++) {
          q[j][rr] = code8((word >> nibbleShift((cg & 1u) * 4u + j)) & 15u, factor);
        }
      }
    }
    for (var j = 0u; j < 4u; j++) { Bs[w * S + 4u * cg + j] = pack4xI8(q[j]); }
    workgroupBarrier();
    tileStep(&acc, lid);
    workgroupBarrier();
  }
  store(acc, row0, col0, lid, p.K);
}
//#else
// Y block: 64 tokens × 64 output features. Reduction over k, one NF4 block (8 code words = 16 packed words) per row
// and step.
@compute @workgroup_size(16, 16)
fn main(@builtin(workgroup_id) wg: vec3u, @builtin(local_invocation_id) lid: vec3u, @builtin(local_invocation_index) li: u32) {
  let row0 = wg.y * 64u;
  let col0 = wg.x * 64u;
  let kWords = p.K / 8u;
  let kBlocks = p.K / 64u;
  if (li < 16u) { lut[li] = NF4_TABLE[li]; }
  // s_n for the block's 64 rows of W: 4 threads per row, each over every 4th block scale.
  let sr = li >> 2u;
  let gn = col0 + sr;
  var m = 0.0;
  if (gn < p.N) {
    for (var b = li & 3u; b < kBlocks; b += 4u) { m = max(m, blockScale(gn * kBlocks + b)); }
  }
  red[li] = m;
  workgroupBarrier();
  if (li < 64u) { colScale[li] = max(max(red[4u * li], red[4u * li + 1u]), max(red[4u * li + 2u], red[4u * li + 3u])); }
  workgroupBarrier();
  let sRow = colScale[sr];
  let inv = select(0.0, 127.0 / sRow, sRow > 0.0);
  workgroupBarrier();
  if (li < 64u) { colScale[li] = colScale[li] / 127.0; }
  // This thread's B work: row sr of the block, code words 2·(li & 3) and the next (16 values, 4 packed words).
  let cw0 = (li & 3u) * 2u;
  var acc = Acc();
  for (var step = 0u; step < kBlocks; step++) {
    loadA(row0, step, li);
    var factor = 0.0;
    if (gn < p.N) { factor = blockScale(gn * kBlocks + step) * inv; }
    for (var c = 0u; c < 2u; c++) {
      var word = 0u;
      if (gn < p.N) { word = codes[gn * kWords + step * 8u + cw0 + c]; }
      for (var h = 0u; h < 2u; h++) {
        var q = vec4i(0);
        for (var j = 0u; j < 4u; j++) { q[j] = code8((word >> nibbleShift(h * 4u + j)) & 15u, factor); }
        Bs[(2u * (cw0 + c) + h) * S + sr] = pack4xI8(q);
      }
    }
    workgroupBarrier();
    tileStep(&acc, lid);
    workgroupBarrier();
  }
  store(acc, row0, col0, lid, p.N);
}
//#endif
//#else
// The plain int8 GEMM: B packed (N rows, KW words) with its scales.
@compute @workgroup_size(16, 16)
fn main(@builtin(workgroup_id) wg: vec3u, @builtin(local_invocation_id) lid: vec3u, @builtin(local_invocation_index) li: u32) {
  let row0 = wg.y * 64u;
  let col0 = wg.x * 64u;
  if (li < 64u) {
    let c = col0 + li;
    colScale[li] = select(0.0, sb[min(c, p.N - 1u)], c < p.N);
  }
  var acc = Acc();
  let steps = (p.KW + WORDS - 1u) / WORDS;
  for (var step = 0u; step < steps; step++) {
    loadA(row0, step, li);
    for (var t = 0u; t < 4u; t++) {
      let idx = li + t * 256u;
      let n = idx >> 4u;
      let w = idx & 15u;
      let gn = col0 + n;
      let gw = step * WORDS + w;
      var v = 0u;
      if (gn < p.N && gw < p.KW) { v = B[gn * p.KW + gw]; }
      Bs[w * S + n] = v;
    }
    workgroupBarrier();
    tileStep(&acc, lid);
    workgroupBarrier();
  }
  store(acc, row0, col0, lid, p.N);
}
//#endif
