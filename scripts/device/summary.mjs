// The key figures of a bench.jsonl written by scripts/device/h200-speed.sh, compact enough to survive in the device
// tool's 12,000-character output tail (the file itself comes back whole). Usage: node scripts/device/summary.mjs FILE

import { readFileSync } from 'node:fs';
import { pathToFileURL } from 'node:url';

const tf = (gflops) => (typeof gflops === 'number' ? (gflops / 1000).toFixed(gflops < 1000 ? 3 : 1) : '-');
const shape = (r) => `${r.M}x${r.N}x${r.K}`;

/** Parses the lines, tolerating anything that is not JSON (kept as {raw}). */
export function parseLines(text) {
  return text
    .split('\n')
    .filter((l) => l.trim())
    .map((l) => {
      try {
        return JSON.parse(l);
      } catch {
        return { raw: l };
      }
    });
}

/** Groups the lines under the {"device":"step"} line that precedes them (the last attempt of each step wins). */
export function groupSteps(records) {
  const steps = new Map();
  let current = null;
  for (const r of records) {
    if (r.device === 'step') {
      current = { name: r.step, argv: r.argv, skipped: r.skipped, lines: [], end: null };
      steps.set(r.step, current);
    } else if (r.device === 'step-end') {
      if (current) current.end = r;
    } else if (current) current.lines.push(r);
  }
  return [...steps.values()];
}

// The tiled kernels' short names in matmul cells ('tiled' for the rest).
const MATMUL_KERNEL_LABELS = { 'tiled-fixed': 'fixed', 'tiled-warp': 'warp', 'tiled-k32': 'k32', 'tiled-warp-k32': 'warpk32' };

function matmulLines(lines) {
  const out = [];
  // tiled[n] / tiled[w]: the block the kernel chose (narrow, wide); a * marks the other block, forced; tiled2: two
  // stages of workgroup tiles.
  const label = (r) =>
    r.kernel === 'basic' || r.kernel === 'skinny'
      ? r.kernel
      : `${MATMUL_KERNEL_LABELS[r.kernel] ?? 'tiled'}${r.stages === 2 ? '2' : ''}[${String(r.block ?? '?')[0]}${r.blockForced ? '*' : ''}]`;
  const variant = (v) =>
    String(v)
      .replace(/^plain fp32.*/, 'plain')
      .replace(/^(forward|backward|both transposed) /, '')
      .replace(/, W bf16$/, '_bf16')
      .replace(/, W f16$/, '_f16')
      .replaceAll(' ', '');
  const rows = new Map();
  let worstDiff = 0;
  for (const r of lines.filter((l) => l.bench === 'matmul')) {
    const key = `${shape(r)} ${variant(r.variant)}`;
    if (!rows.has(key)) rows.set(key, []);
    rows.get(key).push(`${label(r)} ${tf(r.gflops)}`);
    if (typeof r.diffVsBasic === 'number') worstDiff = Math.max(worstDiff, r.diffVsBasic);
  }
  for (const [key, cells] of rows) out.push(`  ${key}: ${cells.join(' | ')}`);
  out.push(`  TFLOP/s; [n]/[w] the block chosen, * the other one forced, tiled2 two stages; largest diffVsBasic ${worstDiff.toExponential(2)} (above 1e-5 is a bug)`);
  return out;
}

