// A plain fp32 matmul C = A·B (row-major, M % BM, N % BN, K % BK all 0) generated from a tiling configuration, for
// `finetune bench sweep`: the production kernel (shaders/matmul_tiled.wgsl) reached 30–34 TFLOP/s at 4096³ on an H200
// where cuBLAS reaches 51 (docs/benchmarks.md), and which of its design choices held it there cannot be read from
// WebGPU (no register counts, no occupancy, no SASS). So this generator writes one WGSL source per point of a grid of
// those choices — the block (BM×BN), the K step (BK), the per-thread tile (TM×TN), how threads map onto it (a row of
// threads per warp, or 8×4 warp patches), whether the FMA steps of a K tile are unrolled in the source (scalar
// accumulator variables, no arrays: nothing left to a driver's unroller or register promotion), and the order of the
// blocks (a grid, or groups of block rows that share B's columns in L2) — and a GPU measures them all in one process.
// Bench-only: the engine never runs it. Its correctness is tested against float64 on SwiftShader
// (test/gpu/matmul_sweep.test.ts), so that a speed it reports is the speed of a right answer. Its first answer (H200,
// 2026-12-04): the K step written out on named accumulators ran 1.15–1.28× the production kernel, which now has that
// form (39.1–39.5 TFLOP/s at 4096³); bigger thread tiles and the warp map still measure up to 1.25× at gate/up's shape.

export type ThreadMap = 'row' | 'warp';

export interface SweepConfig {
  BM: number;
  BN: number;
  BK: number;
  /** Rows and columns of C one thread holds (multiples of 4: vec4 quads of columns, 4-row groups of rows). */
  TM: number;
  TN: number;
  /** 'row': thread i is (i % TX, i / TX). 'warp': each warp of 32 covers an 8 × 4 patch of the thread grid. */
  map: ThreadMap;
  /** The BK multiply-add steps of a K tile written out in the source (true) or a loop over them (false). */
  unroll: boolean;
  /** Blocks ordered in groups of this many block rows (L2 reuse of B's columns); 0: a plain 2-D grid. */
  group: number;
}

export interface SweepShape {
  M: number;
  N: number;
  K: number;
}

/** The config's name in bench lines, e.g. "128x128x16 t8x8 warp unroll g8". */
export function sweepName(c: SweepConfig): string {
  return `${c.BM}x${c.BN}x${c.BK} t${c.TM}x${c.TN} ${c.map}${c.unroll ? ' unroll' : ' loop'}${c.group ? ` g${c.group}` : ''}`;
}

export const sweepThreads = (c: SweepConfig): number => (c.BM / c.TM) * (c.BN / c.TN);
export const sweepWorkgroupBytes = (c: SweepConfig): number => 4 * c.BK * (c.BM + c.BN);

/** Why a configuration cannot be generated (or run on a device with these limits), or null. */
export function sweepConfigProblem(c: SweepConfig, limits?: { invocations: number; workgroupBytes: number }): string | null {
  const { BM, BN, BK, TM, TN } = c;
  if (![8, 16, 32].includes(BK)) return `BK ${BK}: 8, 16 or 32`;
  if (TM % 4 || TN % 4 || TM < 4 || TN < 4) return `thread tile ${TM}×${TN}: multiples of 4`;
  if (BM % TM || BN % TN) return `block ${BM}×${BN} is not a whole number of ${TM}×${TN} thread tiles`;
  // The XOR swizzle of A's tile changes a vec4 column's low 3 bits: a row needs whole groups of 8 vec4s.
  if (BM % 32 || BN % 4) return `block ${BM}×${BN}: BM a multiple of 32, BN of 4`;
  const threads = sweepThreads(c);
  if (threads < 32 || threads % 32) return `${threads} threads: a whole number of warps of 32`;
  if (((BM * BK) / 4) % threads || ((BK * BN) / 4) % threads) return `${threads} threads do not share the ${BM}×${BK} and ${BK}×${BN} tiles' vec4 loads evenly`;
  if (c.map === 'warp' && ((BN / TN) % 8 || (BM / TM) % 4)) return `warp map: the thread grid ${BN / TN}×${BM / TM} must be whole 8×4 patches`;
  if (c.group < 0 || !Number.isInteger(c.group)) return `group ${c.group}: a whole number, 0 for none`;
  if (limits) {
    if (threads > limits.invocations) return `${threads} threads, over this device's ${limits.invocations}`;
    if (sweepWorkgroupBytes(c) > limits.workgroupBytes) return `${sweepWorkgroupBytes(c)} bytes of workgroup memory, over this device's ${limits.workgroupBytes}`;
  }
  return null;
}

export function sweepShapeProblem(c: SweepConfig, s: SweepShape): string | null {
  if (s.M % c.BM || s.N % c.BN || s.K % c.BK) return `${s.M}×${s.N}×${s.K} is not a whole number of ${c.BM}×${c.BN}×${c.BK} blocks`;
  return null;
}

