// Causal grouped-query attention, flash style (forward and backward), in f32.
//
// Layout (token-major, no transposes): q (BT, nH·HD), k and v (BT, nKV·HD), out (BT, nH·HD), with BT = B·T and the
// tokens of batch row b at b·T .. b·T+T-1. Query head h reads kv head h / (nH/nKV). lse (BT, nH) and D (BT, nH).
// Mask: query i of row b sees key j of row b iff j ≤ i, seg[b·T+j] == seg[b·T+i] and seg[b·T+i] != 0 (seg: a per-token
// segment id, 0 = padding). A padding query outputs zeros, lse 0, and gets no gradient.
//
// Thread layout shared by the three kernels: a workgroup owns ROWS rows (queries, or keys for dk/dv) of one head; each
// row is split over PARTS = HD/DPT threads, thread t = row·PARTS + part holding DPT consecutive dims of its row in
// registers (q and the output accumulator, say). The rows of the other side (keys, or queries for dk/dv) stream through
// workgroup memory in small tiles. A dot product over the head dim is PARTS partial dots written to workgroup memory
// and summed by every thread of the row, in the same order, so the PARTS threads of a row agree bit for bit on the
// scores and the online-softmax state. No [T×T] matrix is ever stored. Tiles are skipped, uniformly for the workgroup,
// when no row of the block may attend any of their entries: above the diagonal, and outside the rows' segments (packed
// examples cost only their own blocks). A thread reads the tile's segment ids itself, keeps the bits of the entries its
// row may attend, and the workgroup agrees through a tile-stamped flag (atomicMax, then workgroupUniformLoad).
// Query blocks run in reverse order (the longest, last blocks first) so causal work does not leave a tail.
//
// Scores live in the log2 domain (q pre-scaled by log2(e)/sqrt(HD)) so the softmax uses exp2; lse is stored in nats.
//
// Backward (flash-attention-2 without atomics, three passes):
//   dot:      D[i,h] = Σ_d dout[i,h,d]·out[i,h,d]
//   dkv:      a workgroup owns a key block of one kv head and loops over every query head of its group and every query
//             tile at or after the block: dv_j = Σ_i P_ij dout_i, dk_j = scale·Σ_i dS_ij q_i. Each dk/dv row has exactly
//             one writer, so GQA needs no atomics and results overwrite.
//   dq:       a workgroup owns a query block of one head and streams key tiles like the forward: dq_i = scale·Σ_j dS_ij k_j.
// with P_ij = exp(scale·q_i·k_j − lse_i) recomputed from lse, dS_ij = P_ij (dout_i·v_j − D_i). The scores are
// recomputed twice (dkv and dq), the price of having no float atomics: 7 products of (T×T×HD) instead of 5.

struct Params {
  B: u32,
  T: u32,
  nH: u32,
  nKV: u32,
  scale2: f32, // log2(e) / sqrt(HD)
  scale: f32, // 1 / sqrt(HD)
  n: u32, // dot: BT·nH
  nx: u32, // dot: workgroups along x
}

@group(0) @binding(0) var<uniform> p: Params;

override HD: u32 = 128; // head dim, a multiple of 4, at most 128
override DPT: u32 = 32; // dims per thread, a multiple of 4 dividing HD, at most 32 (16 in dkv)
override WG: u32 = 128; // threads per workgroup = ROWS · (HD / DPT)

const LOG2E = 1.4426950408889634;
const LN2 = 0.6931471805599453;
const NEG = -1e30; // "minus infinity" that keeps exp2 and max free of NaN

// ---------------------------------------------------------------------------------------------------------------
// forward: out (BT, nH·HD), lse (BT, nH) from q, k, v, seg. Grid (ceil(T/ROWS), nH, B).

@group(0) @binding(1) var<storage, read> fq: array<vec4f>;
@group(0) @binding(2) var<storage, read> fk: array<vec4f>;
@group(0) @binding(3) var<storage, read> fv: array<vec4f>;
@group(0) @binding(4) var<storage, read> fseg: array<u32>;
@group(0) @binding(5) var<storage, read_write> fout: array<vec4f>;
@group(0) @binding(6) var<storage, read_write> flse: array<f32>;

