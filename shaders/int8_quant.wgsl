// Symmetric int8 quantisation of an f32 matrix X (rows, cols) in groups of 64 consecutive values of a row, for the
// int8 products of shaders/int8_matmul.wgsl (the experimental int8 base path, docs/int8.md):
//   S[r, g]    = max |X[r, 64g .. 64g+63]| / 127                        (groups = ⌈cols / 64⌉ per row)
//   q[r, c]    = clamp(round(X[r, c] · (127 / max|group|)), -127, 127)   (round: half to even)
//   Q[r, w]    = q[r, 4w .. 4w+3] packed by pack4xI8 (first element in the low byte); a ragged tail packs zeros.
// Groups of 64, not whole rows: one outlier channel then coarsens 64 values, not the whole token (docs/int8.md
// measures both). One 64-thread workgroup per group: a max reduction in workgroup memory, then the packing. A group
// holding a NaN or an infinity gets S = +inf and zero codes, so every product that reads it comes out non-finite and
// the trainer's checks see it: the quantiser never turns a bad value into a plausible number.

struct Params {
  rows: u32, cols: u32, words: u32, gridX: u32,
  groups: u32, _p0: u32, _p1: u32, _p2: u32,
}

@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read> X: array<f32>;
@group(0) @binding(2) var<storage, read_write> Q: array<u32>;
@group(0) @binding(3) var<storage, read_write> S: array<f32>;

const F32_MAX = 0x1.fffffep+127f;
const INF_BITS = 0x7f800000u;

var<workgroup> partial: array<f32, 64>;
var<workgroup> codes: array<i32, 64>;

@compute @workgroup_size(64)
fn quantize_groups(@builtin(workgroup_id) wg: vec3u, @builtin(local_invocation_index) li: u32) {
  // Uniform across the workgroup: the whole group returns or none of it does.
  let id = wg.y * p.gridX + wg.x;
  if (id >= p.rows * p.groups) { return; }
  let row = id / p.groups;
  let g = id % p.groups;
  let c = g * 64u + li;
  var x = 0.0;
  if (c < p.cols) { x = X[row * p.cols + c]; }
  let a = abs(x);
  // `a <= F32_MAX` is false for NaN and infinity alike; a bad value is marked -1 (every real |x| is >= 0), and the
  // mark survives the reduction.
  partial[li] = select(-1.0, a, a <= F32_MAX);
  workgroupBarrier();
  for (var s = 32u; s > 0u; s >>= 1u) {
    if (li < s) {
      let u = partial[li];
      let v = partial[li + s];
      partial[li] = select(max(u, v), -1.0, min(u, v) < 0.0);
    }
    workgroupBarrier();
  }
  let amax = partial[0];
  let inv = select(0.0, 127.0 / amax, amax > 0.0);
  codes[li] = i32(clamp(round(x * inv), -127.0, 127.0));
  // +inf built at run time (a constant infinity is a shader-creation error).
  let inf = bitcast<f32>(INF_BITS | (p.rows & 0u));
  if (li == 0u) { S[id] = select(amax / 127.0, inf, amax < 0.0); }
  workgroupBarrier();
  let w = g * 16u + li;
  if (li < 16u && w < p.words) {
    Q[row * p.words + w] = pack4xI8(vec4i(codes[4u * li], codes[4u * li + 1u], codes[4u * li + 2u], codes[4u * li + 3u]));
  }
}
