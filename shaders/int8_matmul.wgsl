// Int8 products with int32 sums (dot4I8Packed: four int8 multiply-adds per instruction, DP4A where the hardware has
// it), for the experimental int8 base path (docs/int8.md). Both operands are symmetric int8 with one f32 scale per
// group of 64 consecutive values along the reduction, so each 64-deep step is an exact integer sum that is scaled
// once and added in f32:
//   C[m, n] (+)= alpha · Σ_g (sa[m, g] · sb[n, g]) · f32(Σ_{k in group g} qa[m, k] · qb[n, k])
// (|one group's sum| ≤ 127² · 64 < 2^20: exact, and exact in f32).
//
// A, the activation side, is packed int8 from shaders/int8_quant.wgsl: (M rows, KW words, 4 values per u32) and
// sa (M, ⌈K/64⌉). B, by define:
//   (none)        packed int8 (N rows, KW words) with sb (N, ⌈K/64⌉): the plain int8 GEMM (tests, the raw rate);
//   NF4           the frozen NF4 weight W [N, K] read as deq(W)ᵀ (the forward Y = X · deq(W)ᵀ): a group is one NF4
//                 block, so an element is NF4[code] · absmax[n, g] = round(127 · NF4[code]) · absmax / 127 up to the
//                 rounding of the 16 code values to the int8 grid: a fixed table (I8_TABLE), sb = absmax / 127;
//   NF4 BACKWARD  W read as deq(W) (the input gradient dX = dY · deq(W), reducing over W's N rows in groups of 64
//                 rows): within a 64-row × 64-column tile (one block column) the block scales vary by row, so the
//                 tile gets S = its largest block scale, qb = round(127 · NF4[code] · absmax[n] / S), sb = S / 127.
// The weight codes are formed as each tile is loaded; no int8 copy of the weight exists. DQ: double-quantised scales.
//
// Tiling: a 16×16 workgroup owns a 64×64 block of C, 4×4 values per thread: rows 4·ty .. 4·ty + 3 and columns
// 4·tx .. 4·tx + 3, so that each word step reads the thread's 4 rows of A and 4 columns of B as two 128-bit loads
// (a warp's A load is a broadcast, its B loads 16 consecutive vec4s) for 16 dot4I8Packed, where rows and columns 16
// apart took 8 scalar loads. The reduction steps by one group (16 packed words), staged [word][64 + 4 padding] in
// workgroup memory: the padding (one vec4 per word row) spreads the scalar, word-major stores of a tile load over the
// banks. Every sum is formed in the same order as before that change, so the outputs are the same bits.
// Ragged M, N (and K for the plain GEMM) are handled: zeros in, no stores out. The NF4 forms need K % 64 == 0.

//#include int8_products

const WORDS = 16u;  // packed words per reduction step (one group of 64 int8 values)
const S4 = 17u;     // row stride of the tiles in vec4s: 64 rows or columns + one vec4 of padding

var<workgroup> As: array<vec4u, 272>;  // [WORDS][S4]: 64 rows of A, 4 consecutive rows per vec4
var<workgroup> Bs: array<vec4u, 272>;  // [WORDS][S4]: 64 output columns of B

// Tile element (word w, row or column m) as a scalar.
fn tileIndex(w: u32, m: u32) -> vec2u {
  return vec2u(w * S4 + (m >> 2u), m & 3u);
}

// The thread's 4×4 values, one vec4 per row (r[i][j]: row 4·lid.y + i, column 4·lid.x + j).
struct Ints { r: array<vec4i, 4> }
struct Sums { r: array<vec4f, 4> }

// A's 64 rows × 16 words of reduction step `step` and their scales; rows past M and words past KW load 0.
fn loadA(row0: u32, step: u32, li: u32) {
  for (var t = 0u; t < 4u; t++) {
    let idx = li + t * 256u;
    let m = idx >> 4u;
    let w = idx & 15u;
    let gm = row0 + m;
    let gw = step * WORDS + w;
    var v = 0u;
    if (gm < p.M && gw < p.KW) { v = A[gm * p.KW + gw]; }
    let at = tileIndex(w, m);
    As[at.x][at.y] = v;
  }
  if (li < 64u) {
    let gm = row0 + li;
    rowS[li] = select(0.0, sa[min(gm, p.M - 1u) * p.KG + step], gm < p.M);
  }
}

// One step: the integer sums of this group, then scaled into the f32 sums.
fn tileStep(sums: ptr<function, Sums>, lid: vec3u) {
  var acc = Ints();
  for (var w = 0u; w < WORDS; w++) {
    let a4 = As[w * S4 + lid.y];
    let b = Bs[w * S4 + lid.x];
    for (var i = 0u; i < 4u; i++) {
      let a = a4[i];
      acc.r[i] += vec4i(dot4I8Packed(a, b.x), dot4I8Packed(a, b.y), dot4I8Packed(a, b.z), dot4I8Packed(a, b.w));
    }
  }
  let c4 = 4u * lid.x;
  let cs = vec4f(colS[c4], colS[c4 + 1u], colS[c4 + 2u], colS[c4 + 3u]);
  for (var i = 0u; i < 4u; i++) {
    (*sums).r[i] = fma(vec4f(acc.r[i]), rowS[4u * lid.y + i] * cs, (*sums).r[i]);
  }
}