const FBK = 16u; // keys per tile
const F_MAXWG = 128u;
var<workgroup> fK: array<vec4f, 512>; // [FBK][HD/4]
var<workgroup> fV: array<vec4f, 512>;
var<workgroup> fS: array<f32, 2176>; // [WG][FBK + 1] partial scores (padded row: no bank conflicts)
var<workgroup> fFlag: atomic<u32>;

@compute @workgroup_size(WG)
fn forward(@builtin(workgroup_id) wg: vec3u, @builtin(local_invocation_index) t: u32) {
  let PARTS = HD / DPT;
  let ROWS = WG / PARTS;
  let HD4 = HD / 4u;
  let DPT4 = DPT / 4u;
  let r = t / PARTS;
  let part = t % PARTS;
  let b = wg.z;
  let h = wg.y;
  let kvh = h / (p.nH / p.nKV);
  let qb = (p.T + ROWS - 1u) / ROWS - 1u - wg.x;
  let i = qb * ROWS + r;
  let rowValid = r < ROWS && i < p.T;
  let tok = b * p.T + min(i, p.T - 1u);
  var segI = 0u;
  if (rowValid) { segI = fseg[tok]; }
  let qOff = tok * p.nH * HD4 + h * HD4 + part * DPT4;
  let kvStride4 = p.nKV * HD4;

  var qv: array<vec4f, 8>;
  var acc: array<vec4f, 8>;
  for (var c = 0u; c < DPT4; c++) {
    if (rowValid) { qv[c] = fq[qOff + c] * p.scale2; } else { qv[c] = vec4f(0.0); }
    acc[c] = vec4f(0.0);
  }
  var m = NEG;
  var l = 0.0;

  let kEnd = min(p.T, (qb + 1u) * ROWS); // keys ≥ kEnd are above the diagonal of every query here
  var tile = 0u;
  for (var j0 = 0u; j0 < kEnd; j0 += FBK) {
    tile++;
    var bits = 0u; // bit jj: this row may attend key j0 + jj
    if (segI != 0u) {
      for (var jj = 0u; jj < FBK && j0 + jj <= i; jj++) {
        if (fseg[b * p.T + j0 + jj] == segI) { bits |= 1u << jj; }
      }
    }
    if (bits != 0u) { atomicMax(&fFlag, tile); }
    if (workgroupUniformLoad(&fFlag) != tile) { continue; } // also the barrier before the tiles are overwritten

    for (var idx = t; idx < FBK * HD4; idx += WG) {
      let j = j0 + idx / HD4;
      var kx = vec4f(0.0);
      var vx = vec4f(0.0);
      if (j < p.T) {
        let g = (b * p.T + j) * kvStride4 + kvh * HD4 + idx % HD4;
        kx = fk[g];
        vx = fv[g];
      }
      fK[idx] = kx;
      fV[idx] = vx;
    }
    workgroupBarrier();

    for (var jj = 0u; jj < FBK; jj++) {
      var s = 0.0;
      let kb = jj * HD4 + part * DPT4;
      for (var c = 0u; c < DPT4; c++) { s += dot(qv[c], fK[kb + c]); }
      fS[t * (FBK + 1u) + jj] = s;
    }
    workgroupBarrier();

    var sc: array<f32, FBK>;
    var mBlk = NEG;
    for (var jj = 0u; jj < FBK; jj++) {
      var s = 0.0;
      for (var pp = 0u; pp < PARTS; pp++) { s += fS[(r * PARTS + pp) * (FBK + 1u) + jj]; }
      sc[jj] = select(NEG, s, (bits & (1u << jj)) != 0u);
      mBlk = max(mBlk, sc[jj]);
    }
    if (mBlk > 0.5 * NEG) {
      let mNew = max(m, mBlk);
      let alpha = exp2(m - mNew);
      l *= alpha;
      for (var c = 0u; c < DPT4; c++) { acc[c] *= alpha; }
      for (var jj = 0u; jj < FBK; jj++) {
        let pj = exp2(sc[jj] - mNew);
        l += pj;
        let vb = jj * HD4 + part * DPT4;
        for (var c = 0u; c < DPT4; c++) { acc[c] = fma(vec4f(pj), fV[vb + c], acc[c]); }
      }
      m = mNew;
    }
  }

  if (rowValid) {
    let live = segI != 0u && l > 0.0;
    let inv = select(0.0, 1.0 / l, live);
    for (var c = 0u; c < DPT4; c++) { fout[qOff + c] = acc[c] * inv; }
    if (part == 0u) { flse[tok * p.nH + h] = select(0.0, (m + log2(l)) * LN2, live); }
  }
}

