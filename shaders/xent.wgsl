// Cross-entropy over a chunk of logits rows (the lm_head product is done by the matmul family around it).
//
// rows:     one workgroup per row r of logits (R, V): lse = logsumexp(row) (an online max/sum per thread, then a tree),
//           rowLoss[row0 + r] = lse − logit[target] (0 for target −100 or out of [0, V)), lseOut[row0 + r] = lse, and,
//           with WRITE_GRAD, the row is overwritten in place by dlogits = (softmax − onehot(target)) · gradScale (zeros
//           for an ignored target).
// loss_sum: one workgroup adds lossScale · Σ rowLoss[0..n) into lossSum[0], summing in a fixed order (per-thread
//           strided sums, then a tree) so the result is the same on every run.
// loss_sum_weighted: the same with a weight per token, lossScale · Σ weight[i] · rowLoss[i]: a validation pass that
//           packs several validation batches into one set of rows gives each token its own batch's 1 / (counted
//           tokens), so one pass adds what a pass per batch added (src/run/trainer.ts evaluate).
// gather_rows:  rowsOut[i, :] = rowsIn[rowIndex[row0 + i], :] for the chunk's n rows: the rows of h whose token has a
//           loss (a prompt's tokens, padding and each sequence's last token have none), so the lm_head runs on those
//           alone (src/engine/kernels/xent.ts, HeadRows).
// scatter_rows: its backward, rowsOut[rowIndex[row0 + i], :] = rowsIn[i, :]: each counted row's dh back to its place
//           (the caller zeroes the rows without a loss, whose gradient is 0).

struct Params {
  V: u32,
  row0: u32,
  n: u32,
  _p0: u32,
  gradScale: f32,
  lossScale: f32,
  _p1: f32,
  _p2: f32,
}

@group(0) @binding(0) var<uniform> p: Params;

override WRITE_GRAD: bool = true;

const WG = 256u;
const IGNORE = -100;

@group(0) @binding(1) var<storage, read_write> logits: array<f32>; // (R, V)
@group(0) @binding(2) var<storage, read> targets: array<i32>; // (BT)
@group(0) @binding(3) var<storage, read_write> rowLoss: array<f32>; // (BT)
@group(0) @binding(4) var<storage, read_write> lseOut: array<f32>; // (BT)

var<workgroup> redM: array<f32, WG>;
var<workgroup> redS: array<f32, WG>;

@compute @workgroup_size(WG)
fn rows(@builtin(workgroup_id) wg: vec3u, @builtin(local_invocation_index) t: u32) {
  let r = wg.x;
  let base = r * p.V;
  let tgt = targets[p.row0 + r];
  let counted = tgt != IGNORE && tgt >= 0 && u32(tgt) < p.V;
  var xt = 0.0;
  if (counted) { xt = logits[base + u32(tgt)]; } // read before anyone overwrites the row

  var m = -3.4e38;
  var s = 0.0;
  for (var v = t; v < p.V; v += WG) {
    let x = logits[base + v];
    if (x > m) {
      s = s * exp(m - x) + 1.0;
      m = x;
    } else {
      s += exp(x - m);
    }
  }
  redM[t] = m;
  redS[t] = s;
  for (var w = WG / 2u; w > 0u; w >>= 1u) {
    workgroupBarrier();
    if (t < w) {
      let m1 = redM[t];
      let m2 = redM[t + w];
      let mm = max(m1, m2);
      redS[t] = redS[t] * exp(m1 - mm) + redS[t + w] * exp(m2 - mm);
      redM[t] = mm;
    }
  }
  workgroupBarrier();
  storageBarrier();
  let lse = redM[0] + log(redS[0]);
  if (t == 0u) {
    lseOut[p.row0 + r] = lse;
    rowLoss[p.row0 + r] = select(0.0, lse - xt, counted);
  }
  if (WRITE_GRAD) {
    for (var v = t; v < p.V; v += WG) {
      var g = 0.0;
      if (counted) {
        g = exp(logits[base + v] - lse);
        if (v == u32(tgt)) { g -= 1.0; }
        g *= p.gradScale;
      }
      logits[base + v] = g;
    }
  }
}

@group(0) @binding(1) var<storage, read> sumIn: array<f32>; // (n)
@group(0) @binding(2) var<storage, read_write> lossSum: array<f32>; // (1)

@compute @workgroup_size(WG)
fn loss_sum(@builtin(local_invocation_index) t: u32) {
  var s = 0.0;
  for (var i = t; i < p.n; i += WG) { s += sumIn[i]; }
  redS[t] = s;
  for (var w = WG / 2u; w > 0u; w >>= 1u) {
    workgroupBarrier();
    if (t < w) { redS[t] += redS[t + w]; }
  }
  if (t == 0u) { lossSum[0] += redS[0] * p.lossScale; }
}

@group(0) @binding(3) var<storage, read> weightIn: array<f32>; // (n)

@compute @workgroup_size(WG)
fn loss_sum_weighted(@builtin(local_invocation_index) t: u32) {
  var s = 0.0;
  for (var i = t; i < p.n; i += WG) { s += sumIn[i] * weightIn[i]; }
  redS[t] = s;
  for (var w = WG / 2u; w > 0u; w >>= 1u) {
    workgroupBarrier();
    if (t < w) { redS[t] += redS[t + w]; }
  }
  if (t == 0u) { lossSum[0] += redS[0] * p.lossScale; }
}

// Row copies by index (gather_rows, scatter_rows): p.V holds the row width, p.row0 the chunk's first entry of rowIndex,
// p.n its rows; one workgroup a row, its threads striding over the width.
@group(0) @binding(1) var<storage, read> rowsIn: array<f32>;
@group(0) @binding(2) var<storage, read> rowIndex: array<u32>;
@group(0) @binding(3) var<storage, read_write> rowsOut: array<f32>;

@compute @workgroup_size(WG)
fn gather_rows(@builtin(workgroup_id) wg: vec3u, @builtin(local_invocation_index) t: u32) {
  let i = wg.x;
  if (i >= p.n) { return; }
  let srcAt = rowIndex[p.row0 + i] * p.V;
  let dstAt = i * p.V;
  for (var c = t; c < p.V; c += WG) { rowsOut[dstAt + c] = rowsIn[srcAt + c]; }
}

@compute @workgroup_size(WG)
fn scatter_rows(@builtin(workgroup_id) wg: vec3u, @builtin(local_invocation_index) t: u32) {
  let i = wg.x;
  if (i >= p.n) { return; }
  let srcAt = i * p.V;
  let dstAt = rowIndex[p.row0 + i] * p.V;
  for (var c = t; c < p.V; c += WG) { rowsOut[dstAt + c] = rowsIn[srcAt + c]; }
}
