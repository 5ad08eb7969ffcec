// Attention of new query rows against a key/value cache: generation with a KV cache (src/engine/mistral/decode.ts).
//
// Layout: q and out (nQ, nH·HD) hold the new rows, already rotated by RoPE, at positions past .. past+nQ-1. The caches
// kc and vc (maxT, nKV·HD) hold every position's k (after RoPE) and v, row j for position j; rows past .. past+nQ-1
// were written before this call, rows from past+nQ on are never read (they may hold anything). Query row i sees keys
// 0 .. past+i (causal; one sequence, no segments). Query head h reads kv head h / (nH/nKV) (GQA). Scale 1/sqrt(HD).
//
// One workgroup per (query row, head), WG threads. The keys stream through in tiles of WG: thread t scores key
// j0 + t against q (kept in workgroup memory), the tile's maximum updates the online softmax, and thread t < HD/4
// accumulates Σ p_j v_j for its four dims. Every thread reads the tile's scores in the same order, so they all agree
// on the softmax state bit for bit. Scores are in the log2 domain (q pre-scaled by log2(e)/sqrt(HD)) so exp2 serves.
// No lse is written: inference needs no backward.

struct Params {
  nQ: u32,
  past: u32,
  nH: u32,
  nKV: u32,
  scale2: f32, // log2(e) / sqrt(HD)
  _p0: u32,
  _p1: u32,
  _p2: u32,
}

@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read> q: array<vec4f>;
@group(0) @binding(2) var<storage, read> kc: array<vec4f>;
@group(0) @binding(3) var<storage, read> vc: array<vec4f>;
@group(0) @binding(4) var<storage, read_write> out: array<vec4f>;

override HD: u32 = 128; // head dim, a multiple of 4, at most 128 (so HD/4 ≤ WG)
const WG = 64u; // threads per workgroup = keys per tile
const NEG = -1e30; // "minus infinity" that keeps exp2 and max free of NaN

var<workgroup> sq: array<vec4f, 32>; // q · scale2, HD/4 vectors
var<workgroup> sp: array<f32, WG>; // the tile's scores, then its probabilities

@compute @workgroup_size(WG)
fn main(@builtin(workgroup_id) wg: vec3u, @builtin(local_invocation_index) t: u32) {
  let HD4 = HD / 4u;
  let i = wg.x;
  let h = wg.y;
  let kvh = h / (p.nH / p.nKV);
  let qOff = i * p.nH * HD4 + h * HD4;
  let kvStride4 = p.nKV * HD4;
  if (t < HD4) { sq[t] = q[qOff + t] * p.scale2; }
  workgroupBarrier();

  let nKeys = p.past + i + 1u; // uniform in the workgroup: the loop below may hold barriers
  var m = NEG;
  var l = 0.0;
  var acc = vec4f(0.0);
  for (var j0 = 0u; j0 < nKeys; j0 += WG) {
    let j = j0 + t;
    var s = NEG;
    if (j < nKeys) {
      let ko = j * kvStride4 + kvh * HD4;
      var d = vec4f(0.0);
      for (var c = 0u; c < HD4; c++) { d = fma(sq[c], kc[ko + c], d); }
      s = d.x + d.y + d.z + d.w;
    }
    sp[t] = s;
    workgroupBarrier();
    var mTile = NEG;
    for (var jj = 0u; jj < WG; jj++) { mTile = max(mTile, sp[jj]); }
    let mNew = max(m, mTile); // key j0 is always valid, so mNew is a real score
    let alpha = exp2(m - mNew);
    workgroupBarrier(); // every thread has read the scores before they turn into probabilities
    sp[t] = select(0.0, exp2(s - mNew), j < nKeys);
    workgroupBarrier();
    l *= alpha;
    acc *= alpha;
    m = mNew;
    let nj = min(WG, nKeys - j0);
    for (var jj = 0u; jj < nj; jj++) {
      let pj = sp[jj];
      l += pj;
      if (t < HD4) { acc = fma(vec4f(pj), vc[(j0 + jj) * kvStride4 + kvh * HD4 + t], acc); }
    }
    workgroupBarrier(); // before the next tile overwrites sp
  }
  if (t < HD4) { out[qOff + t] = acc / l; }
}
