// NF4 quantisation (QLoRA / bitsandbytes layout) and dequantisation, bit-exact against
// src/engine/reference/nf4.ts. Layout of a quantised [rows, cols] weight (cols % 64 == 0):
//   codes  u32 words, 8 codes per word: the bitsandbytes byte stream read as little-endian u32, so byte b of the
//          stream holds element 2b in its HIGH nibble and element 2b+1 in its low nibble.
//   absmax f32 per block of 64 consecutive elements, or, double-quantised: q8 (u8 per block, 4 per u32 word),
//          scale (f32 per 256 blocks), offset (one f32), table (bnb's 256-entry signed dynamic map):
//          absmax[b] = fl(fl(table[q8[b]] · scale[b / 256]) + offset).
// Entry points: quantize (f32 | bf16 | f16 source, defines SRC_BF16 / SRC_F16), absmax_partials + absmax_mean (the
// double-quant offset, a fixed-order fp32 reduction), dq_quantize (the 8-bit codes of absmax − offset), dequantize
// (define DQ for double-quantised scales).
// Rounding: x / absmax is the correctly rounded fp32 quotient, and the code is the number of fp32 midpoints below
// it, exactly as the reference does. WGSL's `/` is only accurate to 2.5 ulp, so wherever that could matter (a
// quotient near a midpoint) the quotient is recomputed exactly with integer long division.
// Magnitudes are compared on bit patterns, so no step depends on a driver's denormal handling.

struct Params {
  n: u32,      // words (quantize, dequantize), absmax values (partials, mean), blocks (dq_quantize)
  gridX: u32,  // workgroups along x of a 2-D grid
  aux: u32,    // absmax_mean: number of partial sums
  _p: u32,
}

@group(0) @binding(0) var<uniform> p: Params;

// The NF4 values (the nf4_values partial) and the fp32 midpoints between neighbours, as exact hexadecimal floats.
//#include nf4_values
const NF4_T = array<f32, 15>(
  -0x1.b239bp-1f, -0x1.38a4ep-1f, -0x1.d709p-2f, -0x1.5bd4ecp-2f, -0x1.e079d8p-3f, -0x1.1a7178p-3f, -0x1.74f0e2p-5f,
  0x1.45f5fep-5f, 0x1.ec90c4p-4f, 0x1.a0cfcp-3f, 0x1.2b05a8p-2f, 0x1.8ea7f2p-2f, 0x1.00da08p-1f, 0x1.491b5ep-1f,
  0x1.b913b4p-1f);

fn wgIndex(wg: vec3u) -> u32 {
  return wg.x + wg.y * p.gridX;
}

// Significand (with the implicit bit, normalised to [2^23, 2^24)) and unbiased exponent of a positive finite f32
// given by its bits, subnormals included: value = sig · 2^(exp - 23).
fn unpackPos(b: u32) -> vec2i {
  let e = i32(b >> 23u);
  let m = b & 0x7fffffu;
  if (e == 0) {
    let sh = countLeadingZeros(m) - 8u;
    return vec2i(i32(m << sh), -126 - i32(sh));
  }
  return vec2i(i32(m | 0x800000u), e - 127);
}

// Bits of the correctly rounded fp32 quotient x / a of two non-negative finite fp32 (bits given), a > 0; quotients
// under 2^-126 become +0 (they select the same code as zero) and overflow is not handled (never needed here).
fn divBits(xb: u32, ab: u32) -> u32 {
  if (xb == 0u || ab == 0u) { return 0u; }
  let x = unpackPos(xb);
  let a = unpackPos(ab);
  var r = u32(x.x);
  let sa = u32(a.x);
  var e = x.y - a.y;
  if (r < sa) { r = r << 1u; e = e - 1; }
  // sa <= r < 2·sa: 25 quotient bits (24 significand bits and a guard bit), the remainder is the sticky bit.
  var q = 0u;
  for (var i = 0u; i < 25u; i++) {
    q = q << 1u;
    if (r >= sa) { r = r - sa; q = q | 1u; }
    r = r << 1u;
  }
  var sig = q >> 1u;
  if ((q & 1u) == 1u && (r != 0u || (sig & 1u) == 1u)) { sig = sig + 1u; }
  if (sig == 0x1000000u) { sig = 0x800000u; e = e + 1; }
  let be = e + 127;
  if (be <= 0) { return 0u; }
  return (u32(be) << 23u) | (sig & 0x7fffffu);
}

// fl(x / a) with the sign of x, for |x| and a given as bits.
fn signedQuotient(xBits: u32, aBits: u32) -> f32 {
  let q = bitcast<f32>(divBits(xBits & 0x7fffffffu, aBits));
  return select(q, -q, (xBits & 0x80000000u) != 0u);
}

