// The SPIR-V reader behind `bench clamps` (src/bench/spirv-loops.ts), on a dump Dawn made of a small shader whose
// clamps are known (test/fixtures/spirv/clamps-probe.wgsl says which), and on the splitting of a dump stream.
import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { clampsFromDump, HOT_MULTIPLIES, spirvMarker } from '../../../src/bench/clamps.ts';
import { SPIRV_DUMP_MARK, spirvModuleClamps, splitSpirvDump } from '../../../src/bench/spirv-loops.ts';

const probe = readFileSync(new URL('../../fixtures/spirv/clamps-probe.spvasm', import.meta.url), 'utf8');

describe('spirvModuleClamps', () => {
  const mod = spirvModuleClamps(probe);

  it('names the WGSL entry point, not the wrapper Tint writes', () => {
    expect(mod.entry).toBe('probe');
  });

  it('finds both loops, and the clamp a called function puts on a workgroup read through its parameter', () => {
    expect(mod.loops).toHaveLength(2);
    const [first, second] = mod.loops;
    // t[k·4] is proven in range (a counter times a constant), at(k)'s t[i] is not: one clamp, in the callee.
    expect(first).toMatchObject({ fn: 'probe_inner', multiplies: 4, workgroup: 1, storage: 0, other: 0 });
    // a[k] is a runtime-sized storage array: clamped to its length, whatever k.
    expect(second).toMatchObject({ fn: 'probe_inner', multiplies: 1, workgroup: 0, storage: 1, other: 0 });
  });

  it('counts no clamp once the robustness pass is gone (the same module with its UMin instructions removed)', () => {
    // Replacing each clamp by its index operand is what disable_robustness compiles.
    const unclamped = probe.replace(/^(\s*%[\w.]+) = OpExtInst %uint %\w+ UMin (%[\w.]+) %[\w.]+$/gm, '$1 = OpCopyObject %uint $2');
    expect(unclamped).not.toMatch(/UMin/);
    expect(spirvModuleClamps(unclamped).loops.map((l) => l.workgroup + l.storage)).toEqual([0, 0]);
  });
});

describe('splitSpirvDump and clampsFromDump', () => {
  // What `bench spirv` prints: a marker per pipeline, then Dawn's "info:" blocks (WGSL, then SPIR-V).
  const stream = [
    spirvMarker('setup'),
    'info:',
    '// Dumped WGSL:',
    '@compute @workgroup_size(1) fn setup() {}',
    'info:',
    SPIRV_DUMP_MARK,
    probe,
    spirvMarker('the probe'),
    'info:',
    SPIRV_DUMP_MARK,
    probe,
    'info:',
    SPIRV_DUMP_MARK,
    probe,
  ].join('\n');

  it('gives each marker the modules printed after it, and no WGSL', () => {
    const pieces = splitSpirvDump(stream, (l) => l.startsWith('{"bench":"spirv"'));
    expect(pieces.map((p) => p.modules.length)).toEqual([1, 2]);
    expect(pieces[1].modules[0]).toContain('OpEntryPoint');
    expect(pieces.flatMap((p) => p.modules).some((m) => m.includes('Dumped WGSL'))).toBe(false);
  });

  it('reports each module of a pipeline (not the setup) with its hot loops only', () => {
    const { results, pipelines } = clampsFromDump(stream);
    expect(pipelines).toBe(1);
    expect(results.map((r) => r.pipeline)).toEqual(['the probe', 'the probe']);
    // The first loop's four multiply-adds make it hot; the second's one does not, so its storage clamp is not summed.
    expect(HOT_MULTIPLIES).toBe(4);
    expect(results[0]).toMatchObject({ entry: 'probe', hotLoops: 1, mostMultiplies: 4, workgroupClamps: 1, storageClamps: 0, otherClamps: 0 });
    expect(results[0].loops).toHaveLength(1);
  });
});
