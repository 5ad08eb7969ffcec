// Reads Tint's SPIR-V disassembly (what Dawn prints with its dump_shaders toggle) and finds, in each innermost loop,
// the index clamps WGSL's robustness put there. Why it matters (docs/performance.md, "Bounds clamps"): Tint clamps
// every array index it cannot prove in range (`UMin(i, length − 1)`), so a shared-memory read inside a GEMM's
// multiply-accumulate loop costs one more integer instruction per read; on the H200 the kernels without any clamps
// (`--no-robustness`) ran a layer 1.085× faster (2026-11-30; 1.01× once the hot loops were written this way). A
// browser always compiles with robustness, so the kernels are written for the clamps to fall out: Tint's range
// analysis proves offsets built from loop counters with constant bounds, invocation ids, constants and `%`/`/` by
// constants, but not through `^`, `&` or a function's parameters.
//
// The reading is structural and small: functions (OpFunction … OpFunctionEnd), blocks (OpLabel), loops (a header
// block holding OpLoopMerge, up to its merge block in Tint's structured order), and per loop the clamps (UMin results
// used as an index of an OpAccessChain) and fused multiply-adds, counting those of the functions the loop calls.

export interface LoopClamps {
  /** The function the loop is in (its WGSL name: the dump keeps symbols). */
  fn: string;
  /** The loop header's block id. */
  header: string;
  /** Fma and float multiply instructions per iteration (vector or scalar), the loop's calls included. */
  multiplies: number;
  /** Clamped indices into workgroup memory per iteration. */
  workgroup: number;
  /** Clamped indices into storage buffers per iteration. */
  storage: number;
  /** Clamped indices into function-local arrays and vectors per iteration. */
  other: number;
}

export interface SpirvModuleClamps {
  /** The entry point's WGSL name (Tint renames the entry itself; the function it calls keeps `<entry>_inner`). */
  entry: string;
  /** Every innermost loop (one with no loop inside it in the same function). */
  loops: LoopClamps[];
}

const DEF = /^\s*(%[\w.]+)\s*=\s*(\w+)\s*(.*)$/;

function ids(rest: string): string[] {
  return rest.split(/\s+/).filter((t) => t.startsWith('%'));
}

interface Tally {
  multiplies: number;
  workgroup: number;
  storage: number;
  other: number;
  calls: string[];
}

const ZERO = (): Tally => ({ multiplies: 0, workgroup: 0, storage: 0, other: 0, calls: [] });