// ---------------------------------------------------------------------------------------------------------------
// dot: the backward's row statistics, stats (2·BT·nH) = [lse | D], D = rowsum(dout · out) per (token, head), lse the
// forward's, copied beside it. One thread per (token, head); 2-D grid of 64-thread groups. Why the copy: the key
// pass then binds one buffer for both, 8 storage buffers in all, the most WebGPU guarantees an adapter offers.

@group(0) @binding(1) var<storage, read> ddout: array<vec4f>;
@group(0) @binding(2) var<storage, read> dout_o: array<vec4f>;
@group(0) @binding(3) var<storage, read> dlse: array<f32>;
@group(0) @binding(4) var<storage, read_write> dStats: array<f32>;

@compute @workgroup_size(64)
fn dot_rows(@builtin(workgroup_id) wg: vec3u, @builtin(local_invocation_index) t: u32) {
  let idx = (wg.y * p.nx + wg.x) * 64u + t;
  if (idx >= p.n) { return; }
  let HD4 = HD / 4u;
  let base = idx * HD4; // (token, head) rows are contiguous: token·nH + head
  var s = vec4f(0.0);
  for (var c = 0u; c < HD4; c++) { s = fma(ddout[base + c], dout_o[base + c], s); }
  dStats[idx] = dlse[idx];
  dStats[p.n + idx] = s.x + s.y + s.z + s.w;
}

// ---------------------------------------------------------------------------------------------------------------
// dq: dq (BT, nH·HD) overwritten. Grid (ceil(T/ROWS), nH, B), rows = queries, like the forward.

@group(0) @binding(1) var<storage, read> qq: array<vec4f>;
@group(0) @binding(2) var<storage, read> qk: array<vec4f>;
@group(0) @binding(3) var<storage, read> qvv: array<vec4f>;
@group(0) @binding(4) var<storage, read> qseg: array<u32>;
@group(0) @binding(5) var<storage, read> qdout: array<vec4f>;
@group(0) @binding(6) var<storage, read> qStats: array<f32>; // [lse | D], (BT, nH) each (dot_rows)
@group(0) @binding(7) var<storage, read_write> qdq: array<vec4f>;

const QBK = 8u; // keys per tile
var<workgroup> qK: array<vec4f, 256>; // [QBK][HD/4]
var<workgroup> qV: array<vec4f, 256>;
var<workgroup> qS: array<f32, 2176>; // [WG][2·QBK + 1]: partial scores, then partial dout·v
var<workgroup> qFlag: atomic<u32>;