// "fwd-dq/tiled[w*]": the forward with double-quantised scales on the tiled kernel, the wide block forced ([n]: the
// narrow block, no star: the block the shape chooses; lines of before 2026-12-04 carry no block, and may be two-stage).
function nf4Label(r) {
  const v = r.variant;
  if (/^plain fp32/.test(v)) return 'plain';
  const kind = /^nf4 forward/.test(v) ? 'fwd' : /^nf4 backward/.test(v) ? 'bwd' : v;
  const dq = v.includes(', double-quant') ? '-dq' : '';
  // "deq-first": the whole weight dequantised to f32, then the plain GEMM (since 2026-12-07).
  if (r.dequantFirst) return `${kind}${dq}/deq-first`;
  if (!v.includes(', tiled')) return `${kind}${dq}`;
  const two = v.includes(', two stages') ? '2' : '';
  const block = r.block ? `[${r.block[0]}${r.blockForced ? '*' : ''}]` : '';
  // "@store": the weights dequantised at the tile store, as before 2026-12-04 (late), the A/B of the default; "k32": a
  // K step of 32.
  return `${kind}${dq}/tiled${two}${block}${r.dequantAtStore ? '@store' : ''}${r.kStep === 32 ? 'k32' : ''}`;
}

// " (0.93–0.97)": the least and greatest of a paired ratio's rounds (engine/timing.ts timePaired); nothing without them.
function spread(rounds) {
  if (!Array.isArray(rounds) || rounds.length < 2) return '';
  return ` (${Math.min(...rounds).toFixed(2)}–${Math.max(...rounds).toFixed(2)})`;
}

function nf4Lines(lines) {
  const out = [];
  const byShape = new Map();
  let worstDiff = 0;
  for (const r of lines.filter((l) => l.bench === 'nf4')) {
    const k = shape(r);
    if (!byShape.has(k)) byShape.set(k, []);
    // Tiled products since 2026-12-04 (late): their ratio to the plain product timed beside them, and its rounds' spread.
    // The dequantised-at-the-store line: its ratio to the default arrangement timed beside it.
    // The K step of 32's line: its ratio to the 16-step product timed beside it.
    const ratio = r.vsPlainRounds
      ? ` ×${r.vsPlain.toFixed(2)}${spread(r.vsPlainRounds)}`
      : r.vsDefaultRounds
        ? ` vsDefault ×${r.vsDefault.toFixed(2)}${spread(r.vsDefaultRounds)}`
        : r.vsKStep16Rounds
          ? ` vsK16 ×${r.vsKStep16.toFixed(2)}${spread(r.vsKStep16Rounds)}`
          : '';
    const deq = typeof r.dequantMs === 'number' ? ` deq ${r.dequantMs.toFixed(3)} ms` : '';
    byShape.get(k).push(`${nf4Label(r)} ${tf(r.gflops)}${ratio}${deq}`);
    if (typeof r.diffVsBasic === 'number') worstDiff = Math.max(worstDiff, r.diffVsBasic);
  }
  for (const [k, cells] of byShape) out.push(`  ${k}: ${cells.join(' | ')}`);
  out.push(`  TFLOP/s; [n]/[w] the block, * forced against the shape's choice; largest diffVsBasic ${worstDiff.toExponential(2)}`);
  return out;
}

const pct = (x) => (typeof x === 'number' ? `${(100 * x).toFixed(1)} %` : '?');