/** Workgroups to dispatch: [x, y] (a 2-D grid, or a 1-D list when blocks are grouped). */
export function sweepWorkgroups(c: SweepConfig, s: SweepShape): [number, number] {
  const nx = s.N / c.BN;
  const ny = s.M / c.BM;
  return c.group ? [nx * ny, 1] : [nx, ny];
}

/** The WGSL source of one configuration. Bindings: 0 uniforms (M, N, K), 1 A, 2 B, 3 C, all vec4 arrays. */
export function sweepWgsl(c: SweepConfig): string {
  const problem = sweepConfigProblem(c);
  if (problem) throw new Error(`matmul sweep config ${sweepName(c)}: ${problem}`);
  const { BM, BN, BK, TM, TN } = c;
  const threads = sweepThreads(c);
  const TX = BN / TN;
  const TY = BM / TM;
  const BM4 = BM / 4;
  const BN4 = BN / 4;
  const RQ = TM / 4; // row quads a thread holds
  const CQ = TN / 4; // column quads
  const LA = (BM * BK) / 4 / threads; // vec4 loads of A's tile per thread
  const LB = (BK * BN) / 4 / threads;
  const KQ = BK / 4;
  // A's tile is stored k-major (As[k][m]) from vec4s read along k, so a thread scatters 4 floats down 4 tile rows.
  // XORing tile row k's vec4 column by (k / 4)·(32 / BK) (below 8) puts a warp's 4 (BK 16) k-quads and its 8 row
  // values on 32 distinct banks; the reads find a row's vec4 by the same XOR.
  const swzMul = 32 / BK;
  const lines: string[] = [];
  const L = (s: string): void => void lines.push(s);
  L(`// generated by src/bench/matmul-sweep-wgsl.ts: ${sweepName(c)}`);
  L('struct P { M: u32, N: u32, K: u32, pad: u32 }');
  L('@group(0) @binding(0) var<uniform> p: P;');
  L('@group(0) @binding(1) var<storage, read> A: array<vec4<f32>>;');
  L('@group(0) @binding(2) var<storage, read> B: array<vec4<f32>>;');
  L('@group(0) @binding(3) var<storage, read_write> C: array<vec4<f32>>;');
  L(`const BM4 = ${BM4}u;`);
  L(`const BN4 = ${BN4}u;`);
  L(`var<workgroup> As: array<vec4<f32>, ${BK * BM4}>;`);
  L(`var<workgroup> Bs: array<vec4<f32>, ${BK * BN4}>;`);
  L(`fn swz(k: u32) -> u32 { return (k >> 2u) * ${swzMul}u; }`);
  L(`@compute @workgroup_size(${threads})`);
  L('fn main(@builtin(workgroup_id) wg: vec3u, @builtin(local_invocation_index) li: u32) {');
  if (c.map === 'row') {
    L(`  let tx = li % ${TX}u;`);
    L(`  let ty = li / ${TX}u;`);
  } else {
    // Warp w covers columns 8·(w % (TX/8)) … + 7 and rows 4·(w / (TX/8)) … + 3 of the thread grid: its B reads are
    // 8 consecutive vec4s (one 128-byte wavefront) and its A reads 4 distinct vec4s, against 16 and 2 for a row.
    L('  let lane = li % 32u;');
    L('  let w = li / 32u;');
    L(`  let tx = (w % ${TX / 8}u) * 8u + lane % 8u;`);
    L(`  let ty = (w / ${TX / 8}u) * 4u + lane / 8u;`);
  }
  L(`  let nx = p.N / ${BN}u;`);
  if (c.group) {
    // Groups of `group` block rows, column by column inside a group: the blocks running at once share B's columns and
    // a few rows of A in L2 instead of sweeping all of B for every block row.
    L('  let id = wg.x;');
    L(`  let perGroup = ${c.group}u * nx;`);
    L('  let first = (id / perGroup) * ' + `${c.group}u;`);
    L(`  let rows = min(p.M / ${BM}u - first, ${c.group}u);`);
    L('  let inGroup = id % perGroup;');
    L(`  let row0 = (first + inGroup % rows) * ${BM}u;`);
    L(`  let col0 = (inGroup / rows) * ${BN}u;`);
  } else {
    L(`  let row0 = wg.y * ${BM}u;`);
    L(`  let col0 = wg.x * ${BN}u;`);
  }
  L('  let K4 = p.K / 4u;');
  L('  let N4 = p.N / 4u;');
  L(`  let tiles = p.K / ${BK}u;`);
  for (let i = 0; i < RQ; i++) for (let r = 0; r < 4; r++) for (let j = 0; j < CQ; j++) L(`  var c${i}_${r}_${j} = vec4<f32>(0.0);`);
  // Tile loads: thread li's t-th vec4 of A's tile is v = li + t·threads, row v / KQ, k-quad v % KQ; of B's, row
  // v / BN4, column quad v % BN4.
  const fetch = (kExpr: string): void => {
    for (let t = 0; t < LA; t++) L(`    ra${t} = A[(row0 + (li + ${t * threads}u) / ${KQ}u) * K4 + (${kExpr}) / 4u + (li + ${t * threads}u) % ${KQ}u];`);
    for (let t = 0; t < LB; t++) L(`    rb${t} = B[(${kExpr} + (li + ${t * threads}u) / BN4) * N4 + col0 / 4u + (li + ${t * threads}u) % BN4];`);
  };
  for (let t = 0; t < LA; t++) L(`  var ra${t}: vec4<f32>;`);
  for (let t = 0; t < LB; t++) L(`  var rb${t}: vec4<f32>;`);
  L('  {');
  fetch('0u');
  L('  }');
  L('  for (var kt = 0u; kt < tiles; kt++) {');
  for (let t = 0; t < LA; t++) {
    L(`    { let v = li + ${t * threads}u; let m = v / ${KQ}u; let k = (v % ${KQ}u) * 4u; let s = swz(k);`);
    for (let e = 0; e < 4; e++) L(`      As[(k + ${e}u) * BM4 + ((m / 4u) ^ s) % BM4][m % 4u] = ra${t}[${e}];`);
    L('    }');
  }
  for (let t = 0; t < LB; t++) L(`    Bs[(li + ${t * threads}u) % ${BK * BN4}u] = rb${t};`);
  L('    workgroupBarrier();');
  L('    if (kt + 1u < tiles) {');
  L(`      let k0 = (kt + 1u) * ${BK}u;`);
  fetch('k0');
  L('    }');
  const step = (kk: string, indent: string): void => {
    for (let i = 0; i < RQ; i++) L(`${indent}let a${i} = As[${kk} * BM4 + ((ty + ${i * TY}u) ^ swz(${kk})) % BM4];`);
    for (let j = 0; j < CQ; j++) L(`${indent}let b${j} = Bs[${kk} * BN4 + (tx + ${j * TX}u) % BN4];`);
    const comp = ['x', 'y', 'z', 'w'];
    for (let i = 0; i < RQ; i++) for (let r = 0; r < 4; r++) for (let j = 0; j < CQ; j++) L(`${indent}c${i}_${r}_${j} = fma(vec4<f32>(a${i}.${comp[r]}), b${j}, c${i}_${r}_${j});`);
  };
  if (c.unroll) {
    for (let kk = 0; kk < BK; kk++) {
      L('    {');
      step(`${kk}u`, '      ');
      L('    }');
    }
  } else {
    L(`    for (var kk = 0u; kk < ${BK}u; kk++) {`);
    step('kk', '      ');
    L('    }');
  }
  L('    workgroupBarrier();');
  L('  }');
  for (let i = 0; i < RQ; i++) {
    for (let r = 0; r < 4; r++) {
      for (let j = 0; j < CQ; j++) L(`  C[(row0 + (ty + ${i * TY}u) * 4u + ${r}u) * N4 + col0 / 4u + tx + ${j * TX}u] = c${i}_${r}_${j};`);
    }
  }
  L('}');
  return lines.join('\n');
}