@compute @workgroup_size(WG)
fn backward_dq(@builtin(workgroup_id) wg: vec3u, @builtin(local_invocation_index) t: u32) {
  let PARTS = HD / DPT;
  let ROWS = WG / PARTS;
  let HD4 = HD / 4u;
  let DPT4 = DPT / 4u;
  let ST = 2u * QBK + 1u;
  let r = t / PARTS;
  let part = t % PARTS;
  let b = wg.z;
  let h = wg.y;
  let kvh = h / (p.nH / p.nKV);
  let qb = (p.T + ROWS - 1u) / ROWS - 1u - wg.x;
  let i = qb * ROWS + r;
  let rowValid = r < ROWS && i < p.T;
  let tok = b * p.T + min(i, p.T - 1u);
  var segI = 0u;
  var lse2 = 0.0;
  var Di = 0.0;
  if (rowValid) {
    segI = qseg[tok];
    lse2 = qStats[tok * p.nH + h] * LOG2E;
    Di = qStats[p.B * p.T * p.nH + tok * p.nH + h];
  }
  let qOff = tok * p.nH * HD4 + h * HD4 + part * DPT4;
  let kvStride4 = p.nKV * HD4;

  var qv: array<vec4f, 8>;
  var dov: array<vec4f, 8>;
  var acc: array<vec4f, 8>;
  for (var c = 0u; c < DPT4; c++) {
    if (rowValid) {
      qv[c] = qq[qOff + c] * p.scale2;
      dov[c] = qdout[qOff + c];
    } else {
      qv[c] = vec4f(0.0);
      dov[c] = vec4f(0.0);
    }
    acc[c] = vec4f(0.0);
  }

  let kEnd = min(p.T, (qb + 1u) * ROWS);
  var tile = 0u;
  for (var j0 = 0u; j0 < kEnd; j0 += QBK) {
    tile++;
    var bits = 0u;
    if (segI != 0u) {
      for (var jj = 0u; jj < QBK && j0 + jj <= i; jj++) {
        if (qseg[b * p.T + j0 + jj] == segI) { bits |= 1u << jj; }
      }
    }
    if (bits != 0u) { atomicMax(&qFlag, tile); }
    if (workgroupUniformLoad(&qFlag) != tile) { continue; }

    for (var idx = t; idx < QBK * HD4; idx += WG) {
      let j = j0 + idx / HD4;
      var kx = vec4f(0.0);
      var vx = vec4f(0.0);
      if (j < p.T) {
        let g = (b * p.T + j) * kvStride4 + kvh * HD4 + idx % HD4;
        kx = qk[g];
        vx = qvv[g];
      }
      qK[idx] = kx;
      qV[idx] = vx;
    }
    workgroupBarrier();

    for (var jj = 0u; jj < QBK; jj++) {
      var s = 0.0;
      var dp = 0.0;
      let kb = jj * HD4 + part * DPT4;
      for (var c = 0u; c < DPT4; c++) {
        s += dot(qv[c], qK[kb + c]);
        dp += dot(dov[c], qV[kb + c]);
      }
      qS[t * ST + jj] = s;
      qS[t * ST + QBK + jj] = dp;
    }
    workgroupBarrier();

    for (var jj = 0u; jj < QBK; jj++) {
      var s = 0.0;
      var dp = 0.0;
      for (var pp = 0u; pp < PARTS; pp++) {
        let o = (r * PARTS + pp) * ST;
        s += qS[o + jj];
        dp += qS[o + QBK + jj];
      }
      let pj = select(0.0, exp2(s - lse2), (bits & (1u << jj)) != 0u);
      let ds = pj * (dp - Di);
      let kb = jj * HD4 + part * DPT4;
      for (var c = 0u; c < DPT4; c++) { acc[c] = fma(vec4f(ds), qK[kb + c], acc[c]); }
    }
  }

  if (rowValid) {
    for (var c = 0u; c < DPT4; c++) { qdq[qOff + c] = acc[c] * p.scale; }
  }
}

// ---------------------------------------------------------------------------------------------------------------
// dkv: dk, dv (BT, nKV·HD) overwritten. Grid (ceil(T/ROWS), nKV, B), rows = keys of one kv head; loops over the query
// heads of its group and the query tiles at or after its first key.

@group(0) @binding(1) var<storage, read> kq: array<vec4f>;
@group(0) @binding(2) var<storage, read> kk: array<vec4f>;
@group(0) @binding(3) var<storage, read> kvv: array<vec4f>;
@group(0) @binding(4) var<storage, read> kseg: array<u32>;
@group(0) @binding(5) var<storage, read> kdout: array<vec4f>;
@group(0) @binding(6) var<storage, read> kStats: array<f32>; // [lse | D], (BT, nH) each (dot_rows)
@group(0) @binding(7) var<storage, read_write> kdk: array<vec4f>;
@group(0) @binding(8) var<storage, read_write> kdv: array<vec4f>;

const KBQ = 8u; // queries per tile
var<workgroup> kQ: array<vec4f, 256>; // [KBQ][HD/4]
var<workgroup> kdO: array<vec4f, 256>;
var<workgroup> kS: array<f32, 4352>; // [WG ≤ 256][2·KBQ + 1]
var<workgroup> kFlag: atomic<u32>;
var<workgroup> kL: array<f32, KBQ>; // lse · log2(e)
var<workgroup> kDq: array<f32, KBQ>;

