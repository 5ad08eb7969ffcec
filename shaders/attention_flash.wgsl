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
// - the softmax is online in the log2 domain (scores × log2(e)/√HD, exp2); a row's tile max over the 16 threads that
//   hold it is reduced by subgroup shuffles where the adapter has subgroups (SUBGROUPS) and its shuffles pair the
//   row group's threads (tried at the start), else (and for what one subgroup does not span) through workgroup
//   memory; every thread then keeps its 4 rows' running max in registers; P goes to workgroup memory transposed,
//   [key][row], so that P·V reads one vec4 of 4 rows per key; each thread accumulates 4 rows × up to 2 quads of 4
//   adjacent dims (quads dg, dg+16), reading each V quad as one vec4 for 16 FMAs (`accumulateQuads`), and the row sums
//   come from the same P reads (every thread of a row group sums in the same order: they agree);
// - key tiles above the diagonal are never visited; a tile whose keys no row may see is skipped; the mask (causal
//   and segment) is applied only on tiles that need it — the diagonal tiles, segment-boundary tiles, padding — which
//   the workgroup decides together from the tile's segment ids (tile-stamped flags, then workgroupUniformLoad);
// - the longest query blocks (the last) run first, so causal work leaves no tail.
// Workgroup memory: 15,244 bytes whatever HD (P 8 KiB, one 6.5 KiB region reused by the Q/K chunks, the row-max
// partials and the V chunks, segment ids, flags), under WebGPU's default 16 KiB limit.
//
// SUBGROUPS (define; the device must have the `subgroups` feature): the row max's shuffles. The result is the same to
// the bit either way (a max is exact, whatever the order), which test/gpu/attention_flash_subgroups.test.ts checks on
// the real subgroups of SwiftShader and on emulated ones 2 to 32 wide.

//#if SUBGROUPS
enable subgroups;
//#endif