/** One module's disassembly (the text after Dawn's "Dumped SPIRV disassembly" line). */
export function spirvModuleClamps(spirv: string): SpirvModuleClamps {
  const lines = spirv.split('\n');
  const names = new Map<string, string>();
  const roots = new Map<string, 'workgroup' | 'storage' | 'other'>();
  const clamps = new Set<string>();
  const bodies = new Map<string, { name: string; lines: string[] }>();
  let entryFn = '';
  let body: string[] | null = null;
  for (const line of lines) {
    const name = /^\s*OpName\s+(%[\w.]+)\s+"([^"]*)"/.exec(line);
    if (name) names.set(name[1], name[2]);
    const entry = /^\s*OpEntryPoint\s+\w+\s+(%[\w.]+)/.exec(line);
    if (entry) entryFn = entry[1];
    const m = DEF.exec(line);
    if (m?.[2] === 'OpFunction') {
      body = [];
      bodies.set(m[1], { name: names.get(m[1]) ?? m[1], lines: body });
      continue;
    }
    if (/^\s*OpFunctionEnd\b/.test(line)) {
      body = null;
      continue;
    }
    if (m?.[2] === 'OpVariable') roots.set(m[1], /\bWorkgroup\b/.test(m[3]) ? 'workgroup' : /\bStorageBuffer\b/.test(m[3]) ? 'storage' : 'other');
    // Ids are defined before use in a function, but a callee may come after its caller: collect every clamp first.
    if (m?.[2] === 'OpExtInst' && /\bUMin\b/.test(m[3])) clamps.add(m[1]);
    body?.push(line);
  }
  // Function parameters that are pointers (a callee's view of the caller's array) count as "other" roots.
  const tally = (block: readonly string[]): Tally => {
    const t = ZERO();
    for (const line of block) {
      const m = DEF.exec(line);
      if (!m) continue;
      const [, id, op, rest] = m;
      if ((op === 'OpExtInst' && /\bFma\b/.test(rest)) || op === 'OpFMul' || op === 'OpVectorTimesScalar') t.multiplies++;
      else if (op === 'OpFunctionCall') t.calls.push(ids(rest)[1]);
      else if (op === 'OpAccessChain' || op === 'OpInBoundsAccessChain') {
        const [, base, ...index] = ids(rest);
        const root = roots.get(base) ?? 'other';
        roots.set(id, root);
        t[root] += index.filter((i) => clamps.has(i)).length;
      } else if (op === 'OpVectorExtractDynamic' || op === 'OpVectorInsertDynamic') {
        t.other += ids(rest).filter((i) => clamps.has(i)).length;
      }
    }
    return t;
  };
  const own = new Map<string, Tally>();
  for (const [id, f] of bodies) own.set(id, tally(f.lines));
  const withCalls = (t: Tally, seen: Set<string>): Tally => {
    const sum = { ...t, calls: [] };
    for (const callee of t.calls) {
      const c = own.get(callee);
      if (!c || seen.has(callee)) continue;
      const s = withCalls(c, new Set([...seen, callee]));
      sum.multiplies += s.multiplies;
      sum.workgroup += s.workgroup;
      sum.storage += s.storage;
      sum.other += s.other;
    }
    return sum;
  };
  const loops: LoopClamps[] = [];
  for (const f of bodies.values()) {
    const labelAt = new Map<string, number>();
    f.lines.forEach((line, i) => {
      const m = DEF.exec(line);
      if (m?.[2] === 'OpLabel') labelAt.set(m[1], i);
    });
    f.lines.forEach((line, i) => {
      const merge = /^\s*OpLoopMerge\s+(%[\w.]+)/.exec(line);
      if (!merge) return;
      let start = i;
      while (start > 0 && DEF.exec(f.lines[start])?.[2] !== 'OpLabel') start--;
      const region = f.lines.slice(start, labelAt.get(merge[1]) ?? f.lines.length);
      if (region.filter((l) => /^\s*OpLoopMerge\b/.test(l)).length > 1) return; // not innermost
      const t = withCalls(tally(region), new Set());
      loops.push({ fn: f.name, header: DEF.exec(f.lines[start])?.[1] ?? '', multiplies: t.multiplies, workgroup: t.workgroup, storage: t.storage, other: t.other });
    });
  }
  // The entry point is a wrapper Tint writes; the WGSL entry is the function it calls, `<name>_inner`.
  const wrapper = own.get(entryFn);
  const inner = wrapper?.calls.map((c) => bodies.get(c)?.name ?? '').find((n) => n.endsWith('_inner'));
  const entry = inner ? inner.slice(0, -'_inner'.length) : (bodies.get(entryFn)?.name ?? '');
  return { entry, loops };
}

/** Dawn's marker before each pipeline's disassembly. */
export const SPIRV_DUMP_MARK = '/* Dumped SPIRV disassembly */';

/**
 * Splits what a process with dump_shaders printed into pieces: `marker` lines (our own, one per pipeline we asked to
 * compile) and the SPIR-V modules Dawn printed after each. Dawn's WGSL dumps and its "info:" prefixes are skipped.
 */
export function splitSpirvDump(text: string, isMarker: (line: string) => boolean): { marker: string; modules: string[] }[] {
  const out: { marker: string; modules: string[] }[] = [];
  let module: string[] | null = null;
  const end = (): void => {
    if (module && out.length) out[out.length - 1].modules.push(module.join('\n'));
    module = null;
  };
  for (const line of text.split('\n')) {
    if (isMarker(line)) {
      end();
      out.push({ marker: line, modules: [] });
    } else if (line.trim() === SPIRV_DUMP_MARK) {
      end();
      module = [];
    } else if (/^info:\s*$/.test(line) || line.startsWith('// Dumped WGSL')) {
      end();
    } else {
      module?.push(line);
    }
  }
  end();
  return out;
}
