// `--no-robustness` (src/cli/node-gpu.ts): Dawn's disable_robustness toggle, which drops the clamp Tint puts on every
// buffer index. Two things must hold: the toggle really reaches the device (else the flag is a label on nothing), and
// the engine computes the same numbers without the clamps (no kernel of ours leans on an out-of-range access being
// clamped: the golden checks, with the usual and the fast kernels, give the same report to the last bit).
import { afterEach, describe, expect, it } from 'vitest';
import { createNodeContext, instanceFlags, type NodeContextOptions } from '../../src/cli/node-gpu.ts';
import { nodeDirectory, nodeFileSource } from '../../src/cli/node-source.ts';
import type { GpuContext } from '../../src/engine/gpu.ts';
import { runGoldenCheck, type CheckReport } from '../../src/run/check.ts';
import { runOneWorkgroup } from '../helpers/one-workgroup.ts';

const contexts: GpuContext[] = [];
afterEach(() => {
  for (const c of contexts.splice(0)) c.destroyDevice();
});

async function context(o: NodeContextOptions): Promise<GpuContext> {
  const { ctx, found } = await createNodeContext(o);
  expect(found.robustness).toBe(o.robustness !== false);
  contexts.push(ctx);
  return ctx;
}

/**
 * What `a[4]` reads when `a` is bound as the first 4 floats (1, 2, 3, 4) of a buffer holding 1…16: with Dawn's clamps
 * the index is clamped into the binding (4, the last element); without them the read goes past it (5, the buffer's
 * next float, on SwiftShader).
 */
async function outOfRangeRead(ctx: GpuContext): Promise<number> {
  const device = ctx.device;
  const code = `@group(0) @binding(0) var<storage, read> a: array<f32>;
@group(0) @binding(1) var<storage, read_write> o: array<f32>;
@group(0) @binding(2) var<uniform> index: vec4<u32>;
@compute @workgroup_size(1) fn main() { o[0] = a[index.x]; }`;
  const data = device.createBuffer({ size: 64, usage: GPUBufferUsage.STORAGE | GPUBufferUsage.COPY_DST });
  device.queue.writeBuffer(data, 0, Float32Array.from({ length: 16 }, (_, i) => i + 1));
  const out = device.createBuffer({ size: 16, usage: GPUBufferUsage.STORAGE | GPUBufferUsage.COPY_SRC });
  const index = device.createBuffer({ size: 16, usage: GPUBufferUsage.UNIFORM | GPUBufferUsage.COPY_DST });
  device.queue.writeBuffer(index, 0, new Uint32Array([4, 0, 0, 0]));
  const got = await runOneWorkgroup(device, code, [{ buffer: data, offset: 0, size: 16 }, { buffer: out }, { buffer: index }], out, 16);
  for (const b of [data, out, index]) b.destroy();
  return new Float32Array(got)[0];
}

/** Every compared group's worst error, and the losses: what must not move when only the clamps go. */
const numbers = (r: CheckReport) => ({ ok: r.ok, loss: r.loss, worst: Object.fromEntries(Object.entries(r.groups).map(([k, g]) => [k, g.worst])) });

async function golden(ctx: GpuContext): Promise<CheckReport> {
  return runGoldenCheck(ctx, {
    model: nodeDirectory('test/fixtures/tiny-mistral'),
    adapter: nodeDirectory('test/fixtures/tiny-adapter'),
    golden: await nodeFileSource('test/fixtures/golden_qlora.safetensors'),
    quantization: 'nf4',
  });
}

describe('--no-robustness: shaders without bounds clamps', () => {
  it("asks Dawn for disable_robustness only when robustness is off, beside allow_unsafe_apis when that is asked for", () => {
    // Timestamps are never quantised in Node (bench profile times dispatches shorter than Dawn's 65.5 µs step).
    const exact = 'disable-dawn-features=timestamp_quantization';
    expect(instanceFlags({})).toEqual([exact]);
    expect(instanceFlags({ robustness: true })).toEqual([exact]);
    expect(instanceFlags({ robustness: false })).toEqual(['enable-dawn-features=disable_robustness', exact]);
    expect(instanceFlags({ unsafeApis: true, robustness: false })).toEqual(['enable-dawn-features=allow_unsafe_apis,disable_robustness', exact]);
  });

  it('reaches the device: an index past a binding is clamped by default and not without robustness', async () => {
    expect(await outOfRangeRead(await context({}))).toBe(4);
    expect(await outOfRangeRead(await context({ robustness: false }))).toBe(5);
  });

  for (const kernels of [{}, { gemmKernel: 'tiled', attention: 'tiled', loraKernel: 'skinny' }] as const) {
    const name = Object.keys(kernels).length ? 'the tiled GEMM and attention and the skinny LoRA kernel' : 'the default kernels';
    it(`gives the golden check's numbers to the last bit on ${name}`, async () => {
      const clamped = numbers(await golden(await context({ ...kernels })));
      contexts.splice(0).forEach((c) => c.destroyDevice());
      const unclamped = numbers(await golden(await context({ ...kernels, robustness: false })));
      expect(clamped.ok).toBe(true);
      expect(unclamped).toEqual(clamped);
    });
  }
});