/**
 * The grid the device kit measures, most informative first: the production kernel's design (128×128×16, 8×8 in two
 * vec4 sub-tiles per direction, a row of threads) written out, then one change at a time (the loop instead of the
 * unrolled steps, the warp map, the K step, the block order), then larger thread tiles (cuBLAS's fp32 kernels hold
 * 8×16 or 16×8 per thread), then smaller blocks (more workgroups per SM).
 */
export function sweepGrid(): SweepConfig[] {
  const base: SweepConfig = { BM: 128, BN: 128, BK: 16, TM: 8, TN: 8, map: 'row', unroll: true, group: 0 };
  const w = { ...base, map: 'warp' as const };
  return [
    base,
    { ...base, unroll: false },
    w,
    { ...w, BK: 8 },
    { ...w, BK: 32 },
    { ...w, group: 8 },
    { ...w, BK: 8, group: 8 },
    { ...w, BN: 256, TN: 16 },
    { ...w, BM: 256, TM: 16 },
    { ...w, BN: 256, TN: 16, BK: 8 },
    { ...w, BM: 256, TM: 16, BK: 8 },
    { ...w, BN: 256, TN: 16, group: 8 },
    { ...w, BM: 64, BN: 128 },
    { ...w, BM: 128, BN: 64, TN: 4 },
    { ...w, BM: 64, BN: 64, TM: 4, TN: 4 },
    { ...base, BK: 8 },
  ];
}