struct Params {
  B: u32,
  T: u32,
  nH: u32,
  nKV: u32,
  scale2: f32, // log2(e) / sqrt(HD)
  scale: f32, // 1 / sqrt(HD) (the backward's dq and dk)
  // The backward's KV heads run in chunks when dS goes through memory (DS_SPILL): this dispatch's first KV head, and
  // the KV heads its dS scratch holds. 0 and nKV otherwise.
  kv0: u32,
  chunkKV: u32,
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
const LOG2E = 1.4426950408889634;
const NEG = -1e30; // "minus infinity" that keeps exp2 and max free of NaN

// One region used in turn by: the Q chunk [DK][QS] and K chunk [DK][KS] (phase 1), the row-max partials [16][R]
// (phase 2), a V chunk [VK][HD] (phase 3). 1664 f32 = 6.5 KiB, held as vec4s: where four consecutive floats are used
// together (a fragment's 4 keys and 4 rows in phase 1, a thread's 4 row maxima, a V row's 4 dims) they move as one
// 128-bit access with one index clamp instead of four; the transposing stores of single floats go through uSet.
// Every offset read or written as a vec4 is a multiple of 4 (QS, KS, KOFF, R and HD are).
var<workgroup> U: array<vec4f, 416>;

fn uSet(i: u32, x: f32) {
  U[i >> 2u][i & 3u] = x;
}

// One key's (or query's) term of a product with P or dS, for one thread: `w` holds the P or dS values of its 4 rows,
// x0 and x1 that key's quads dg and dg + 16 of the V/K/dO/Q chunk row (`quads`; dims 4·quad .. 4·quad + 3, used only
// where below HD); acc[4c + e] holds dim 4·(dg + 16c) + e of the 4 rows. A quad is one 128-bit read for 16 FMAs
// (reading dims one by one took a shared load per 4 FMAs, more than an NVIDIA SM issues at its FMA rate); every
// element still adds its terms one fma at a time in key order, so the sums are the same bits. The reads happen in
// the caller's loop, where the robustness pass can prove their offsets in range (a function's parameters have no
// known range, so a read here would be clamped for every 4 FMAs: docs/performance.md, "Bounds clamps").
fn accumulateQuads(acc: ptr<function, array<vec4f, 8>>, w: vec4f, x0: vec4f, x1: vec4f, dg: u32) {
  if (dg < HD / 4u) {
    (*acc)[0] = fma(w, vec4f(x0.x), (*acc)[0]);
    (*acc)[1] = fma(w, vec4f(x0.y), (*acc)[1]);
    (*acc)[2] = fma(w, vec4f(x0.z), (*acc)[2]);
    (*acc)[3] = fma(w, vec4f(x0.w), (*acc)[3]);
  }
  if (dg + 16u < HD / 4u) {
    (*acc)[4] = fma(w, vec4f(x1.x), (*acc)[4]);
    (*acc)[5] = fma(w, vec4f(x1.y), (*acc)[5]);
    (*acc)[6] = fma(w, vec4f(x1.z), (*acc)[6]);
    (*acc)[7] = fma(w, vec4f(x1.w), (*acc)[7]);
  }
}

var<workgroup> PT: array<vec4f, 512>; // P transposed: [BK][R/4], vec4 = 4 consecutive rows
var<workgroup> sgParts: atomic<u32>; // SUBGROUPS: 16 / the widest shuffle every thread of the workgroup may use
var<workgroup> segT: array<u32, BK>; // the tile's key segment ids (0 beyond T)
var<workgroup> segQ: array<u32, 32>; // the block's query segment ids (0 beyond T)
var<workgroup> visFlag: atomic<u32>; // = tile when some row may see some key of the tile
var<workgroup> maskFlag: atomic<u32>; // = tile when some key of the tile needs the mask

@compute @workgroup_size(128)
//#if SUBGROUPS
fn forward(@builtin(workgroup_id) wg: vec3u, @builtin(local_invocation_index) t: u32, @builtin(subgroup_size) sgSize: u32) {
//#else
fn forward(@builtin(workgroup_id) wg: vec3u, @builtin(local_invocation_index) t: u32) {
//#endif
  let HD4 = HD / 4u;
  let b = wg.z;
  let kvh = wg.y;
  let nBlocks = (p.T + QP - 1u) / QP;
  let q0 = (nBlocks - 1u - wg.x) * QP; // longest blocks first
  let qStride4 = p.nH * HD4;
  let kStride4 = p.nKV * HD4;

  // Thread roles: phase 1/2 fragment (4 rows rg·4.., 4 keys kg·4..), phase 3 (4 rows rg·4.., dim quads dg, dg+16).
  let rg = t / 16u;
  let kg = t % 16u;
  let dg = kg;

  if (t < 32u) {
    var s = 0u;
    if (t < QP && q0 + t < p.T) { s = seg[b * p.T + q0 + t]; }
    segQ[t] = s;
  }
//#if SUBGROUPS
  // The row max shuffles with masks below min(subgroup size, 16) and needs each such shuffle to reach thread t ^ mask,
  // a thread of the same row group (t = rg·16 + kg). That holds where subgroups are aligned runs of invocations with
  // lanes in invocation order, which WGSL does not promise: so it is tried here, mask by mask, and the workgroup agrees
  // on the narrowest width any of its threads found (1: no shuffles).
  let sgWidth = min(sgSize, 16u);
  var sgOk = (sgSize & (sgSize - 1u)) == 0u;
  for (var m = 1u; m < sgWidth; m <<= 1u) {
    let back = subgroupShuffleXor(t, m); // every lane takes part (not behind the && below)
    sgOk = sgOk && back == (t ^ m);
  }
  atomicMax(&sgParts, 16u / select(1u, sgWidth, sgOk));
  let W = 16u / workgroupUniformLoad(&sgParts); // lanes of a row group inside one subgroup; also the barrier
//#else
  let W = 1u;
  workgroupBarrier();
//#endif
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

  var acc: array<vec4f, 8>; // [4·quad + e] over the thread's 4 rows (accumulateQuads)
  for (var c = 0u; c < 8u; c++) { acc[c] = vec4f(0.0); }
  var lsum = vec4f(0.0);
  var mRow = vec4f(NEG); // running max of the thread's 4 rows (log2 domain), the same in all 16 threads of a row group

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
        for (var e = 0u; e < 4u; e++) { uSet((dq * 4u + e) * QS + r, x[e]); }
      }
      for (var n = 0u; n < 2u; n++) {
        // K chunk: 64 keys × 16 dims = 256 vec4, two per thread.
        let idx = t + n * 128u;
        let kk = idx / 4u;
        let dq = idx % 4u;
        let d = d0 + dq * 4u;
        var x = vec4f(0.0);
        if (k0 + kk < p.T && d < HD) { x = k[(b * p.T + k0 + kk) * kStride4 + kvh * HD4 + d / 4u]; }
        for (var e = 0u; e < 4u; e++) { uSet(KOFF + (dq * 4u + e) * KS + kk, x[e]); }
      }
      workgroupBarrier();
      for (var d = 0u; d < DK; d++) {
        let qo = d * QS + rg * 4u;
        let ko = KOFF + d * KS + kg * 4u;
        let kv = U[ko >> 2u]; // keys kg·4..+3
        let qv = U[qo >> 2u]; // rows rg·4..+3
        sf[0] = fma(vec4f(qv.x), kv, sf[0]);
        sf[1] = fma(vec4f(qv.y), kv, sf[1]);
        sf[2] = fma(vec4f(qv.z), kv, sf[2]);
        sf[3] = fma(vec4f(qv.w), kv, sf[3]);
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
    // The max over the row group's 16 threads: across the W lanes of a subgroup by shuffles, then across the 16 / W
    // such partials through `U` (no barrier needed before the write: phase 1 ended with one; phase 3 starts with one
    // before `U` is written again). Every thread ends with the whole max of its rows.
//#if SUBGROUPS
    for (var m = 1u; m < W; m <<= 1u) { mx = max(mx, subgroupShuffleXor(mx, m)); }
//#endif
    if (W < 16u) {
      if (kg % W == 0u) { U[((kg / W) * R + rg * 4u) >> 2u] = mx; }
      workgroupBarrier();
      for (var g = 0u; g < 16u / W; g++) { mx = max(mx, U[(g * R + rg * 4u) >> 2u]); }
    }
    let mNew = max(mRow, mx);
    let alpha = exp2(mRow - mNew);
    mRow = mNew;
    for (var j = 0u; j < 4u; j++) {
      let s = vec4f(sf[0][j], sf[1][j], sf[2][j], sf[3][j]);
      // A masked score gives 0 even while its row's max is still NEG (exp2(NEG − NEG) would be 1).
      PT[(kg * 4u + j) * (R / 4u) + rg] = select(vec4f(0.0), exp2(s - mRow), s > vec4f(0.5 * NEG));
    }
    lsum *= alpha;
    for (var c = 0u; c < 8u; c++) { acc[c] *= alpha; }

    // --- Phase 3: O += P·V, V streamed in chunks of VK keys through `U`.
    for (var ch = 0u; ch < BK / VK; ch++) {
      let c0 = ch * VK; // a unit-step counter, so the robustness pass bounds c0 + kk below BK
      workgroupBarrier(); // P written / the previous chunk consumed
      for (var idx = t; idx < VK * HD4; idx += 128u) {
        let kk = idx / HD4;
        let d4 = idx % HD4;
        var x = vec4f(0.0);
        if (k0 + c0 + kk < p.T) { x = v[(b * p.T + k0 + c0 + kk) * kStride4 + kvh * HD4 + d4]; }
        let o = kk * HD + d4 * 4u;
        U[o >> 2u] = x;
      }
      workgroupBarrier();
      for (var kk = 0u; kk < VK; kk++) {
        let pv = PT[(c0 + kk) * (R / 4u) + rg];
        lsum += pv;
        accumulateQuads(&acc, pv, U[kk * HD4 + dg], U[kk * HD4 + dg + 16u], dg);
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
    for (var c = 0u; c < 2u; c++) {
      let d4 = dg + 16u * c;
      if (d4 < HD4) {
        for (var e = 0u; e < 4u; e++) { outp[o + 4u * d4 + e] = acc[4u * c + e][i] * inv; }
      }
    }
    if (dg == 0u) { lseOut[tok * p.nH + h] = select(0.0, (mRow[i] + log2(lsum[i])) * LN2, live); }
  }
}

// =================================================================================================================
// Backward, FlashAttention-2 style: same contract as attention.wgsl's backward_dkv / backward_dq (same buffers, D =
// rowsum(dout·out) from its dot_rows pass, the forward's lse in nats). P is recomputed per tile from lse, never
// stored: P = exp2(S·scale2 − lse·log2(e)); dP = dO·Vᵀ; dS = P ∘ (dP − D); dV = Pᵀ·dO, dK = scale·dSᵀ·Q,
// dQ = scale·dS·K. Two kernels, each output row written by exactly one workgroup (no atomics, no zeroing pass):
// - backward_dkv: one workgroup per 32 keys of one KV head, looping over the G query heads of the group and the
//   64-query tiles at or after its first key;
// - backward_dq: one workgroup per QP positions × G heads (the forward's grouping), looping over 64-key tiles up to
//   the diagonal.
// Both reuse the forward's building blocks: S (and dP) from 4 × 4 register fragments with the head dim streamed in
// chunks of 16 through `U`, the products with P or dS through `PT` (transposed, vec4 of 4 rows) with the other
// operand streamed in chunks of VK rows, tile skipping and the mask-only-where-needed decision from segment ids.
// Workgroup memory: 15,752 bytes each (U 6,656, PT 8,192, rowL/rowD 512, segment ids, flags). No subgroups.
//
// DS_SPILL (define): 5 products instead of 7. backward_dkv also writes each dS tile it computes to a scratch buffer,
// and backward_dq, compiled with it, reads dS back instead of recomputing S, P, dP and dS: dq += dS·K is its only
// product. dS is the same bits either way (the same fmas in the same order: S and dP sum the head dims in one order in both kernels,
// and fma(a, b, c) = fma(b, a, c)), so dq is too. The scratch holds the causal lower triangle, per (row b, head h) a
// plane in which query i keeps keys 0 .. 32·(⌊i/32⌋ + 1) − 1, the whole 32-key blocks at or before its own (`dsAt`);
// for T = 2048 and 32 heads that is 273 MB. The host runs the two kernels for chunkKV KV heads at a time (from kv0)
// when the scratch holds fewer than all. Tiles backward_dkv skips (no row sees any key) are never written: their
// entries are masked wherever backward_dq reads them (its tile is then masked too), and it selects 0 there.
// backward_dkv then needs a ninth storage buffer: seg moves into the stats buffer, after lse and D (the host copies
// it there), read as u32 (`statsU`) with lse and D bitcast back: the same bits as `stats` and `seg`.

@group(0) @binding(5) var<storage, read> dO: array<vec4f>; // (BT, nH·HD)
// The forward's lse (nats) and D = rowsum(dout·out), (BT, nH) each, one after the other (dot_rows writes both): one
// binding, so backward_dkv needs 8 storage buffers, the most WebGPU guarantees.
@group(0) @binding(6) var<storage, read> stats: array<f32>;
@group(0) @binding(7) var<storage, read_write> dqOut: array<f32>; // (BT, nH·HD)
@group(0) @binding(7) var<storage, read_write> dkOut: array<f32>; // (BT, nKV·HD)
@group(0) @binding(8) var<storage, read_write> dvOut: array<f32>; // (BT, nKV·HD)

var<workgroup> rowL: array<f32, BK>; // lse·log2(e) of the tile's query rows
var<workgroup> rowD: array<f32, BK>; // D of the tile's query rows
var<workgroup> segK: array<u32, R>; // backward_dkv: the block's key segment ids (0 beyond T)

//#if DS_SPILL
@group(0) @binding(4) var<storage, read_write> dsOut: array<vec4f>; // backward_dkv: dS tiles (`dsAt`)
@group(0) @binding(6) var<storage, read> statsU: array<u32>; // backward_dkv: lse | D | seg
// backward_dq reads dS back and binds the dS scratch (1), k (2), dq (3), seg (4): its bindings run from 1 without a
// gap, as the host binds them.
@group(0) @binding(1) var<storage, read> dsIn: array<vec4f>;
@group(0) @binding(3) var<storage, read_write> dqS: array<f32>;

fn storeDq(i: u32, x: f32) { dqS[i] = x; }

fn statAt(i: u32) -> f32 { return bitcast<f32>(statsU[i]); }
fn segAt(i: u32) -> u32 { return statsU[2u * p.B * p.T * p.nH + i]; }

// The vec4 index of dS (query pos, key j, j a multiple of 4 below 32·(⌊pos/32⌋ + 1)) in the plane of batch row b,
// KV head kvh (of this chunk) and head hh of its group. A plane holds the rows of ⌈T/32⌉ blocks of 32 queries; block c
// keeps 32·(c + 1) keys a row, so row pos = 32·c + r starts at 512·c·(c + 1) + 32·r·(c + 1) = 32·(c + 1)·(16·c + r).
fn dsAt(b: u32, kvh: u32, hh: u32, pos: u32, j: u32) -> u32 {
  let nb = (p.T + 31u) / 32u;
  let plane = ((b * p.chunkKV + kvh - p.kv0) * G + hh) * (512u * nb * (nb + 1u));
  let c = pos / 32u;
  return (plane + 32u * (c + 1u) * (16u * c + pos % 32u) + j) / 4u;
}
//#else
fn statAt(i: u32) -> f32 { return stats[i]; }
fn segAt(i: u32) -> u32 { return seg[i]; }
fn storeDq(i: u32, x: f32) { dqOut[i] = x; }
//#endif

// dq (BT, nH·HD) overwritten. Grid (⌈T/QP⌉, nKV, B), rows as in the forward. With DS_SPILL: dS read back from the
// tiles backward_dkv wrote instead of S, P, dP and dS recomputed, and the same product after it (so the same bits);
// grid (⌈T/QP⌉, chunkKV, B), KV head kv0 + wg.y.
@compute @workgroup_size(128)
fn backward_dq(@builtin(workgroup_id) wg: vec3u, @builtin(local_invocation_index) t: u32) {
  let HD4 = HD / 4u;
  let b = wg.z;
  let kvh = p.kv0 + wg.y;
  let nBlocks = (p.T + QP - 1u) / QP;
  let q0 = (nBlocks - 1u - wg.x) * QP; // longest blocks first
  let qStride4 = p.nH * HD4;
  let kStride4 = p.nKV * HD4;
  let rg = t / 16u;
  let kg = t % 16u;
  let dg = kg;

  if (t < 32u) {
    var s = 0u;
    if (t < QP && q0 + t < p.T) { s = seg[b * p.T + q0 + t]; }
    segQ[t] = s;
//#if !DS_SPILL
    // Row t's statistics (rows past QP·G or T: 0, and they are never written).
    let pos = q0 + t / G;
    var L = 0.0;
    var d = 0.0;
    if (t < QP * G && pos < p.T) {
      let i = (b * p.T + pos) * p.nH + kvh * G + t % G;
      L = stats[i] * LOG2E;
      d = stats[p.B * p.T * p.nH + i];
    }
    rowL[t] = L;
    rowD[t] = d;
//#endif
  }
  workgroupBarrier();
  var blockSeg = segQ[0];
  for (var pp = 1u; pp < QP; pp++) {
    if (segQ[pp] != blockSeg) { blockSeg = 0u; }
  }
  var rowSeg: array<u32, 4>;
  var rowPos: array<u32, 4>;
  for (var i = 0u; i < 4u; i++) {
    let r = rg * 4u + i;
    rowPos[i] = q0 + r / G;
    rowSeg[i] = select(0u, segQ[min(r / G, 31u)], r < QP * G);
  }
//#if !DS_SPILL
  let L4 = vec4f(rowL[rg * 4u], rowL[rg * 4u + 1u], rowL[rg * 4u + 2u], rowL[rg * 4u + 3u]);
  let D4 = vec4f(rowD[rg * 4u], rowD[rg * 4u + 1u], rowD[rg * 4u + 2u], rowD[rg * 4u + 3u]);
//#endif

  var acc: array<vec4f, 8>; // dq: [4·quad + e] over the thread's 4 rows (accumulateQuads)
  for (var c = 0u; c < 8u; c++) { acc[c] = vec4f(0.0); }

  let kEnd = min(p.T, q0 + QP);
  var tile = 0u;
  for (var k0 = 0u; k0 < kEnd; k0 += BK) {
    tile++;
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
    if (workgroupUniformLoad(&visFlag) != tile) { continue; }
    let masked = workgroupUniformLoad(&maskFlag) == tile;

//#if DS_SPILL
    // --- dS of the thread's 4 rows × keys k0 + kg·4 .. + 3, transposed into PT as phase 2 below stores it. A row keeps
    // the keys of the 32-key blocks up to its own; the keys past them are above the diagonal (masked, read as 0). On a
    // masked tile an entry no row may see is 0 whatever the scratch holds there (backward_dkv may have skipped it).
    let kk0 = k0 + kg * 4u;
    var rows: array<vec4f, 4>; // [row i] over the 4 keys
    for (var i = 0u; i < 4u; i++) {
      rows[i] = vec4f(0.0);
      let r = rg * 4u + i;
      let pos = rowPos[i];
      if (r < QP * G && pos < p.T && kk0 < 32u * (pos / 32u + 1u)) { rows[i] = dsIn[dsAt(b, kvh, r % G, pos, kk0)]; }
    }
    for (var j = 0u; j < 4u; j++) {
      let kk = kg * 4u + j;
      var w = vec4f(rows[0][j], rows[1][j], rows[2][j], rows[3][j]);
      if (masked) {
        for (var i = 0u; i < 4u; i++) {
          let ok = rowSeg[i] != 0u && segT[kk] == rowSeg[i] && k0 + kk <= rowPos[i];
          w[i] = select(0.0, w[i], ok);
        }
      }
      PT[kk * (R / 4u) + rg] = w;
    }
//#else
    // --- Phase 1: S = Q·Kᵀ (ph = 0), dP = dO·Vᵀ (ph = 1), 32 rows × 64 keys, head dims in chunks of DK.
    var sf: array<vec4f, 4>; // [row i] over keys kg·4..kg·4+3
    var dpf: array<vec4f, 4>;
    for (var ph = 0u; ph < 2u; ph++) {
      var f: array<vec4f, 4>;
      for (var i = 0u; i < 4u; i++) { f[i] = vec4f(0.0); }
      for (var d0 = 0u; d0 < HD; d0 += DK) {
        {
          let r = t / 4u;
          let dq = t % 4u;
          let d = d0 + dq * 4u;
          let pos = q0 + r / G;
          var x = vec4f(0.0);
          if (r < QP * G && pos < p.T && d < HD) {
            let a = (b * p.T + pos) * qStride4 + (kvh * G + r % G) * HD4 + d / 4u;
            if (ph == 0u) { x = q[a]; } else { x = dO[a]; }
          }
          for (var e = 0u; e < 4u; e++) { uSet((dq * 4u + e) * QS + r, x[e]); }
        }
        for (var n = 0u; n < 2u; n++) {
          let idx = t + n * 128u;
          let kk = idx / 4u;
          let dq = idx % 4u;
          let d = d0 + dq * 4u;
          var x = vec4f(0.0);
          if (k0 + kk < p.T && d < HD) {
            let a = (b * p.T + k0 + kk) * kStride4 + kvh * HD4 + d / 4u;
            if (ph == 0u) { x = k[a]; } else { x = v[a]; }
          }
          for (var e = 0u; e < 4u; e++) { uSet(KOFF + (dq * 4u + e) * KS + kk, x[e]); }
        }
        workgroupBarrier();
        for (var d = 0u; d < DK; d++) {
          let qo = d * QS + rg * 4u;
          let ko = KOFF + d * KS + kg * 4u;
          let kv = U[ko >> 2u];
          let qv = U[qo >> 2u];
          f[0] = fma(vec4f(qv.x), kv, f[0]);
          f[1] = fma(vec4f(qv.y), kv, f[1]);
          f[2] = fma(vec4f(qv.z), kv, f[2]);
          f[3] = fma(vec4f(qv.w), kv, f[3]);
        }
        workgroupBarrier();
      }
      if (ph == 0u) { sf = f; } else { dpf = f; }
    }

    // --- Phase 2: P from lse (masked where needed: exactly 0), dS = P ∘ (dP − D), stored transposed in PT.
    for (var j = 0u; j < 4u; j++) {
      let kk = kg * 4u + j;
      let s = vec4f(sf[0][j], sf[1][j], sf[2][j], sf[3][j]);
      let dp = vec4f(dpf[0][j], dpf[1][j], dpf[2][j], dpf[3][j]);
      var pr = exp2(s * p.scale2 - L4);
      if (masked) {
        for (var i = 0u; i < 4u; i++) {
          let ok = rowSeg[i] != 0u && segT[kk] == rowSeg[i] && k0 + kk <= rowPos[i];
          pr[i] = select(0.0, pr[i], ok);
        }
      }
      PT[kk * (R / 4u) + rg] = pr * (dp - D4);
    }
//#endif

    // --- Phase 3: dq += dS·K, K streamed in chunks of VK keys through `U`.
    for (var ch = 0u; ch < BK / VK; ch++) {
      let c0 = ch * VK; // a unit-step counter, so the robustness pass bounds c0 + kk below BK
      workgroupBarrier(); // dS written / the previous chunk consumed
      for (var idx = t; idx < VK * HD4; idx += 128u) {
        let kk = idx / HD4;
        let d4 = idx % HD4;
        var x = vec4f(0.0);
        if (k0 + c0 + kk < p.T) { x = k[(b * p.T + k0 + c0 + kk) * kStride4 + kvh * HD4 + d4]; }
        let o = kk * HD + d4 * 4u;
        U[o >> 2u] = x;
      }
      workgroupBarrier();
      for (var kk = 0u; kk < VK; kk++) {
        accumulateQuads(&acc, PT[(c0 + kk) * (R / 4u) + rg], U[kk * HD4 + dg], U[kk * HD4 + dg + 16u], dg);
      }
    }
  }

  for (var i = 0u; i < 4u; i++) {
    let r = rg * 4u + i;
    let pos = rowPos[i];
    if (r >= QP * G || pos >= p.T) { continue; }
    let o = ((b * p.T + pos) * p.nH + kvh * G + r % G) * HD;
    for (var c = 0u; c < 2u; c++) {
      let d4 = dg + 16u * c;
      if (d4 < HD4) {
        for (var e = 0u; e < 4u; e++) { storeDq(o + 4u * d4 + e, acc[4u * c + e][i] * p.scale); }
      }
    }
  }
}

// dk, dv (BT, nKV·HD) overwritten. Grid (⌈T/32⌉, nKV, B): the workgroup owns keys j0..j0+31 of KV head wg.y. Thread
// (rg, kg) owns keys rg·4.. × queries kg·4.. of the 32 × 64 tile (Sᵀ, dPᵀ), then keys rg·4.. × dim quads kg, kg+16.
@compute @workgroup_size(128)
fn backward_dkv(@builtin(workgroup_id) wg: vec3u, @builtin(local_invocation_index) t: u32) {
  let HD4 = HD / 4u;
  let b = wg.z;
  let kvh = p.kv0 + wg.y;
  let j0 = wg.x * R; // block 0, the one with the most queries after it, first
  let qStride4 = p.nH * HD4;
  let kStride4 = p.nKV * HD4;
  let rg = t / 16u;
  let kg = t % 16u;
  let dg = kg;

  if (t < R) {
    var s = 0u;
    if (j0 + t < p.T) { s = segAt(b * p.T + j0 + t); }
    segK[t] = s;
  }
  workgroupBarrier();
  // The block's one segment when all 32 keys are real and share it, else 0: only then can a query tile be unmasked
  // (a query at or after the block's last key and in that segment sees every key of it).
  var blockSeg = segK[0];
  for (var kk = 1u; kk < R; kk++) {
    if (segK[kk] != blockSeg) { blockSeg = 0u; }
  }
  var keySeg: array<u32, 4>;
  var keyPos: array<u32, 4>;
  for (var i = 0u; i < 4u; i++) {
    keyPos[i] = j0 + rg * 4u + i;
    keySeg[i] = segK[rg * 4u + i];
  }

  var dk: array<vec4f, 8>; // [4·quad + e] over the thread's 4 keys (accumulateQuads)
  var dv: array<vec4f, 8>;
  for (var c = 0u; c < 8u; c++) {
    dk[c] = vec4f(0.0);
    dv[c] = vec4f(0.0);
  }

  var tile = 0u;
  for (var hh = 0u; hh < G; hh++) {
    let h = kvh * G + hh;
    for (var i0 = j0; i0 < p.T; i0 += BK) { // queries before j0 see none of the block's keys
      tile++;
      // --- Which tiles: query t of the tile looks at the block's keys; it also brings its row's lse and D.
      if (t < BK) {
        let qi = i0 + t;
        var sq = 0u;
        var L = 0.0;
        var d = 0.0;
        if (qi < p.T) {
          sq = segAt(b * p.T + qi);
          let a = (b * p.T + qi) * p.nH + h;
          L = statAt(a) * LOG2E;
          d = statAt(p.B * p.T * p.nH + a);
        }
        segT[t] = sq;
        rowL[t] = L;
        rowD[t] = d;
        var vis = false;
        for (var kk = 0u; kk < R; kk++) {
          vis = vis || (sq != 0u && segK[kk] == sq && j0 + kk <= qi);
        }
        if (vis) { atomicMax(&visFlag, tile); }
        if (!(blockSeg != 0u && sq == blockSeg && qi >= j0 + R - 1u)) { atomicMax(&maskFlag, tile); }
      }
      if (workgroupUniformLoad(&visFlag) != tile) { continue; }
      let masked = workgroupUniformLoad(&maskFlag) == tile;

      // --- Phase 1: Sᵀ = K·Qᵀ (ph = 0), dPᵀ = V·dOᵀ (ph = 1), 32 keys × 64 queries, head dims in chunks of DK.
      var sf: array<vec4f, 4>; // [key i] over queries kg·4..kg·4+3
      var dpf: array<vec4f, 4>;
      for (var ph = 0u; ph < 2u; ph++) {
        var f: array<vec4f, 4>;
        for (var i = 0u; i < 4u; i++) { f[i] = vec4f(0.0); }
        for (var d0 = 0u; d0 < HD; d0 += DK) {
          {
            let r = t / 4u;
            let dq = t % 4u;
            let d = d0 + dq * 4u;
            var x = vec4f(0.0);
            if (j0 + r < p.T && d < HD) {
              let a = (b * p.T + j0 + r) * kStride4 + kvh * HD4 + d / 4u;
              if (ph == 0u) { x = k[a]; } else { x = v[a]; }
            }
            for (var e = 0u; e < 4u; e++) { uSet((dq * 4u + e) * QS + r, x[e]); }
          }
          for (var n = 0u; n < 2u; n++) {
            let idx = t + n * 128u;
            let qq = idx / 4u;
            let dq = idx % 4u;
            let d = d0 + dq * 4u;
            var x = vec4f(0.0);
            if (i0 + qq < p.T && d < HD) {
              let a = (b * p.T + i0 + qq) * qStride4 + h * HD4 + d / 4u;
              if (ph == 0u) { x = q[a]; } else { x = dO[a]; }
            }
            for (var e = 0u; e < 4u; e++) { uSet(KOFF + (dq * 4u + e) * KS + qq, x[e]); }
          }
          workgroupBarrier();
          for (var d = 0u; d < DK; d++) {
            let ko = d * QS + rg * 4u;
            let qo = KOFF + d * KS + kg * 4u;
            let qv = U[qo >> 2u];
            let kv = U[ko >> 2u];
            f[0] = fma(vec4f(kv.x), qv, f[0]);
            f[1] = fma(vec4f(kv.y), qv, f[1]);
            f[2] = fma(vec4f(kv.z), qv, f[2]);
            f[3] = fma(vec4f(kv.w), qv, f[3]);
          }
          workgroupBarrier();
        }
        if (ph == 0u) { sf = f; } else { dpf = f; }
      }

      // --- Phase 2: P (exactly 0 where masked) into PT as [query][4 keys]; dS kept in registers for phase 3b.
      var ds: array<vec4f, 4>; // [query j] over the thread's 4 keys
      for (var j = 0u; j < 4u; j++) {
        let qq = kg * 4u + j;
        let s = vec4f(sf[0][j], sf[1][j], sf[2][j], sf[3][j]);
        let dp = vec4f(dpf[0][j], dpf[1][j], dpf[2][j], dpf[3][j]);
        var pr = exp2(s * p.scale2 - rowL[qq]);
        if (masked) {
          for (var i = 0u; i < 4u; i++) {
            let ok = keySeg[i] != 0u && segT[qq] == keySeg[i] && keyPos[i] <= i0 + qq;
            pr[i] = select(0.0, pr[i], ok);
          }
        }
        PT[qq * (R / 4u) + rg] = pr;
        ds[j] = pr * (dp - rowD[qq]);
//#if DS_SPILL
        if (i0 + qq < p.T) { dsOut[dsAt(b, kvh, hh, i0 + qq, j0 + rg * 4u)] = ds[j]; }
//#endif
      }

      // --- Phase 3: dv += Pᵀ·dO (ph = 0), then dk += dSᵀ·Q (ph = 1); dO / Q streamed in chunks of VK queries.
      for (var ph = 0u; ph < 2u; ph++) {
        if (ph == 1u) {
          workgroupBarrier(); // every thread is done reading P
          for (var j = 0u; j < 4u; j++) { PT[(kg * 4u + j) * (R / 4u) + rg] = ds[j]; }
        }
        for (var ch = 0u; ch < BK / VK; ch++) {
          let c0 = ch * VK; // a unit-step counter, so the robustness pass bounds c0 + qq below BK
          workgroupBarrier(); // P / dS written, the previous chunk consumed
          for (var idx = t; idx < VK * HD4; idx += 128u) {
            let qq = idx / HD4;
            let d4 = idx % HD4;
            var x = vec4f(0.0);
            if (i0 + c0 + qq < p.T) {
              let a = (b * p.T + i0 + c0 + qq) * qStride4 + h * HD4 + d4;
              if (ph == 0u) { x = dO[a]; } else { x = q[a]; }
            }
            let o = qq * HD + d4 * 4u;
            U[o >> 2u] = x;
          }
          workgroupBarrier();
          for (var qq = 0u; qq < VK; qq++) {
            let w = PT[(c0 + qq) * (R / 4u) + rg];
            let x0 = U[qq * HD4 + dg];
            let x1 = U[qq * HD4 + dg + 16u];
            if (ph == 0u) { accumulateQuads(&dv, w, x0, x1, dg); } else { accumulateQuads(&dk, w, x0, x1, dg); }
          }
        }
      }
      // No barrier here: the next tile writes segT/rowL/rowD (last read in phase 2, before phase 3's barriers) and
      // touches `U` and `PT` only after its flag barrier.
    }
  }

  for (var i = 0u; i < 4u; i++) {
    let pos = keyPos[i];
    if (pos >= p.T) { continue; }
    let o = ((b * p.T + pos) * p.nKV + kvh) * HD;
    for (var c = 0u; c < 2u; c++) {
      let d4 = dg + 16u * c;
      if (d4 < HD4) {
        for (var e = 0u; e < 4u; e++) {
          dkOut[o + 4u * d4 + e] = dk[4u * c + e][i] * p.scale;
          dvOut[o + 4u * d4 + e] = dv[4u * c + e][i];
        }
      }
    }
  }
}
