// The tensor-core int8 kernel (shaders/int8_matmul_sm.wgsl). No adapter here offers subgroup matrices, so it cannot
// run in this tier; what can be checked here is checked:
// - every variant passes Dawn's WGSL validation and pipeline creation (subgroup-matrix types and configurations,
//   uniformity, the 16 KiB workgroup-memory minimum, the workgroup size against the largest subgroup) on Dawn's null
//   backend, which offers the feature with the allow_unsafe_apis toggle and runs nothing — in a child process
//   (test/helpers/null-backend-int8.mjs says why);
// - a context on an adapter without the feature refuses the kernel and says why, and never dispatches it;
// - the probe that must pass on a real device before the kernel is used (int8-kernel-check.ts) runs every int8
//   product on ragged shapes with non-zero outputs and compares them bit for bit;
// - the kernel's own logic (tile loads and layouts, matrix offsets, strides and majorness, the stripe loop and the
//   split of tiles among subgroups, the epilogue, the ragged edges) gives the DP4A kernel's outputs bit for bit on
//   SwiftShader, with only its four subgroup-matrix operations replaced by plain WGSL that does what Dawn does with
//   them (test/helpers/subgroup-matrix-emulation.ts), through that same probe;
// - that emulation computes the product Dawn's own end2end test expects, laid out as that test lays it out (i8 values
//   packed four to an i32 word, offsets and strides counted in words), and Dawn's validator takes those offsets and
//   strides and refuses the same numbers in bytes (the kernel's bug until 2026-11-30: docs/int8.md).
// Whether Dawn and the driver do what the specification says is proven on a GPU that has the feature: the context's
// own probe refuses the kernel if any bit differs, and the device kit's int8-sm steps (docs/int8.md).
import { execFile } from 'node:child_process';
import { promisify } from 'node:util';
import { beforeAll, describe, expect, it } from 'vitest';
import { findNodeAdapter } from '../../src/cli/node-gpu.ts';
import { FinetuneError } from '../../src/core/errors.ts';
import { GpuContext } from '../../src/engine/gpu.ts';
import { compareInt8Kernels } from '../../src/engine/int8-kernel-check.ts';
import { int8_gemm, int8RowsBytes } from '../../src/engine/kernels/int8_matmul.ts';
import type { Defines } from '../../src/engine/preprocess.ts';
import { KernelRegistry } from '../../src/engine/registry.ts';
import { shaderNeeds, shaderSources } from '../../src/engine/shaders.ts';
import { SUBGROUP_MATRIX_FEATURE } from '../../src/engine/subgroup-matrix.ts';
import { dawnProductShader } from '../helpers/dawn-subgroup-product.ts';
import { emulateSubgroupMatrices } from '../helpers/subgroup-matrix-emulation.ts';
import { runOneWorkgroup } from '../helpers/one-workgroup.ts';
import { gpuContext } from './context.ts';

const VARIANTS: Defines[] = [{}, { NF4: true }, { NF4: true, DQ: true }, { NF4: true, BACKWARD: true }, { NF4: true, BACKWARD: true, DQ: true }];

/** What test/helpers/null-backend-int8.mjs learns from Dawn's null backend (validation only, nothing executes). */
interface NullBackendAnswers {
  featureOffered: boolean;
  maxComputeWorkgroupStorageSize: number;
  subgroupMaxSize: number;
  /** Each variant's pipeline: null when made, else the registry's error. */
  variants: { defines: Defines; error: string | null }[];
  /** The broken copies' errors (null: not refused). */
  refusals: { wrong_type: string | null; too_big: string | null };
  /** Dawn's product shader's compiler errors, per order and units. */
  layout: { major: 'row_major' | 'col_major'; units: 'words' | 'bytes'; errors: string[] }[];
}

let answers: Promise<NullBackendAnswers> | null = null;

/** The child's answers, asked once for the file; a child that dies fails the test that asked, with its stderr. */
function nullBackend(): Promise<NullBackendAnswers> {
  answers ??= promisify(execFile)(process.execPath, ['test/helpers/null-backend-int8.mjs'], { timeout: 300_000, maxBuffer: 16 << 20 }).then(
    ({ stdout }) => JSON.parse(stdout.trim().split('\n').at(-1) ?? '') as NullBackendAnswers,
    (e: { message: string; stderr?: string }) => {
      throw new Error(`the null-backend child failed: ${e.message}\n${(e.stderr ?? '').slice(-2000)}`);
    },
  );
  return answers;
}

