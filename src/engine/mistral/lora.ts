// The trainable LoRA adapter on the GPU: A (r, in) and B (out, r) per adapted module, their gradients and AdamW
// moments. Moves to and from the CPU-side PEFT adapter (src/model/lora-adapter.ts) for checkpoints and export.

import { PROJECTIONS, type Projection } from '../../core/mistral.ts';
import type { LoraAdapter, LoraPair } from '../../model/lora-adapter.ts';
import { FinetuneError } from '../../core/errors.ts';
import type { GpuContext } from '../gpu.ts';
import { loraModuleId } from '../kernels/lora.ts';
import type { GradSlice } from '../kernels/adamw.ts';
import { linearShape, type Dims } from './dims.ts';

export interface LoraModuleState {
  layer: number;
  name: Projection;
  moduleId: number;
  in: number;
  out: number;
  A: GPUBuffer; // (r, in)
  B: GPUBuffer; // (out, r)
  dA: GPUBuffer;
  dB: GPUBuffer;
  mA: GPUBuffer;
  vA: GPUBuffer;
  mB: GPUBuffer;
  vB: GPUBuffer;
}

export interface GpuLora {
  r: number;
  scale: number;
  dropout: number;
  targets: Projection[];
  /** modules[layer][name], absent when the module is not adapted. */
  modules: Partial<Record<Projection, LoraModuleState>>[];
}

/** Puts a CPU adapter on the GPU with zeroed gradients and moments. */
export function uploadLora(ctx: GpuContext, d: Dims, adapter: LoraAdapter): GpuLora {
  const targets = PROJECTIONS.filter((m) => adapter.config.targetModules.includes(m));
  if (adapter.layers !== d.L) throw new FinetuneError('bad-input', `the adapter has ${adapter.layers} layers, the model ${d.L}`);
  const r = adapter.config.r;
  const modules: GpuLora['modules'] = [];
  for (let l = 0; l < d.L; l++) {
    const layer: Partial<Record<Projection, LoraModuleState>> = {};
    for (const name of targets) {
      const pair = adapter.tensors[l]?.[name];
      if (!pair) continue;
      const s = linearShape(d, name);
      if (pair.A.length !== r * s.in || pair.B.length !== s.out * r) {
        throw new FinetuneError('bad-input', `layer ${l} ${name}: adapter shapes do not fit the model (${s.out}×${s.in}, r ${r})`);
      }
      const label = `lora ${l}.${name}`;
      const zeros = (n: number, what: string, cat: 'lora' | 'optimizer'): GPUBuffer => {
        const b = ctx.createBuffer(`${label} ${what}`, n * 4, cat);
        ctx.clear(b);
        return b;
      };
      layer[name] = {
        layer: l,
        name,
        moduleId: loraModuleId(name),
        in: s.in,
        out: s.out,
        A: ctx.upload(`${label} A`, pair.A, 'lora'),
        B: ctx.upload(`${label} B`, pair.B, 'lora'),
        dA: zeros(r * s.in, 'dA', 'lora'),
        dB: zeros(s.out * r, 'dB', 'lora'),
        mA: zeros(r * s.in, 'mA', 'optimizer'),
        vA: zeros(r * s.in, 'vA', 'optimizer'),
        mB: zeros(s.out * r, 'mB', 'optimizer'),
        vB: zeros(s.out * r, 'vB', 'optimizer'),
      };
    }
    modules.push(layer);
  }
  return { r, scale: adapter.scaling, dropout: adapter.config.loraDropout, targets, modules };
}

export function* loraModules(lora: GpuLora): Generator<LoraModuleState> {
  for (const layer of lora.modules) for (const name of PROJECTIONS) if (layer[name]) yield layer[name];
}

/** Every gradient tensor, in a fixed order (the global-norm reduction is deterministic). */
export function loraGradSlices(lora: GpuLora): GradSlice[] {
  const out: GradSlice[] = [];
  for (const m of loraModules(lora)) out.push({ buffer: m.dA, n: lora.r * m.in }, { buffer: m.dB, n: m.out * lora.r });
  return out;
}

export function zeroLoraGrads(ctx: GpuContext, lora: GpuLora): void {
  for (const m of loraModules(lora)) {
    ctx.clear(m.dA);
    ctx.clear(m.dB);
  }
}

/** Reads A and B back into a CPU adapter with the given config (for checkpoints and export). */
export async function downloadLora(ctx: GpuContext, lora: GpuLora, into: LoraAdapter): Promise<LoraAdapter> {
  const tensors: LoraAdapter['tensors'] = [];
  for (const layer of lora.modules) {
    const t: Partial<Record<Projection, LoraPair>> = {};
    for (const name of PROJECTIONS) {
      const m = layer[name];
      if (m) t[name] = { A: await ctx.readF32(m.A), B: await ctx.readF32(m.B) };
    }
    tensors.push(t);
  }
  return { ...into, tensors };
}

export async function downloadLoraGrads(ctx: GpuContext, lora: GpuLora): Promise<Partial<Record<Projection, { dA: Float32Array; dB: Float32Array }>>[]> {
  const out: Partial<Record<Projection, { dA: Float32Array; dB: Float32Array }>>[] = [];
  for (const layer of lora.modules) {
    const t: Partial<Record<Projection, { dA: Float32Array; dB: Float32Array }>> = {};
    for (const name of PROJECTIONS) {
      const m = layer[name];
      if (m) t[name] = { dA: await ctx.readF32(m.dA), dB: await ctx.readF32(m.dB) };
    }
    out.push(t);
  }
  return out;
}

export function destroyLora(ctx: GpuContext, lora: GpuLora): void {
  for (const m of loraModules(lora)) for (const b of [m.A, m.B, m.dA, m.dB, m.mA, m.vA, m.mB, m.vB]) ctx.destroy(b);
}
