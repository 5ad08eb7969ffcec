// Symmetric per-row int8 quantisation of an f32 matrix X (rows, cols), for the int8 products of
// shaders/int8_matmul.wgsl (the experimental int8 base path, docs/int8.md):
//   S[r]       = max_c |X[r, c]| / 127
//   q[r, c]    = clamp(round(X[r, c] · (127 / max_c |X[r, c]|)), -127, 127)      (round: half to even)
//   Q[r, w]    = q[r, 4w .. 4w+3] packed by pack4xI8 (first element in the low byte); a ragged tail packs zeros.
// One 256-thread workgroup per row: a max reduction in workgroup memory, then the packing. A row holding a NaN or
// an infinity gets S = +inf and all-zero codes, so every product that reads it comes out NaN (inf · 0) and the
// trainer's non-finite checks see it: the quantiser never turns a bad value into a plausible number.

struct Params {
  rows: u32, cols: u32, words: u32, gridX: u32,
}

@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read> X: array<f32>;
@group(0) @binding(2) var<storage, read_write> Q: array<u32>;
@group(0) @binding(3) var<storage, read_write> S: array<f32>;

const WG = 256u;
const F32_MAX = 0x1.fffffep+127f;
const INF_BITS = 0x7f800000u;

var<workgroup> partial: array<f32, WG>;

@compute @workgroup_size(256)
fn quantize_rows(@builtin(workgroup_id) wg: vec3u, @builtin(local_invocation_index) li: u32) {
  // Uniform across the workgroup: the whole group returns or none of it does.
  let row = wg.y * p.gridX + wg.x;
  if (row >= p.rows) { return; }
  let base = row * p.cols;
  var m = 0.0;
  var bad = false;
  for (var c = li; c < p.cols; c += WG) {
    let a = abs(X[base + c]);
    // `a <= F32_MAX` is false for NaN and infinity alike.
    bad = bad || !(a <= F32_MAX);
    m = max(m, a);
  }
  // A bad row is marked -1 (every real partial is >= 0) and the mark survives the reduction.
  partial[li] = select(m, -1.0, bad);
  workgroupBarrier();
  for (var s = WG / 2u; s > 0u; s >>= 1u) {
    if (li < s) {
      let a = partial[li];
      let b = partial[li + s];
      partial[li] = select(max(a, b), -1.0, min(a, b) < 0.0);
    }
    workgroupBarrier();
  }
  let amax = partial[0];
  let inv = select(0.0, 127.0 / amax, amax > 0.0);
  // +inf built at run time (a constant infinity is a shader-creation error).
  let inf = bitcast<f32>(INF_BITS | (p.rows & 0u));
  if (li == 0u) { S[row] = select(amax / 127.0, inf, amax < 0.0); }
  for (var w = li; w < p.words; w += WG) {
    var q = vec4i(0);
    for (var j = 0u; j < 4u; j++) {
      let c = 4u * w + j;
      if (c < p.cols) { q[j] = i32(clamp(round(X[base + c] * inv), -127.0, 127.0)); }
    }
    Q[row * p.words + w] = pack4xI8(q);
  }
}