@compute @workgroup_size(WG)
fn backward_dkv(@builtin(workgroup_id) wg: vec3u, @builtin(local_invocation_index) t: u32) {
  let PARTS = HD / DPT;
  let ROWS = WG / PARTS;
  let HD4 = HD / 4u;
  let DPT4 = DPT / 4u;
  let ST = 2u * KBQ + 1u;
  let r = t / PARTS;
  let part = t % PARTS;
  let b = wg.z;
  let g = wg.y;
  let G = p.nH / p.nKV;
  let j = wg.x * ROWS + r;
  let rowValid = r < ROWS && j < p.T;
  let tok = b * p.T + min(j, p.T - 1u);
  var segJ = 0u;
  if (rowValid) { segJ = kseg[tok]; }
  let kOff = tok * p.nKV * HD4 + g * HD4 + part * DPT4;
  let qStride4 = p.nH * HD4;

  var kx: array<vec4f, 8>;
  var vx: array<vec4f, 8>;
  var dk: array<vec4f, 8>;
  var dv: array<vec4f, 8>;
  for (var c = 0u; c < DPT4; c++) {
    if (rowValid) {
      kx[c] = kk[kOff + c];
      vx[c] = kvv[kOff + c];
    } else {
      kx[c] = vec4f(0.0);
      vx[c] = vec4f(0.0);
    }
    dk[c] = vec4f(0.0);
    dv[c] = vec4f(0.0);
  }

  let iStart = wg.x * ROWS; // queries before the block's first key see none of its keys
  var tile = 0u;
  for (var hh = 0u; hh < G; hh++) {
    let h = g * G + hh;
    for (var i0 = iStart; i0 < p.T; i0 += KBQ) {
      tile++;
      var bits = 0u; // bit ii: query i0 + ii attends this row's key
      if (segJ != 0u) {
        for (var ii = 0u; ii < KBQ && i0 + ii < p.T; ii++) {
          if (i0 + ii >= j && kseg[b * p.T + i0 + ii] == segJ) { bits |= 1u << ii; }
        }
      }
      if (bits != 0u) { atomicMax(&kFlag, tile); }
      if (workgroupUniformLoad(&kFlag) != tile) { continue; }

      for (var idx = t; idx < KBQ * HD4; idx += WG) {
        let i = i0 + idx / HD4;
        var qx = vec4f(0.0);
        var ox = vec4f(0.0);
        if (i < p.T) {
          let a = (b * p.T + i) * qStride4 + h * HD4 + idx % HD4;
          qx = kq[a];
          ox = kdout[a];
        }
        kQ[idx] = qx;
        kdO[idx] = ox;
      }
      if (t < KBQ) {
        var L = 0.0;
        var d = 0.0;
        if (i0 + t < p.T) {
          let ti = b * p.T + i0 + t;
          L = kStats[ti * p.nH + h] * LOG2E;
          d = kStats[p.B * p.T * p.nH + ti * p.nH + h];
        }
        kL[t] = L;
        kDq[t] = d;
      }
      workgroupBarrier();

      for (var ii = 0u; ii < KBQ; ii++) {
        var s = 0.0;
        var dp = 0.0;
        let qb = ii * HD4 + part * DPT4;
        for (var c = 0u; c < DPT4; c++) {
          s += dot(kx[c], kQ[qb + c]);
          dp += dot(vx[c], kdO[qb + c]);
        }
        kS[t * ST + ii] = s;
        kS[t * ST + KBQ + ii] = dp;
      }
      workgroupBarrier();

      for (var ii = 0u; ii < KBQ; ii++) {
        var s = 0.0;
        var dp = 0.0;
        for (var pp = 0u; pp < PARTS; pp++) {
          let o = (r * PARTS + pp) * ST;
          s += kS[o + ii];
          dp += kS[o + KBQ + ii];
        }
        let pij = select(0.0, exp2(s * p.scale2 - kL[ii]), (bits & (1u << ii)) != 0u);
        let ds = pij * (dp - kDq[ii]);
        let qb = ii * HD4 + part * DPT4;
        for (var c = 0u; c < DPT4; c++) {
          dv[c] = fma(vec4f(pij), kdO[qb + c], dv[c]);
          dk[c] = fma(vec4f(ds), kQ[qb + c], dk[c]);
        }
      }
    }
  }

  if (rowValid) {
    for (var c = 0u; c < DPT4; c++) {
      kdk[kOff + c] = dk[c] * p.scale;
      kdv[kOff + c] = dv[c];
    }
  }
}
