// A partial (`//#include int8_products`): what both int8 kernels share (int8_matmul.wgsl: dot4I8Packed;
// int8_matmul_sm.wgsl: subgroup matrices), so that they read the same buffers and form the same int8 weight codes
// and scales, hence the same bits: the uniforms, the bindings by define (none: the plain GEMM's packed B and its
// scales; NF4: the weight's codes and block scales, DQ: double-quantised), and under NF4 how codes and scales are read.

struct Params {
  M: u32, N: u32, K: u32, accumulate: u32,
  alpha: f32, KW: u32, KG: u32, _p0: u32,
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

var<workgroup> rowS: array<f32, 64>;  // a reduction step's scales of A's 64 rows
var<workgroup> colS: array<f32, 64>;  // and of B's 64 columns

//#if NF4
// round(127 · NF4[c]): the 16 NF4 values on the int8 grid (the largest rounding, 0.47 of a step, is at −0.1848).
const I8_TABLE = array<i32, 16>(-127, -88, -67, -50, -36, -23, -12, 0, 10, 20, 31, 43, 56, 71, 92, 127);

var<workgroup> lut: array<f32, 16>;  // NF4_VALUES, for the input gradient's codes
var<workgroup> red: array<f32, 64>;  // the input gradient's tile scale reduction

// Where element j (0..7) of a code word sits: byte j/2, high nibble for even j (bitsandbytes' order).
fn nibble(word: u32, j: u32) -> u32 {
  return (word >> ((j >> 1u) * 8u + select(0u, 4u, (j & 1u) == 0u))) & 15u;
}

// The scale of NF4 block b (its absmax).
fn blockScale(b: u32) -> f32 {
//#if DQ
  let q = (q8[b >> 2u] >> ((b & 3u) * 8u)) & 255u;
  return dqTable[q] * dqScale[b >> 8u] + dqOffset[0];
//#else
  return absmax[b];
//#endif
}

// The input gradient's tile scale S over W rows n0 .. n0 + 63 of block column `col`: the largest of their block
// scales. Meanwhile colS holds each row's own scale, which the codes need. Barriers inside: every thread calls it.
fn backwardTileScale(n0: u32, col: u32, kBlocks: u32, li: u32) -> f32 {
  var bs = 0.0;
  if (li < 64u && n0 + li < p.N) { bs = blockScale((n0 + li) * kBlocks + col); }
  if (li < 64u) {
    red[li] = bs;
    colS[li] = bs;
  }
  workgroupBarrier();
  for (var s = 32u; s > 0u; s >>= 1u) {
    if (li < s) { red[li] = max(red[li], red[li + s]); }
    workgroupBarrier();
  }
  return red[0];
}

// The forward's scale of output row gn's group `step` (sb = absmax / 127); 0 past the weight's rows.
fn forwardScale(gn: u32, step: u32, kBlocks: u32) -> f32 {
  return select(0.0, blockScale(min(gn, p.N - 1u) * kBlocks + step) / 127.0, gn < p.N);
}

// The forward's int8 codes of half h (values 4h .. 4h + 3) of an NF4 code word, packed 4 to a u32.
fn forwardCodes(word: u32, h: u32) -> u32 {
  var q = vec4i(0);
  for (var j = 0u; j < 4u; j++) { q[j] = I8_TABLE[nibble(word, h * 4u + j)]; }
  return pack4xI8(q);
}

// An input-gradient weight code: NF4 value × its block scale / the tile's largest (factor = absmax[n] · 127 / S).
fn backwardCode(value: f32, factor: f32) -> i32 {
  return i32(clamp(round(value * factor), -127.0, 127.0));
}
//#endif
