// Causal grouped-query attention, FlashAttention-2 style with register tiles (forward), in f32.
//
// Same contract as `forward` in attention.wgsl (same buffers, same lse), so attention.wgsl's backward consumes it:
// q (BT, nH·HD), k and v (BT, nKV·HD), seg (BT), out (BT, nH·HD), lse (BT, nH) in nats. Query i of row b sees key j
// of row b iff j ≤ i, seg[b·T+j] == seg[b·T+i] != 0. A padding query (seg 0) gets zeros and lse 0.
//
// Why this shape (docs/performance.md, "Attention"): the older kernel splits each query row over threads and sums
// partial dots in workgroup memory for every key, and each query head loads its own K/V. Here:
// - one workgroup of 128 threads owns QP positions × the G query heads of one KV head = R ≤ 32 query rows (row r is
//   position r / G, head r % G of the group), so every K/V tile is loaded once for the G heads that share it;
// - S = Q·Kᵀ is register-tiled: thread (rg, kg) owns a 4-row × 4-key fragment of the 32 × 64 score tile, and the
//   head dim is streamed through workgroup memory in chunks of 16 (Q and K both transposed there, so one step is two
//   vec4 loads and 16 FMAs). Q is not kept resident: 32 rows × 128 dims would fill the whole 16 KiB by itself;
// - the softmax is online in the log2 domain (scores × log2(e)/√HD, exp2); the row max is reduced through workgroup
//   memory (16 partials per row); P goes to workgroup memory transposed, [key][row], so that P·V reads one vec4 of
//   4 rows per key; each thread accumulates 4 rows × ⌈HD/16⌉ dims (dims dg, dg+16, …: conflict-free V reads), and
//   the row sums come from the same P reads (every thread of a row group sums in the same order: they agree);
// - key tiles above the diagonal are never visited; a tile whose keys no row may see is skipped; the mask (causal
//   and segment) is applied only on tiles that need it — the diagonal tiles, segment-boundary tiles, padding — which
//   the workgroup decides together from the tile's segment ids (tile-stamped flags, then workgroupUniformLoad);
// - the longest query blocks (the last) run first, so causal work leaves no tail.
// Workgroup memory: 15,496 bytes whatever HD (P 8 KiB, one 6.5 KiB region reused by the Q/K chunks, the row-max
// partials and the V chunks, row statistics and segment ids), under WebGPU's default 16 KiB limit. No subgroups.

struct Params {
  B: u32,
  T: u32,
  nH: u32,
  nKV: u32,
  scale2: f32, // log2(e) / sqrt(HD)
}

@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read> q: array<vec4f>;
@group(0) @binding(2) var<storage, read> k: array<vec4f>;
@group(0) @binding(3) var<storage, read> v: array<vec4f>;
@group(0) @binding(4) var<storage, read> seg: array<u32>;
@group(0) @binding(5) var<storage, read_write> outp: array<f32>;
@group(0) @binding(6) var<storage, read_write> lseOut: array<f32>;

override HD: u32 = 128; // head dim, a multiple of 4, at most 128
override G: u32 = 4; // query heads per KV head, at most 32
override QP: u32 = 8; // query positions per workgroup: QP·G ≤ 32
override VK: u32 = 8; // keys per V chunk: a power of two ≤ 64 with VK·HD ≤ 1664

const R = 32u; // query rows per workgroup (rows ≥ QP·G are idle)
const BK = 64u; // keys per tile
const DK = 16u; // head dims per Q/K chunk
const QS = 36u; // row stride of the transposed Q chunk (padded: fewer bank conflicts on the transposing store)
const KS = 68u; // row stride of the transposed K chunk
const KOFF = 576u; // DK·QS: where the K chunk starts in `U`
const LN2 = 0.6931471805599453;
const NEG = -1e30; // "minus infinity" that keeps exp2 and max free of NaN

// One region used in turn by: the Q chunk [DK][QS] and K chunk [DK][KS] (phase 1), the row-max partials [16][R]
// (phase 2), a V chunk [VK][HD] (phase 3). 1664 f32 = 6.5 KiB.
var<workgroup> U: array<f32, 1664>;
var<workgroup> PT: array<vec4f, 512>; // P transposed: [BK][R/4], vec4 = 4 consecutive rows
var<workgroup> mS: array<f32, R>; // running row max (log2 domain)
var<workgroup> aS: array<f32, R>; // this tile's rescale factor exp2(m_old − m_new)
var<workgroup> segT: array<u32, BK>; // the tile's key segment ids (0 beyond T)
var<workgroup> segQ: array<u32, 32>; // the block's query segment ids (0 beyond T)
var<workgroup> visFlag: atomic<u32>; // = tile when some row may see some key of the tile
var<workgroup> maskFlag: atomic<u32>; // = tile when some key of the tile needs the mask