fn store(sums: Sums, row0: u32, col0: u32, lid: vec3u, ldc: u32) {
  for (var i = 0u; i < 4u; i++) {
    let r = row0 + 4u * lid.y + i;
    if (r >= p.M) { continue; }
    let row = sums.r[i];
    for (var j = 0u; j < 4u; j++) {
      let c = col0 + 4u * lid.x + j;
      if (c >= ldc) { continue; }
      let o = r * ldc + c;
      var v = p.alpha * row[j];
      if (p.accumulate != 0u) { v += C[o]; }
      C[o] = v;
    }
  }
}

//#if NF4
//#include nf4_values
//#endif

//#if NF4
//#if BACKWARD
// dX block: 64 tokens × 64 input features (= NF4 block column wg.x). Reduction over W's rows n, 64 per step: word
// w = 0..15 of a column packs rows n0 + 4w .. n0 + 4w + 3.
@compute @workgroup_size(16, 16)
fn main(@builtin(workgroup_id) wg: vec3u, @builtin(local_invocation_id) lid: vec3u, @builtin(local_invocation_index) li: u32) {
  let row0 = wg.y * 64u;
  let col0 = wg.x * 64u;
  let kWords = p.K / 8u;
  let kBlocks = p.K / 64u;
  if (li < 16u) { lut[li] = NF4_VALUES[li]; }
  // This thread's B work: word w of the step, columns 4·cg .. 4·cg + 3 (half `cg & 1` of a code word).
  let w = li >> 4u;
  let cg = li & 15u;
  var sums = Sums();
  let steps = (p.N + 63u) / 64u;
  for (var step = 0u; step < steps; step++) {
    let n0 = step * 64u;
    loadA(row0, step, li);
    let tileScale = backwardTileScale(n0, wg.x, kBlocks, li);
    let inv = select(0.0, 127.0 / tileScale, tileScale > 0.0);
    var q: array<vec4i, 4>;  // q[j]: column 4·cg + j, rows 4w .. 4w + 3
    for (var rr = 0u; rr < 4u; rr++) {
      let n = n0 + 4u * w + rr;
      if (n < p.N) {
        let word = codes[n * kWords + wg.x * 8u + (cg >> 1u)];
        let factor = colS[4u * w + rr] * inv;
        for (var j = 0u; j < 4u; j++) {
          q[j][rr] = backwardCode(lut[nibble(word, (cg & 1u) * 4u + j)], factor);
        }
      }
    }
    workgroupBarrier();
    Bs[w * S4 + cg] = vec4u(pack4xI8(q[0]), pack4xI8(q[1]), pack4xI8(q[2]), pack4xI8(q[3]));
    if (li < 64u) { colS[li] = tileScale / 127.0; }
    workgroupBarrier();
    tileStep(&sums, lid);
    workgroupBarrier();
  }
  store(sums, row0, col0, lid, p.K);
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
  // This thread's B work: row sr of the block, code words 2·(li & 3) and the next (16 values, 4 packed words).
  let sr = li >> 2u;
  let gn = col0 + sr;
  let cw0 = (li & 3u) * 2u;
  var sums = Sums();
  for (var step = 0u; step < kBlocks; step++) {
    loadA(row0, step, li);
    if ((li & 3u) == 0u) { colS[sr] = forwardScale(gn, step, kBlocks); }
    for (var c = 0u; c < 2u; c++) {
      var word = 0u;
      if (gn < p.N) { word = codes[gn * kWords + step * 8u + cw0 + c]; }
      for (var h = 0u; h < 2u; h++) {
        let bt = tileIndex(2u * (cw0 + c) + h, sr);
        Bs[bt.x][bt.y] = forwardCodes(word, h);
      }
    }
    workgroupBarrier();
    tileStep(&sums, lid);
    workgroupBarrier();
  }
  store(sums, row0, col0, lid, p.N);
}
//#endif
//#else
// The plain int8 GEMM: B packed (N rows, KW words) with its scales (N, KG).
@compute @workgroup_size(16, 16)
fn main(@builtin(workgroup_id) wg: vec3u, @builtin(local_invocation_id) lid: vec3u, @builtin(local_invocation_index) li: u32) {
  let row0 = wg.y * 64u;
  let col0 = wg.x * 64u;
  var sums = Sums();
  for (var step = 0u; step < p.KG; step++) {
    loadA(row0, step, li);
    for (var t = 0u; t < 4u; t++) {
      let idx = li + t * 256u;
      let n = idx >> 4u;
      let w = idx & 15u;
      let gn = col0 + n;
      let gw = step * WORDS + w;
      var v = 0u;
      if (gn < p.N && gw < p.KW) { v = B[gn * p.KW + gw]; }
      let bt = tileIndex(w, n);
      Bs[bt.x][bt.y] = v;
    }
    if (li < 64u) {
      let gn = col0 + li;
      colS[li] = select(0.0, sb[min(gn, p.N - 1u) * p.KG + step], gn < p.N);
    }
    workgroupBarrier();
    tileStep(&sums, lid);
    workgroupBarrier();
  }
  store(sums, row0, col0, lid, p.N);
}
//#endif
