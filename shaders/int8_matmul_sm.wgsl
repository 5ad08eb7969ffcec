// The int8 products of shaders/int8_matmul.wgsl on tensor cores: the same contract, the same bindings and defines
// (none: the plain int8 GEMM; NF4: the forward Y = X · deq(W)ᵀ; NF4 BACKWARD: the input gradient dX = dY · deq(W);
// DQ: double-quantised scales), with each 64-deep group's integer sums formed by subgroup matrices
// (`chromium_experimental_subgroup_matrix`, i8 × i8 → i32, 16 × 16 × 32) instead of dot4I8Packed. Experimental and
// never chosen by itself: GpuContext.int8Kernel, docs/int8.md.
//
// Same numbers, to the bit. A group's sum is an exact integer either way (|sum| ≤ 127² · 64 < 2^20), and the f32 part
// is the DP4A kernel's, in its order: per group, sum = fma(f32(isum), rowS[m] · colS[n], sum); at the end
// alpha · sum (+ C). The weight codes and the tile scales are formed by the same expressions. So any difference from
// the DP4A kernel's output is a bug; the context refuses this kernel when a probe shows one (int8-kernel-check.ts).
//
// Tiling: a 128-thread workgroup owns a 64 × 64 block of C, like the DP4A kernel's. Per group step:
//   1. A's 64 rows × 64 bytes and B's 64 columns × 64 bytes go to workgroup memory (As, Bs: 80-byte rows, padded so
//      that the 16 rows a matrix load reads do not all start in the same banks), with the group's scales;
//   2. four passes, one per 16-row stripe of the block: the stripe's four 16 × 16 tiles are shared among the
//      workgroup's subgroups (however many the adapter makes of 128 threads); each tile is two 16 × 16 × 32
//      multiply-accumulates into an i32 matrix, stored to Cs; then every thread scales 8 of the stripe's 1,024 sums
//      into its f32 accumulators (thread t: column t % 64, rows t / 64 + 2j of the stripe).
// The matrix operations' offsets and strides are in i32 words, the arrays' elements (below), and every one of them is
// a multiple of 16 bytes, the alignment cooperative-matrix loads and stores require.
// Workgroup memory: 5,120 + 5,120 + 4,096 + 512 (+ 320 for the NF4 forms) bytes, under WebGPU's 16 KiB minimum.
// The x size (128) must be a multiple of the adapter's largest subgroup (32 on NVIDIA, 64 on AMD): the context checks.

enable chromium_experimental_subgroup_matrix;
enable subgroups;

//#include int8_products

const WORDS = 16u;       // packed words per group of 64 int8 values
const ROW_WORDS = 20u;   // a tile row in words (64 bytes + 16 of padding): also the matrix loads' stride
// The matrix loads' and the store's offsets and strides count elements of the array they read or write (i32 words
// here), not matrix elements: an i8 matrix's bytes lie four to a word, little-endian, and 32 of them (a 16 × 32 tile
// row, or a 32 × 16 tile column) are 8 words. Dawn: Tint's SPIR-V writer indexes the array with the offset and hands
// the stride to OpCooperativeMatrixLoadKHR unchanged (docs/int8.md, "The tensor-core kernel").
const HALF_WORDS = 8u;   // 32 i8 values: one 32-deep half of a 64-deep group

var<workgroup> As: array<i32, 1280>;  // [64 rows of A][80 bytes]
var<workgroup> Bs: array<i32, 1280>;  // [64 columns of C][80 bytes]: B's 64 reduction values of each column
var<workgroup> Cs: array<i32, 1024>;  // one stripe's integer sums [16 rows][64 columns]

// The thread's f32 sums: stripe s, j-th row of the thread in it, at index 8 · s + j.
struct Sums { v: array<f32, 32> }

// A's 64 rows × 16 words of group `step` and their scales; rows past M and words past KW load 0.
fn loadA(row0: u32, step: u32, li: u32) {
  for (var t = 0u; t < 8u; t++) {
    let idx = li + t * 128u;
    let m = idx >> 4u;
    let w = idx & 15u;
    let gm = row0 + m;
    let gw = step * WORDS + w;
    var v = 0u;
    if (gm < p.M && gw < p.KW) { v = A[gm * p.KW + gw]; }
    As[m * ROW_WORDS + w] = bitcast<i32>(v);
  }
  if (li < 64u) {
    let gm = row0 + li;
    rowS[li] = select(0.0, sa[min(gm, p.M - 1u) * p.KG + step], gm < p.M);
  }
}

// The group's products into the sums, stripe by stripe (As, Bs, rowS and colS are in place and published).
fn groupStep(sums: ptr<function, Sums>, li: u32, sg: u32, ns: u32) {
  let c = li & 63u;
  let cs = colS[c];
  for (var s = 0u; s < 4u; s++) {
    for (var t = sg; t < 4u; t += ns) {
      var acc = subgroup_matrix_result<i32, 16, 16>();
      for (var h = 0u; h < 2u; h++) {
        let l = subgroupMatrixLoad<subgroup_matrix_left<i8, 32, 16>, row_major>(&As, s * 16u * ROW_WORDS + h * HALF_WORDS, ROW_WORDS);
        let r = subgroupMatrixLoad<subgroup_matrix_right<i8, 16, 32>, col_major>(&Bs, t * 16u * ROW_WORDS + h * HALF_WORDS, ROW_WORDS);
        acc = subgroupMatrixMultiplyAccumulate(l, r, acc);
      }
      subgroupMatrixStore<row_major>(&Cs, t * 16u, acc, 64u);  // i32 elements: words already
    }
    workgroupBarrier();
    for (var j = 0u; j < 8u; j++) {
      let r = (li >> 6u) + 2u * j;
      (*sums).v[8u * s + j] = fma(f32(Cs[r * 64u + c]), rowS[16u * s + r] * cs, (*sums).v[8u * s + j]);
    }
    workgroupBarrier();
  }
}