@compute @workgroup_size(128)
fn forward(@builtin(workgroup_id) wg: vec3u, @builtin(local_invocation_index) t: u32) {
  let HD4 = HD / 4u;
  let ND = (HD + 15u) / 16u; // dims per thread in P·V
  let b = wg.z;
  let kvh = wg.y;
  let nBlocks = (p.T + QP - 1u) / QP;
  let q0 = (nBlocks - 1u - wg.x) * QP; // longest blocks first
  let qStride4 = p.nH * HD4;
  let kStride4 = p.nKV * HD4;

  // Thread roles: phase 1/2 fragment (4 rows rg·4.., 4 keys kg·4..), phase 3 (4 rows rg·4.., dims dg, dg+16, …).
  let rg = t / 16u;
  let kg = t % 16u;
  let dg = kg;

  if (t < 32u) {
    var s = 0u;
    if (t < QP && q0 + t < p.T) { s = seg[b * p.T + q0 + t]; }
    segQ[t] = s;
    mS[t] = NEG;
  }
  workgroupBarrier();
  // The block's one segment when every position of it is real and shares it, else 0: only then can a tile be
  // unmasked (a key strictly below every query and in that segment is visible to all rows).
  var blockSeg = segQ[0];
  for (var pp = 1u; pp < QP; pp++) {
    if (segQ[pp] != blockSeg) { blockSeg = 0u; }
  }
  // Segment ids of this thread's 4 rows and their positions (rows past QP·G or T never see anything).
  var rowSeg: array<u32, 4>;
  var rowPos: array<u32, 4>;
  for (var i = 0u; i < 4u; i++) {
    let r = rg * 4u + i;
    rowPos[i] = q0 + r / G;
    rowSeg[i] = select(0u, segQ[min(r / G, 31u)], r < QP * G);
  }

  var acc: array<vec4f, 8>; // [dim c] over the thread's 4 rows
  for (var c = 0u; c < 8u; c++) { acc[c] = vec4f(0.0); }
  var lsum = vec4f(0.0);

  let kEnd = min(p.T, q0 + QP); // keys ≥ kEnd are above the diagonal of every row
  var tile = 0u;
  for (var k0 = 0u; k0 < kEnd; k0 += BK) {
    tile++;
    // --- Which tiles: key t of the tile looks at the block's positions.
    if (t < BK) {
      let kj = k0 + t;
      var sk = 0u;
      if (kj < p.T) { sk = seg[b * p.T + kj]; }
      segT[t] = sk;
      var vis = false;
      for (var pp = 0u; pp < QP; pp++) {
        vis = vis || (segQ[pp] != 0u && segQ[pp] == sk && kj <= q0 + pp);
      }
      if (vis) { atomicMax(&visFlag, tile); }
      if (!(blockSeg != 0u && sk == blockSeg && kj <= q0)) { atomicMax(&maskFlag, tile); }
    }
    if (workgroupUniformLoad(&visFlag) != tile) { continue; } // also the barrier before shared memory is reused
    let masked = workgroupUniformLoad(&maskFlag) == tile;

    // --- Phase 1: S = Q·Kᵀ for the 32 × 64 tile, head dims in chunks of DK.
    var sf: array<vec4f, 4>; // [row i] over keys kg·4..kg·4+3
    for (var i = 0u; i < 4u; i++) { sf[i] = vec4f(0.0); }
    for (var d0 = 0u; d0 < HD; d0 += DK) {
      {
        // Q chunk: thread t loads row t/4, dims d0 + (t%4)·4 .. +3.
        let r = t / 4u;
        let dq = t % 4u;
        let d = d0 + dq * 4u;
        let pos = q0 + r / G;
        var x = vec4f(0.0);
        if (r < QP * G && pos < p.T && d < HD) {
          x = q[(b * p.T + pos) * qStride4 + (kvh * G + r % G) * HD4 + d / 4u];
        }
        for (var e = 0u; e < 4u; e++) { U[(dq * 4u + e) * QS + r] = x[e]; }
      }
      for (var n = 0u; n < 2u; n++) {
        // K chunk: 64 keys × 16 dims = 256 vec4, two per thread.
        let idx = t + n * 128u;
        let kk = idx / 4u;
        let dq = idx % 4u;
        let d = d0 + dq * 4u;
        var x = vec4f(0.0);
        if (k0 + kk < p.T && d < HD) { x = k[(b * p.T + k0 + kk) * kStride4 + kvh * HD4 + d / 4u]; }
        for (var e = 0u; e < 4u; e++) { U[KOFF + (dq * 4u + e) * KS + kk] = x[e]; }
      }
      workgroupBarrier();
      for (var d = 0u; d < DK; d++) {
        let qo = d * QS + rg * 4u;
        let ko = KOFF + d * KS + kg * 4u;
        let kv = vec4f(U[ko], U[ko + 1u], U[ko + 2u], U[ko + 3u]);
        sf[0] = fma(vec4f(U[qo]), kv, sf[0]);
        sf[1] = fma(vec4f(U[qo + 1u]), kv, sf[1]);
        sf[2] = fma(vec4f(U[qo + 2u]), kv, sf[2]);
        sf[3] = fma(vec4f(U[qo + 3u]), kv, sf[3]);
      }
      workgroupBarrier();
    }

    // --- Phase 2: scale, mask where needed, row max over the tile, new running max, P.
    var mx = vec4f(NEG);
    for (var i = 0u; i < 4u; i++) {
      sf[i] *= p.scale2;
      if (masked) {
        for (var j = 0u; j < 4u; j++) {
          let kk = kg * 4u + j;
          let ok = rowSeg[i] != 0u && segT[kk] == rowSeg[i] && k0 + kk <= rowPos[i];
          sf[i][j] = select(NEG, sf[i][j], ok);
        }
      }
      mx[i] = max(max(sf[i].x, sf[i].y), max(sf[i].z, sf[i].w));
    }
    for (var i = 0u; i < 4u; i++) { U[kg * R + rg * 4u + i] = mx[i]; }
    workgroupBarrier();
    if (t < R) {
      var m = NEG;
      for (var g = 0u; g < 16u; g++) { m = max(m, U[g * R + t]); }
      let mOld = mS[t];
      let mNew = max(mOld, m);
      aS[t] = exp2(mOld - mNew);
      mS[t] = mNew;
    }
    workgroupBarrier();
    let mRow = vec4f(mS[rg * 4u], mS[rg * 4u + 1u], mS[rg * 4u + 2u], mS[rg * 4u + 3u]);
    for (var j = 0u; j < 4u; j++) {
      let s = vec4f(sf[0][j], sf[1][j], sf[2][j], sf[3][j]);
      // A masked score gives 0 even while its row's max is still NEG (exp2(NEG − NEG) would be 1).
      PT[(kg * 4u + j) * (R / 4u) + rg] = select(vec4f(0.0), exp2(s - mRow), s > vec4f(0.5 * NEG));
    }
    let alpha = vec4f(aS[rg * 4u], aS[rg * 4u + 1u], aS[rg * 4u + 2u], aS[rg * 4u + 3u]);
    lsum *= alpha;
    for (var c = 0u; c < ND; c++) { acc[c] *= alpha; }

    // --- Phase 3: O += P·V, V streamed in chunks of VK keys through `U`.
    for (var c0 = 0u; c0 < BK; c0 += VK) {
      workgroupBarrier(); // P written / the previous chunk consumed
      for (var idx = t; idx < VK * HD4; idx += 128u) {
        let kk = idx / HD4;
        let d4 = idx % HD4;
        var x = vec4f(0.0);
        if (k0 + c0 + kk < p.T) { x = v[(b * p.T + k0 + c0 + kk) * kStride4 + kvh * HD4 + d4]; }
        let o = kk * HD + d4 * 4u;
        U[o] = x.x;
        U[o + 1u] = x.y;
        U[o + 2u] = x.z;
        U[o + 3u] = x.w;
      }
      workgroupBarrier();
      for (var kk = 0u; kk < VK; kk++) {
        let pv = PT[(c0 + kk) * (R / 4u) + rg];
        lsum += pv;
        for (var c = 0u; c < ND; c++) {
          let d = dg + 16u * c;
          if (d < HD) { acc[c] = fma(pv, vec4f(U[kk * HD + d]), acc[c]); }
        }
      }
    }
    // No barrier here: the next tile touches `U` only after its flag barrier, and `PT` after several more.
  }

  // --- Epilogue: out = acc / l; lse = (m + log2 l)·ln 2 in nats; padding rows and rows that saw nothing get zeros.
  for (var i = 0u; i < 4u; i++) {
    let r = rg * 4u + i;
    let pos = rowPos[i];
    if (r >= QP * G || pos >= p.T) { continue; }
    let live = rowSeg[i] != 0u && lsum[i] > 0.0;
    let inv = select(0.0, 1.0 / lsum[i], live);
    let tok = b * p.T + pos;
    let h = kvh * G + r % G;
    let o = (tok * p.nH + h) * HD;
    for (var c = 0u; c < ND; c++) {
      let d = dg + 16u * c;
      if (d < HD) { outp[o + d] = acc[c][i] * inv; }
    }
    if (dg == 0u) { lseOut[tok * p.nH + h] = select(0.0, (mS[r] + log2(lsum[i])) * LN2, live); }
  }
}