/** Dawn's Matrix::Fill for a signed matrix of `rows` × `cols`: values rotating through nine, laid out in `major` order. */
function dawnFill(rows: number, cols: number, valueOffset: number, major: 'row_major' | 'col_major'): { values: number[][]; bytes: Int8Array } {
  const kSIntValues = [-43, -32, -21, -10, 0, 10, 21, 32, 43];
  const values: number[][] = [];
  const bytes = new Int8Array(rows * cols);
  for (let r = 0; r < rows; r++) {
    values.push([]);
    for (let c = 0; c < cols; c++) {
      const v = kSIntValues[(valueOffset + c + r * cols) % 9];
      values[r].push(v);
      bytes[major === 'col_major' ? c * rows + r : c + r * cols] = v;
    }
  }
  return { values, bytes };
}

describe('the subgroup-matrix int8 kernel', () => {
  let ctx: GpuContext;
  beforeAll(async () => {
    ctx = await gpuContext();
  });

  it('passes WGSL validation and pipeline creation in every variant, within 16 KiB of workgroup memory', async () => {
    const a = await nullBackend();
    expect(a.featureOffered).toBe(true);
    expect(a.maxComputeWorkgroupStorageSize).toBe(16384);
    // The null backend's largest subgroup (128) is the kernel's whole workgroup: the strictest case of the rule.
    expect(a.subgroupMaxSize).toBe(128);
    expect(a.variants.map((v) => v.defines)).toEqual(VARIANTS);
    for (const v of a.variants) expect(v.error, JSON.stringify(v.defines)).toBeNull();
    // The validation is real: a wrong accumulator type and an oversized workgroup are refused.
    expect(a.refusals.wrong_type).toMatch(/subgroupMatrixMultiplyAccumulate/);
    expect(a.refusals.too_big).toMatch(/workgroup storage/);
  });

  it('is the only shader that needs a feature, and does not compile without it', async () => {
    expect(shaderNeeds).toEqual({ int8_matmul_sm: SUBGROUP_MATRIX_FEATURE });
    expect(ctx.device.features.has(SUBGROUP_MATRIX_FEATURE as GPUFeatureName)).toBe(false);
    // In an error scope, so that the refusal does not reach the shared context as an uncaptured error.
    ctx.device.pushErrorScope('validation');
    await expect(new KernelRegistry(ctx.device, shaderSources).check('int8_matmul_sm')).rejects.toThrow(/chromium_experimental_subgroup_matrix/);
    expect((await ctx.device.popErrorScope())?.message).toMatch(/chromium_experimental_subgroup_matrix' is not allowed/);
  });

  it('is refused, with the reason, by a context on an adapter without subgroup matrices', async () => {
    const err = await GpuContext.fromAdapter(ctx.adapter, { int8Kernel: 'subgroup-matrix' }).then(
      () => null,
      (e: unknown) => e,
    );
    expect(err).toBeInstanceOf(FinetuneError);
    expect((err as FinetuneError).kind).toBe('no-webgpu');
    expect((err as FinetuneError).message).toMatch(/subgroup-matrix int8 kernel cannot run on this adapter: the adapter does not offer chromium-experimental-subgroup-matrix/);
  });

  it('is never dispatched on a device made without it', () => {
    expect(ctx.hasInt8SubgroupMatrix).toBe(false);
    const b = int8RowsBytes(64, 64);
    const q = ctx.createBuffer('q', b.codes, 'scratch');
    const s = ctx.createBuffer('s', b.scales, 'scratch');
    const c = ctx.createBuffer('c', 64 * 64 * 4, 'scratch');
    const before = ctx.dispatchCount;
    ctx.int8Kernel = 'subgroup-matrix';
    try {
      expect(() => int8_gemm(ctx, c, q, s, q, s, 64, 64, 64)).toThrow(/device made without subgroup matrices/);
    } finally {
      ctx.int8Kernel = 'dp4a';
      for (const x of [q, s, c]) ctx.destroy(x);
    }
    expect(ctx.dispatchCount).toBe(before);
  });

  it("follows Dawn's i8 layout: Dawn's own end2end product, with offsets and strides in the array's words", async () => {
    // Dawn (this package's dawn.node) takes the offsets and strides of Dawn's test, in words, and refuses the same
    // numbers in bytes, counted as words, as reaching past the array's end.
    const { layout } = await nullBackend();
    expect(layout.map((l) => `${l.major} ${l.units}`)).toEqual(['row_major words', 'row_major bytes', 'col_major words', 'col_major bytes']);
    for (const { major, units, errors } of layout) {
      if (units === 'words') expect(errors, `${major}, ${units}`).toEqual([]);
      else expect(errors.join('\n'), `${major}, ${units}`).toMatch(/the pointer operand of subgroupMatrixLoad is too small/);
    }
    // The emulation computes the product Dawn's test expects, in both orders.
    const device = ctx.device;
    for (const major of ['row_major', 'col_major'] as const) {
      const left = dawnFill(16, 32, 0, major);
      const right = dawnFill(32, 16, 1, major);
      const input = new Int8Array(1024);
      input.set(left.bytes, 0);
      input.set(right.bytes, 512);
      device.pushErrorScope('validation');
      const inputs = device.createBuffer({ size: 1024, usage: GPUBufferUsage.STORAGE | GPUBufferUsage.COPY_DST });
      const output = device.createBuffer({ size: 1024, usage: GPUBufferUsage.STORAGE | GPUBufferUsage.COPY_SRC });
      device.queue.writeBuffer(inputs, 0, input);
      const code = emulateSubgroupMatrices(dawnProductShader(major, 'words'));
      const got = new Int32Array(await runOneWorkgroup(device, code, [{ buffer: inputs }, { buffer: output }], output, 1024));
      expect(await device.popErrorScope()).toBeNull();
      for (const b of [inputs, output]) b.destroy();
      const want = new Int32Array(256);
      for (let m = 0; m < 16; m++) {
        for (let n = 0; n < 16; n++) {
          let sum = 0;
          for (let k = 0; k < 32; k++) sum += left.values[m][k] * right.values[k][n];
          want[major === 'col_major' ? n * 16 + m : m * 16 + n] = sum;
        }
      }
      expect(Array.from(got), major).toEqual(Array.from(want));
      expect(want.some((v) => v !== 0)).toBe(true);
    }
  });

  it("gives the DP4A kernel's outputs bit for bit with only its subgroup-matrix operations emulated", async () => {
    const sources = shaderSources as Record<string, string>;
    const real = sources.int8_matmul_sm;
    const emulated = emulateSubgroupMatrices(real);
    // A fresh device for each variant: the registry keeps a compiled module per shader name.
    const run = async (text: string) => {
      sources.int8_matmul_sm = text;
      const c = await GpuContext.fromAdapter((await findNodeAdapter()).adapter, {});
      c.hasInt8SubgroupMatrix = true;
      try {
        return await compareInt8Kernels(c, 'subgroup-matrix');
      } finally {
        c.destroyDevice();
      }
    };
    try {
      const results = await run(emulated);
      expect(results).toHaveLength(5);
      for (const r of results) {
        expect(r.referenceMaxAbs, r.product).toBeGreaterThan(0.1);
        expect(r.differing, `${r.product}: ${r.differing} of ${r.outputs} outputs differ (${r.maxAbsDiff})`).toBe(0);
      }
      // The comparison can fail here: the right-hand tiles read one column further along give other numbers.
      const shifted = await run(emulated.replace('t * 16u * ROW_WORDS + h * HALF_WORDS', '(t * 16u + 1u) * ROW_WORDS + h * HALF_WORDS'));
      expect(shifted.every((r) => r.differing > 0)).toBe(true);
    } finally {
      sources.int8_matmul_sm = real;
    }
  });

  it("has a probe that compares every int8 product's outputs bit for bit, on ragged shapes", async () => {
    const results = await compareInt8Kernels(ctx, 'dp4a');
    expect(results.map((r) => r.product)).toEqual([
      'int8 GEMM',
      'NF4 forward, plain scales',
      'NF4 input gradient, plain scales, accumulated',
      'NF4 forward, double-quantised scales',
      'NF4 input gradient, double-quantised scales, accumulated',
    ]);
    for (const r of results) {
      expect(r.outputs, r.product).toBeGreaterThan(4000);
      expect(r.referenceMaxAbs, r.product).toBeGreaterThan(0.1);
      expect(r.differing, r.product).toBe(0);
    }
    expect(ctx.int8Kernel).toBe('dp4a');
  });
});