fn store(sums: Sums, row0: u32, col0: u32, li: u32, ldc: u32) {
  let c = col0 + (li & 63u);
  if (c >= ldc) { return; }
  for (var s = 0u; s < 4u; s++) {
    for (var j = 0u; j < 8u; j++) {
      let r = row0 + 16u * s + (li >> 6u) + 2u * j;
      if (r >= p.M) { continue; }
      let o = r * ldc + c;
      var v = p.alpha * sums.v[8u * s + j];
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
// dX block: 64 tokens × 64 input features (NF4 block column wg.x); the reduction runs over W's rows n, 64 per step.
// Column c of the block gets, in its 80-byte row of Bs, the codes of W rows n0 .. n0 + 63 at column col0 + c: word w
// packs rows 4w .. 4w + 3, as the DP4A kernel packs them.
@compute @workgroup_size(128)
fn main(@builtin(workgroup_id) wg: vec3u, @builtin(local_invocation_index) li: u32,
        @builtin(subgroup_id) sg: u32, @builtin(num_subgroups) ns: u32) {
  let row0 = wg.y * 64u;
  let col0 = wg.x * 64u;
  let kWords = p.K / 8u;
  let kBlocks = p.K / 64u;
  if (li < 16u) { lut[li] = NF4_VALUES[li]; }
  var sums = Sums();
  let steps = (p.N + 63u) / 64u;
  for (var step = 0u; step < steps; step++) {
    let n0 = step * 64u;
    loadA(row0, step, li);
    let tileScale = backwardTileScale(n0, wg.x, kBlocks, li);
    let inv = select(0.0, 127.0 / tileScale, tileScale > 0.0);
    // Two (word w, column quad cg) pairs per thread, as the DP4A kernel's 256 threads take one each.
    var packed: array<vec4i, 2>;
    for (var t = 0u; t < 2u; t++) {
      let idx = li + t * 128u;
      let w = idx >> 4u;
      let cg = idx & 15u;
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
      packed[t] = vec4i(bitcast<i32>(pack4xI8(q[0])), bitcast<i32>(pack4xI8(q[1])), bitcast<i32>(pack4xI8(q[2])), bitcast<i32>(pack4xI8(q[3])));
    }
    workgroupBarrier();
    for (var t = 0u; t < 2u; t++) {
      let idx = li + t * 128u;
      let w = idx >> 4u;
      let cg = idx & 15u;
      for (var j = 0u; j < 4u; j++) { Bs[(4u * cg + j) * ROW_WORDS + w] = packed[t][j]; }
    }
    if (li < 64u) { colS[li] = tileScale / 127.0; }
    workgroupBarrier();
    groupStep(&sums, li, sg, ns);
  }
  store(sums, row0, col0, li, p.K);
}
//#else
// Y block: 64 tokens × 64 output features. The reduction runs over k, one NF4 block (8 code words = 16 packed
// words) per row and step: thread li forms code words 4 · (li & 1) .. + 3 of output row li / 2.
@compute @workgroup_size(128)
fn main(@builtin(workgroup_id) wg: vec3u, @builtin(local_invocation_index) li: u32,
        @builtin(subgroup_id) sg: u32, @builtin(num_subgroups) ns: u32) {
  let row0 = wg.y * 64u;
  let col0 = wg.x * 64u;
  let kWords = p.K / 8u;
  let kBlocks = p.K / 64u;
  let sr = li >> 1u;
  let gn = col0 + sr;
  let cw0 = (li & 1u) * 4u;
  var sums = Sums();
  for (var step = 0u; step < kBlocks; step++) {
    loadA(row0, step, li);
    if ((li & 1u) == 0u) { colS[sr] = forwardScale(gn, step, kBlocks); }
    for (var c = 0u; c < 4u; c++) {
      var word = 0u;
      if (gn < p.N) { word = codes[gn * kWords + step * 8u + cw0 + c]; }
      for (var h = 0u; h < 2u; h++) {
        Bs[sr * ROW_WORDS + 2u * (cw0 + c) + h] = bitcast<i32>(forwardCodes(word, h));
      }
    }
    workgroupBarrier();
    groupStep(&sums, li, sg, ns);
  }
  store(sums, row0, col0, li, p.N);
}
//#endif
//#else
// The plain int8 GEMM: B packed (N rows, KW words) with its scales (N, KG).
@compute @workgroup_size(128)
fn main(@builtin(workgroup_id) wg: vec3u, @builtin(local_invocation_index) li: u32,
        @builtin(subgroup_id) sg: u32, @builtin(num_subgroups) ns: u32) {
  let row0 = wg.y * 64u;
  let col0 = wg.x * 64u;
  var sums = Sums();
  for (var step = 0u; step < p.KG; step++) {
    loadA(row0, step, li);
    for (var t = 0u; t < 8u; t++) {
      let idx = li + t * 128u;
      let n = idx >> 4u;
      let w = idx & 15u;
      let gn = col0 + n;
      let gw = step * WORDS + w;
      var v = 0u;
      if (gn < p.N && gw < p.KW) { v = B[gn * p.KW + gw]; }
      Bs[n * ROW_WORDS + w] = bitcast<i32>(v);
    }
    if (li < 64u) {
      let gn = col0 + li;
      colS[li] = select(0.0, sb[min(gn, p.N - 1u) * p.KG + step], gn < p.N);
    }
    workgroupBarrier();
    groupStep(&sums, li, sg, ns);
  }
  store(sums, row0, col0, li, p.N);
}
//#endif