fn nf4Code(y: f32) -> u32 {
  var c = 0u;
  for (var i = 0u; i < 15u; i++) { c += select(0u, 1u, y > NF4_T[i]); }
  return c;
}

// The NF4 code of x / a (bits of x, and of a = absmax >= |x|). The hardware quotient (within a few ulp) decides
// unless it lies within 2^-16 (relative) of a threshold, or an operand is subnormal: then the exact quotient does.
fn nf4CodeOf(xb: u32, ab: u32) -> u32 {
  let xm = xb & 0x7fffffffu;
  if (ab >= 0x00800000u && ab < 0x7e800000u && (xm == 0u || xm >= 0x00800000u)) {
    let y = bitcast<f32>(xb) / bitcast<f32>(ab);
    let c = nf4Code(y);
    let lo = select(NF4_T[max(c, 1u) - 1u], -2.0, c == 0u);
    let hi = select(NF4_T[min(c, 14u)], 2.0, c == 15u);
    if (abs(y - lo) > abs(lo) * 0x1p-16f && abs(hi - y) > abs(hi) * 0x1p-16f) { return c; }
  }
  return nf4Code(signedQuotient(xb, ab));
}

// Where element j (0..7) of a word sits: byte j/2, high nibble for even j.
fn nibbleShift(j: u32) -> u32 {
  return (j >> 1u) * 8u + select(0u, 4u, (j & 1u) == 0u);
}

// f16ToF32Bits: f16 bits → the bits of the same value as f32 (exact, subnormals included).
//#include half

// ---------------------------------------------------------------------------------------------------------------
// quantize: one thread per output word (8 elements), 256 threads = 32 blocks per workgroup.

@group(0) @binding(1) var<storage, read> qSrc: array<u32>;            // f32 bits, or two 16-bit values per word
@group(0) @binding(2) var<storage, read_write> qCodes: array<u32>;
@group(0) @binding(3) var<storage, read_write> qAbsmax: array<f32>;

var<workgroup> red: array<u32, 256>;

fn loadBits(word: u32, j: u32) -> u32 {
//#if SRC_BF16
  let w = qSrc[word * 4u + (j >> 1u)];
  return select(w << 16u, w & 0xffff0000u, (j & 1u) == 1u);
//#else
//#if SRC_F16
  let w = qSrc[word * 4u + (j >> 1u)];
  return f16ToF32Bits(select(w & 0xffffu, w >> 16u, (j & 1u) == 1u));
//#else
  return qSrc[word * 8u + j];
//#endif
//#endif
}

@compute @workgroup_size(256)
fn quantize(@builtin(workgroup_id) wg: vec3u, @builtin(local_invocation_index) li: u32) {
  let word = wgIndex(wg) * 256u + li;
  let valid = word < p.n;
  var v: array<u32, 8>;
  var m = 0u;
  for (var j = 0u; j < 8u; j++) {
    var b = 0u;
    if (valid) { b = loadBits(word, j); }
    v[j] = b;
    m = max(m, b & 0x7fffffffu);
  }
  red[li] = m;
  workgroupBarrier();
  let base = li & ~7u;
  var a = 0u;
  for (var t = 0u; t < 8u; t++) { a = max(a, red[base + t]); }
  if (!valid) { return; }
  if ((li & 7u) == 0u) { qAbsmax[word >> 3u] = bitcast<f32>(a); }
  var packed = 0u;
  for (var j = 0u; j < 8u; j++) {
    packed = packed | (nf4CodeOf(v[j], a) << nibbleShift(j));
  }
  qCodes[word] = packed;
}

// ---------------------------------------------------------------------------------------------------------------
// Double quantisation. absmax_partials: fp32 tree sum of each 256 consecutive absmax values.

@group(0) @binding(1) var<storage, read> sAbsmax: array<f32>;
@group(0) @binding(2) var<storage, read_write> sPartials: array<f32>;

var<workgroup> fsum: array<f32, 256>;

fn treeSum(li: u32) {
  for (var s = 128u; s > 0u; s = s >> 1u) {
    if (li < s) { fsum[li] = fsum[li] + fsum[li + s]; }
    workgroupBarrier();
  }
}

@compute @workgroup_size(256)
fn absmax_partials(@builtin(workgroup_id) wg: vec3u, @builtin(local_invocation_index) li: u32) {
  let g = wgIndex(wg);
  let i = g * 256u + li;
  var v = 0.0;
  if (i < p.n) { v = sAbsmax[i]; }
  fsum[li] = v;
  workgroupBarrier();
  treeSum(li);
  if (li == 0u) { sPartials[g] = fsum[0]; }
}

// absmax_mean: one workgroup; thread t adds partials t, t+256, … in order, then a tree; offset = fl(sum / n).
@group(0) @binding(1) var<storage, read> mPartials: array<f32>;
@group(0) @binding(2) var<storage, read_write> mOffset: array<f32>;