function line(r) {
  switch (r.bench) {
    case 'adapter':
      return `  adapter: ${r.via} ${r.vendor} ${r.description ?? ''} gemm=${r.gemm} attention=${r.attention ?? 'rows'}${r.loraKernel && r.loraKernel !== 'general' ? ` lora=${r.loraKernel}` : ''}${r.baseMatmul && r.baseMatmul !== 'fp32' ? ` base=${r.baseMatmul}` : ''}${r.tiledStages === 2 ? ' stages=2' : ''}${r.robustness === false ? ' no-robustness' : ''}${r.attentionSpill === false ? ' no-attention-spill' : ''}${r.loraEpilogue === false ? ' no-lora-epilogue' : ''}`;
    case 'attention':
      return `  attention ${r.variant} T=${r.T}: ${tf(r.gflops)} TFLOP/s, ${r.ms?.toFixed(2)} ms${r.vsRows ? `, vsRows ${r.vsRows.toFixed(2)}` : ''}${r.subgroups ? ', subgroup row max' : ''}${r.vsSubgroups ? `, vsSubgroups ${r.vsSubgroups.toFixed(2)}` : ''}${r.vsTiled ? `, vsTiled ${r.vsTiled.toFixed(2)}` : ''}${r.vsPlainMatmul ? `, vsPlainMatmul ${r.vsPlainMatmul.toFixed(2)}${spread(r.vsPlainMatmulRounds)} (${r.plainMatmulKernel})` : ''}${r.sameBits === false ? ', BITS DIFFER from backward-tiled' : ''}`;
    case 'kernel':
      return `  kernel T=${r.T} ${r.kernel}: ${r.gflops !== undefined ? `${tf(r.gflops)} TFLOP/s` : `${r.gbps?.toFixed(0)} GB/s`}, ${r.ms?.toFixed(3)} ms${r.vsPlain ? `, vsPlain ${r.vsPlain.toFixed(3)}${spread(r.vsPlainRounds)}` : ''}, ${r.timeVsPlainMatmul?.toFixed(2)}× the plain matmul's time`;
    case 'layer':
      return `  layer T=${r.T}: ${r.tokensPerSecond?.toFixed(0)} tokens/s, ${r.ms?.toFixed(1)} ms, ${tf(r.gflops)} TFLOP/s, vsMatmulCeiling ${r.vsMatmulCeiling?.toFixed(3)}, plain ${tf(r.plainMatmulGflops)}${typeof r.dispatches === 'number' ? `, ${r.dispatches} dispatches` : ''}`;
    case 'profile':
      return `  profile T=${r.T} ${r.part}: ${r.kernel} ×${r.dispatches}, ${r.ms?.toFixed(2)} ms, ${pct(r.share)}`;
    case 'profile-summary':
      return `  profile T=${r.T}: ${r.kernelMs?.toFixed(1)} ms in ${r.dispatches} dispatches (layer unprofiled ${r.layerMs?.toFixed(1)} ms); ${Object.entries(r.parts ?? {})
        .map(([part, p]) => `${part} ${p.ms.toFixed(1)} ms ${pct(p.share)}`)
        .join(', ')}`;
    case 'matmul-sweep':
      return `  sweep ${shape(r)} ${r.config}: ${r.skipped ? `skipped: ${r.skipped}` : `${tf(r.gflops)} TFLOP/s, vsTiled ${r.vsTiled?.toFixed(2)}${spread(r.vsTiledRounds)}${r.agrees === false ? `, DISAGREES with the tiled kernel (${r.diffVsTiled?.toExponential(2)})` : ''}`}`;
    case 'model-estimate':
      return `  model-estimate T=${r.T}: ${r.tokensPerSecond?.toFixed(0)} tokens/s (${r.basis})`;
    case 'int8':
      return `  int8 ${shape(r)} ${r.variant}: ${r.gbps !== undefined ? `${r.gbps.toFixed(1)} GB/s` : `${tf(r.gflops)} TFLOP/s`}${r.vsPlain ? `, vsPlain ${r.vsPlain.toFixed(2)}` : ''}${r.vsFp32 ? `, vsFp32 ${r.vsFp32.toFixed(2)}` : ''}${r.relError !== undefined ? `, relError ${r.relError.toExponential(2)}` : ''}${r.vsDp4a ? `, vsDp4a ${r.vsDp4a.toFixed(2)}` : ''}${r.bitsDiffer !== undefined ? (r.bitsDiffer === 0 ? ', same bits as dp4a' : `, ${r.bitsDiffer} OUTPUTS DIFFER FROM DP4A`) : ''}`;
    case 'tune':
      return `  tune T=${r.T} ${r.gemm}/${r.attention}/${r.lora ?? 'general'}: ${typeof r.ms === 'number' ? `${r.ms.toFixed(1)} ms, ${r.layerTokensPerSecond?.toFixed(0)} tokens/s per layer, vsFirst ${r.vsFirst?.toFixed(2)}` : 'not timed'}, relDiff ${r.relDiff?.toExponential(2)}${r.agrees ? '' : ' DISAGREES'}`;
    case 'tune-choice':
      return `  tune T=${r.T} choice: ${r.gemm}/${r.attention}/${r.lora ?? 'general'}, speedup ${r.speedup?.toFixed(2)}${r.refused?.length ? `, refused ${r.refused.map((k) => `${k.gemm}/${k.attention}/${k.lora ?? 'general'}`).join(', ')}` : ''}${r.staged ? `; staged run: ${r.staged.gemm}/${r.staged.attention}/${r.staged.lora}, speedup ${r.stagedSpeedup?.toFixed(2)}${r.stagedAgrees ? ' (same)' : ' (DIFFERS from the full grid)'}` : ''}`;
    case 'estimate':
      return `  estimate T=${r.T} (${r.layers} layers${r.streamed ? ', streamed' : ''}): ${r.estimateSeconds?.toFixed(2)} s estimated${r.streamed ? ` (uploads ${r.uploadSeconds?.toFixed(2)} s: ${r.uploads?.perTrainingPass} × ${(1000 * r.uploads?.seconds).toFixed(1)} ms)` : ''}, ${r.stepSeconds?.toFixed(2)} s measured per step, ratio ${r.ratio?.toFixed(2)}${r.validationSeconds ? `; validation pass ${r.validationEstimateSeconds?.toFixed(2)} s estimated, ${r.validationSeconds.toFixed(2)} s measured, ratio ${r.validationRatio?.toFixed(2)}, forward share ${r.forwardShare?.toFixed(2)}` : ''}`;
    case 'dispatch':
      return `  dispatch ${r.work}${r.work === 'layer' ? ` C=${r.C} T=${r.T}` : ''} bind groups ${r.bindGroups}: ${r.hostUsPerDispatch?.toFixed(1)} µs host per dispatch${r.hostSpeedup ? ` (${r.hostSpeedup.toFixed(2)}× per-dispatch)` : ''}${typeof r.wallMsPerLayer === 'number' ? `, ${r.hostMsPerLayer?.toFixed(2)} ms host / ${r.wallMsPerLayer.toFixed(2)} ms wall per layer` : ''}`;
    case 'model':
      return `  model T=${r.T} ${r.mode ?? ''} kept=${r.keptLayers ?? '-'}${r.keptAttention ? '+attention' : ''}: ${r.stepMs?.toFixed(0)} ms/step${Array.isArray(r.stepMsEach) && r.stepMsEach.length > 1 ? ` (median of ${r.stepMsEach.map((m) => m.toFixed(0)).join(', ')})` : ''}, ${r.tokensPerSecond?.toFixed(1)} tokens/s, ${r.tflops?.toFixed(2)} TFLOP/s, peak ${(r.peakBytes / 1024 ** 3).toFixed(2)} GiB, losses ${JSON.stringify(r.losses)}`;
    case 'padding':
      return `  padding ${r.paddingFree ? 'free' : 'padded'} mb=${r.microBatchSize}: ${r.tokens} real tokens in ${r.computedTokens} computed (${r.rows} rows), ${r.ms?.toFixed(0)} ms (rounds ${(r.msEach ?? []).map((m) => m.toFixed(0)).join(', ')}), ${r.tokensPerSecond?.toFixed(1)} real tokens/s, first loss ${r.firstLoss}`;
    case 'validation':
      return `  validation ${r.layout}: ${r.passes} passes of ${r.rows} rows, ${r.tokens} real tokens in ${r.computedTokens} computed, ${r.ms?.toFixed(0)} ms (rounds ${(r.msEach ?? []).map((m) => m.toFixed(0)).join(', ')}), ${r.tokensPerSecond?.toFixed(1)} real tokens/s, loss ${r.loss}`;
    case 'validation-summary':
      return `  packed validation: ${r.speedup?.toFixed(2)}× real tokens/s, loss differs by ${r.lossRelativeDifference?.toExponential(2)}`;
    case 'head':
      return `  head on ${r.head} tokens, ${r.layout}: ${r.headTokens} of ${r.computedTokens} computed tokens, ${r.ms?.toFixed(0)} ms (rounds ${(r.msEach ?? []).map((m) => m.toFixed(0)).join(', ')}), ${r.tokensPerSecond?.toFixed(1)} real tokens/s, first loss ${r.firstLoss}`;
    case 'head-summary':
      return `  head on counted tokens (${(100 * r.countedShare).toFixed(0)} % of them): ${r.speedup?.toFixed(2)}× real tokens/s, first loss differs by ${r.firstLossRelativeDifference?.toExponential(2)}, peak ${(r.peakBytes / 1e9).toFixed(2)} GB`;
    case 'padding-summary':
      return `  padding-free: ${r.speedup?.toFixed(2)}× real tokens/s, ${r.computedRatio?.toFixed(2)}× fewer tokens computed, first loss differs by ${r.firstLossRelativeDifference?.toExponential(2)}`;
    default:
      break;
  }
  if (r.device === 'gpu-info') {
    const sm = r.int8SubgroupMatrix;
    return `  gpu-info ${r.adapter?.description ?? r.adapter?.device ?? ''} (${r.via}): int8 subgroup matrix ${sm?.available ? 'available' : `unavailable: ${sm?.why}`}${r.memory ? `; ${r.memory.note}` : ''}`;
  }
  if (r.device === 'check') {
    const bad = Object.entries(r.groups ?? {})
      .filter(([, g]) => !g.ok)
      .map(([n, g]) => `${n} worst ${g.worst} at ${g.where}`);
    const int8 = Object.entries(r.int8 ?? {})
      .map(([choice, g]) => `; ${choice} gates ok=${g.ok}: loss relError ${g.loss.relError.toExponential(2)}, grad cosine worst ${g.gradCosine.worst.toFixed(5)} all ${g.gradCosine.all.toFixed(5)}`)
      .join('');
    return `  check ${r.quantization}: ok=${r.ok}, loss ${r.loss?.engine} vs ${r.loss?.golden}${bad.length ? `; FAILED: ${bad.join('; ')}` : ''}${int8}`;
  }
  if (r.raw !== undefined) return `  ${r.raw.slice(0, 160)}`;
  return `  ${JSON.stringify(r).slice(0, 200)}`;
}

