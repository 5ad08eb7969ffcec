// The optimizer, entirely on the GPU: global gradient-norm clipping (torch.nn.utils.clip_grad_norm_) and AdamW
// (torch.optim.AdamW, decoupled weight decay), with no CPU round trip per step. Three variants, by define:
//
// SUMSQ   partials[slot0 + g] = Σ grad[offset + i]² over chunk g of 4096 elements (256 threads × 16, strided so
//         neighbouring threads read neighbouring addresses), one slot per workgroup; bindings (partials, grad).
// CLIP    one workgroup: norm = sqrt(Σ partials[0 .. slots)); scale = min(1, maxNorm / (norm + 1e-6)), or 1 when
//         maxNorm ≤ 0; writes out = [scale, norm]; bindings (out, partials).
// (none)  one AdamW step per element, bindings (param, m, v, grad[, scale with SCALE]):
//           g = grad · scale[0]
//           param *= 1 − lr·wd
//           m = lerp(m, g, 1 − β1)            (torch's exp_avg.lerp_)
//           v = β2·v + (1 − β2)·g²
//           param −= (lr / (1 − β1^t)) · m / (sqrt(v) / sqrt(1 − β2^t) + eps)
//         The scalar factors are computed on the CPU in float64 (src/engine/kernels/adamw.ts) and passed as f32.
// Every summation order is fixed, so the norm is deterministic. All 1-D launches use a 2-D grid.

const WG = 256u;
const PER_THREAD = 16u;
const CHUNK = 4096u; // WG · PER_THREAD

var<workgroup> red: array<f32, 256>;

fn workgroupSum(v: f32, li: u32) -> f32 {
  red[li] = v;
  workgroupBarrier();
  for (var s = WG / 2u; s > 0u; s >>= 1u) {
    if (li < s) { red[li] += red[li + s]; }
    workgroupBarrier();
  }
  return red[0];
}

//#if SUMSQ
struct Params {
  n: u32,      // elements of this gradient
  offset: u32, // first element in the bound buffer
  slot0: u32,  // first partial slot of this gradient
  _p0: u32,
}
@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read_write> partials: array<f32>;
@group(0) @binding(2) var<storage, read> grad: array<f32>;

@compute @workgroup_size(256)
fn main(@builtin(workgroup_id) wg: vec3u, @builtin(num_workgroups) nwg: vec3u, @builtin(local_invocation_index) li: u32) {
  let chunk = wg.y * nwg.x + wg.x;
  if (chunk * CHUNK >= p.n) { return; } // uniform per workgroup
  var s = 0.0;
  for (var k = 0u; k < PER_THREAD; k++) {
    let i = chunk * CHUNK + k * WG + li;
    if (i < p.n) {
      let g = grad[p.offset + i];
      s += g * g;
    }
  }
  let total = workgroupSum(s, li);
  if (li == 0u) { partials[p.slot0 + chunk] = total; }
}
//#endif

//#if CLIP
struct Params {
  slots: u32,
  maxNorm: f32,
  _p0: u32,
  _p1: u32,
}
@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read_write> out: array<f32>;
@group(0) @binding(2) var<storage, read> partials: array<f32>;

@compute @workgroup_size(256)
fn main(@builtin(local_invocation_index) li: u32) {
  var s = 0.0;
  for (var i = li; i < p.slots; i += WG) { s += partials[i]; }
  let total = workgroupSum(s, li);
  if (li == 0u) {
    let norm = sqrt(total);
    var scale = 1.0;
    if (p.maxNorm > 0.0) { scale = min(1.0, p.maxNorm / (norm + 1e-6)); }
    out[0] = scale;
    out[1] = norm;
  }
}
//#endif

//#if !SUMSQ
//#if !CLIP
struct Params {
  n: u32,
  decay: f32,       // 1 − lr·weight_decay
  oneMinusB1: f32,  // 1 − β1
  beta2: f32,
  oneMinusB2: f32,  // 1 − β2
  stepSize: f32,    // lr / (1 − β1^t)
  bc2Sqrt: f32,     // sqrt(1 − β2^t)
  eps: f32,
}
@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read_write> param: array<f32>;
@group(0) @binding(2) var<storage, read_write> m: array<f32>;
@group(0) @binding(3) var<storage, read_write> v: array<f32>;
@group(0) @binding(4) var<storage, read> grad: array<f32>;
//#if SCALE
@group(0) @binding(5) var<storage, read> clip: array<f32>;
//#endif

@compute @workgroup_size(256)
fn main(@builtin(workgroup_id) wg: vec3u, @builtin(num_workgroups) nwg: vec3u, @builtin(local_invocation_id) lid: vec3u) {
  let i = (wg.y * nwg.x + wg.x) * WG + lid.x;
  if (i >= p.n) { return; }
//#if SCALE
  let g = grad[i] * clip[0];
//#else
  let g = grad[i];
//#endif
  let w = param[i] * p.decay;
  let mi = m[i] + p.oneMinusB1 * (g - m[i]);
  let vi = p.beta2 * v[i] + p.oneMinusB2 * (g * g);
  m[i] = mi;
  v[i] = vi;
  let denom = sqrt(vi) / p.bc2Sqrt + p.eps;
  param[i] = w - p.stepSize * (mi / denom);
}
//#endif
//#endif