@compute @workgroup_size(256)
fn absmax_mean(@builtin(local_invocation_index) li: u32) {
  var acc = 0.0;
  for (var i = li; i < p.aux; i += 256u) { acc = acc + mPartials[i]; }
  fsum[li] = acc;
  workgroupBarrier();
  treeSum(li);
  if (li == 0u) {
    mOffset[0] = bitcast<f32>(divBits(bitcast<u32>(fsum[0]), bitcast<u32>(f32(p.n))));
  }
}

// dq_quantize: one workgroup per 256 blocks: v = absmax − offset, scale = max |v|, q8 = #thresholds below fl(v / scale).
@group(0) @binding(1) var<storage, read> dAbsmax: array<f32>;
@group(0) @binding(2) var<storage, read> dOffset: array<f32>;
@group(0) @binding(3) var<storage, read> dThresholds: array<f32>;   // 255 midpoints of the dynamic map
@group(0) @binding(4) var<storage, read_write> dCodes: array<u32>;  // 4 codes per word, little-endian bytes
@group(0) @binding(5) var<storage, read_write> dScale: array<f32>;

var<workgroup> bytes: array<u32, 256>;

@compute @workgroup_size(256)
fn dq_quantize(@builtin(workgroup_id) wg: vec3u, @builtin(local_invocation_index) li: u32) {
  let g = wgIndex(wg);
  let b = g * 256u + li;
  let valid = b < p.n;
  var vb = 0u;
  if (valid) { vb = bitcast<u32>(dAbsmax[b] - dOffset[0]); }
  red[li] = vb & 0x7fffffffu;
  workgroupBarrier();
  for (var s = 128u; s > 0u; s = s >> 1u) {
    if (li < s) { red[li] = max(red[li], red[li + s]); }
    workgroupBarrier();
  }
  let sb = red[0];
  if (li == 0u) { dScale[g] = bitcast<f32>(sb); }
  let y = signedQuotient(vb, sb);
  var lo = 0u;
  var hi = 255u;
  for (var it = 0u; it < 8u; it++) {
    if (lo < hi) {
      let mid = (lo + hi) >> 1u;
      if (y > dThresholds[mid]) { lo = mid + 1u; } else { hi = mid; }
    }
  }
  bytes[li] = lo;
  workgroupBarrier();
  let w = g * 64u + li;
  if (li < 64u && w * 4u < p.n) {
    dCodes[w] = bytes[li * 4u] | (bytes[li * 4u + 1u] << 8u) | (bytes[li * 4u + 2u] << 16u) | (bytes[li * 4u + 3u] << 24u);
  }
}

// ---------------------------------------------------------------------------------------------------------------
// dequantize: one thread per word (8 elements), 256 threads = 32 blocks per workgroup.

@group(0) @binding(1) var<storage, read> xCodes: array<u32>;
//#if DQ
@group(0) @binding(2) var<storage, read> xQ8: array<u32>;
@group(0) @binding(3) var<storage, read> xScale: array<f32>;
@group(0) @binding(4) var<storage, read> xOffset: array<f32>;
@group(0) @binding(5) var<storage, read> xTable: array<f32>;
@group(0) @binding(6) var<storage, read_write> xOut: array<f32>;
//#else
@group(0) @binding(2) var<storage, read> xAbsmax: array<f32>;
@group(0) @binding(3) var<storage, read_write> xOut: array<f32>;
//#endif

var<workgroup> blockScale: array<f32, 32>;

@compute @workgroup_size(256)
fn dequantize(@builtin(workgroup_id) wg: vec3u, @builtin(local_invocation_index) li: u32) {
  let wgi = wgIndex(wg);
  let word = wgi * 256u + li;
  let valid = word < p.n;
//#if DQ
  // table·scale is rounded on its own (stored, then read back after the barrier) before the offset is added, so
  // no compiler can fuse the two into one fma: fl(fl(table[q]·scale) + offset), as bitsandbytes computes it.
  let b = wgi * 32u + li;
  if (li < 32u && b * 8u < p.n) {
    let q = (xQ8[b >> 2u] >> ((b & 3u) * 8u)) & 255u;
    blockScale[li] = xTable[q] * xScale[b >> 8u];
  }
  workgroupBarrier();
  if (!valid) { return; }
  let a = blockScale[li >> 3u] + xOffset[0];
//#else
  if (!valid) { return; }
  let a = xAbsmax[word >> 3u];
//#endif
  let packed = xCodes[word];
  for (var j = 0u; j < 8u; j++) {
    xOut[word * 8u + j] = NF4_VALUES[(packed >> nibbleShift(j)) & 15u] * a;
  }
}