export function summarise(text) {
  const records = parseLines(text);
  const out = [];
  const header = records.find((r) => r.device === 'header');
  if (header) out.push(`${header.gpu} | commit ${String(header.commit).slice(0, 10)}${header.dirty ? '+dirty' : ''} | ${header.date}${header.smoke ? ' | SMOKE' : ''}`);
  for (const s of groupSteps(records)) {
    const status = s.skipped ? 'skipped (budget)' : s.end ? `exit ${s.end.exit}, ${s.end.seconds}s` : 'no end line';
    out.push(`[${s.name}] ${status}`);
    const adapter = s.lines.find((l) => l.bench === 'adapter');
    if (adapter) out.push(line(adapter));
    if (s.lines.some((l) => l.bench === 'matmul')) out.push(...matmulLines(s.lines));
    if (s.lines.some((l) => l.bench === 'nf4')) out.push(...nf4Lines(s.lines));
    for (const l of s.lines) if (!['adapter', 'matmul', 'nf4'].includes(l.bench)) out.push(line(l));
  }
  return out.join('\n');
}

if (process.argv[1] && pathToFileURL(process.argv[1]).href === import.meta.url) {
  console.log('=== summary (TFLOP/s = gflops / 1000)');
  console.log(summarise(readFileSync(process.argv[2], 'utf8')));
}
