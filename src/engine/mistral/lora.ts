// The trainable LoRA adapter on the GPU: A (r, in) and B (out, r) per adapted module, their gradients and AdamW
// moments. Moves to and from the CPU-side PEFT adapter (src/model/lora-adapter.ts) for checkpoints and export.
//
// All of it lives in four arenas of one layout (./lora-layout.ts): parameters and gradients (ledger 'lora'), exp_avg
// and exp_avg_sq ('optimizer'). A module's A, B, dA, … are slices of them, so the optimizer clears, measures and
// updates every tensor with one dispatch per chunk (issue #9: dispatches per step must not grow with the modules).

import { PROJECTIONS, type Projection } from '../../core/mistral.ts';
import type { LoraAdapter, LoraPair } from '../../model/lora-adapter.ts';
import { FinetuneError } from '../../core/errors.ts';
import { tensorSlice, type TensorSlice } from '../buffer-slice.ts';
import type { GpuContext } from '../gpu.ts';
import { loraModuleId } from '../kernels/lora.ts';
import type { GradSlice } from '../kernels/adamw.ts';
import { linearShape, type Dims } from './dims.ts';
import { loraArenaLayout, loraChunkLimit, type ArenaTensor, type LoraArenaLayout } from './lora-layout.ts';

export interface LoraModuleState {
  layer: number;
  name: Projection;
  moduleId: number;
  in: number;
  out: number;
  A: TensorSlice; // (r, in)
  B: TensorSlice; // (out, r)
  dA: TensorSlice;
  dB: TensorSlice;
  mA: TensorSlice;
  vA: TensorSlice;
  mB: TensorSlice;
  vB: TensorSlice;
}

/** The four arenas, each `layout.chunkBytes.length` buffers; chunk i of each has the same size and tensors. */
export interface LoraArenas {
  layout: LoraArenaLayout;
  params: GPUBuffer[];
  grads: GPUBuffer[];
  expAvg: GPUBuffer[];
  expAvgSq: GPUBuffer[];
}

export interface GpuLora {
  r: number;
  scale: number;
  dropout: number;
  targets: Projection[];
  /** modules[layer][name], absent when the module is not adapted. */
  modules: Partial<Record<Projection, LoraModuleState>>[];
  arenas: LoraArenas;
}

export interface UploadLoraOptions {
  /**
   * The largest chunk, in bytes (default and ceiling: the device's maxBufferSize and maxStorageBufferBindingSize).
   * Tests set it low to exercise several chunks without allocating gigabytes.
   */
  maxChunkBytes?: number;
}

/**
 * Puts a CPU adapter on the GPU with zeroed gradients and moments. A module the adapter lacks keeps its (zero) place
 * in the arenas, so the layout, and the planner's sum, depend on the shapes alone.
 */
export function uploadLora(ctx: GpuContext, d: Dims, adapter: LoraAdapter, o: UploadLoraOptions = {}): GpuLora {
  const targets = PROJECTIONS.filter((m) => adapter.config.targetModules.includes(m));
  if (adapter.layers !== d.L) throw new FinetuneError('bad-input', `the adapter has ${adapter.layers} layers, the model ${d.L}`);
  const r = adapter.config.r;
  // Every shape is checked before the first allocation, so a refused adapter leaves nothing behind.
  for (let l = 0; l < d.L; l++) {
    for (const name of targets) {
      const pair = adapter.tensors[l]?.[name];
      if (!pair) continue;
      const s = linearShape(d, name);
      if (pair.A.length !== r * s.in || pair.B.length !== s.out * r) {
        throw new FinetuneError('bad-input', `layer ${l} ${name}: adapter shapes do not fit the model (${s.out}×${s.in}, r ${r})`);
      }
    }
  }
  const deviceLimit = loraChunkLimit(ctx.device.limits);
  const limit = Math.min(deviceLimit, o.maxChunkBytes ?? deviceLimit);
  const layout = loraArenaLayout(d, r, targets, limit);
  const over = layout.chunkBytes.findIndex((b) => b > limit);
  if (over >= 0) {
    throw new FinetuneError('out-of-memory', `one LoRA tensor needs ${layout.chunkBytes[over]} bytes, over this GPU's buffer limit of ${limit}: lower lora_rank`);
  }
  const made: GPUBuffer[] = [];
  const arena = (what: string, cat: 'lora' | 'optimizer'): GPUBuffer[] =>
    layout.chunkBytes.map((bytes, i) => {
      const b = ctx.createBuffer(`lora ${what} [${i}]`, bytes, cat);
      made.push(b);
      return b;
    });
  let arenas: LoraArenas;
  try {
    arenas = { layout, params: arena('params', 'lora'), grads: arena('grads', 'lora'), expAvg: arena('exp_avg', 'optimizer'), expAvgSq: arena('exp_avg_sq', 'optimizer') };
    // Dawn reports an arena the GPU has no memory for as it is made: thrown here, before any work names it (a clear of
    // it, submitted later, fails that submit too), and the arenas made are freed, since the caller gets no adapter.
    ctx.checkHealthy();
  } catch (e) {
    for (const b of made) ctx.destroy(b);
    throw e;
  }
  // WebGPU zero-fills new buffers; cleared anyway so the padding's zeros do not rest on that alone.
  for (const b of made) ctx.clear(b);
  const at = (buffers: GPUBuffer[], t: ArenaTensor): TensorSlice => tensorSlice(buffers[t.chunk], t.offset, t.floats * 4);
  const modules: GpuLora['modules'] = Array.from({ length: d.L }, () => ({}));
  const tensors = new Map<string, ArenaTensor>(layout.tensors.map((t) => [`${t.layer}.${t.name}.${t.factor}`, t]));
  for (let l = 0; l < d.L; l++) {
    for (const name of targets) {
      const pair = adapter.tensors[l]?.[name];
      if (!pair) continue;
      const s = linearShape(d, name);
      const tA = tensors.get(`${l}.${name}.A`);
      const tB = tensors.get(`${l}.${name}.B`);
      if (!tA || !tB) throw new FinetuneError('internal', `layer ${l} ${name}: not in the arena layout`);
      const m: LoraModuleState = {
        layer: l,
        name,
        moduleId: loraModuleId(name),
        in: s.in,
        out: s.out,
        A: at(arenas.params, tA),
        B: at(arenas.params, tB),
        dA: at(arenas.grads, tA),
        dB: at(arenas.grads, tB),
        mA: at(arenas.expAvg, tA),
        vA: at(arenas.expAvgSq, tA),
        mB: at(arenas.expAvg, tB),
        vB: at(arenas.expAvgSq, tB),
      };
      ctx.write(m.A, pair.A);
      ctx.write(m.B, pair.B);
      modules[l][name] = m;
    }
  }
  return { r, scale: adapter.scaling, dropout: adapter.config.loraDropout, targets, modules, arenas };
}

export function* loraModules(lora: Pick<GpuLora, 'modules'>): Generator<LoraModuleState> {
  for (const layer of lora.modules) for (const name of PROJECTIONS) if (layer[name]) yield layer[name];
}

/**
 * The gradient arena as grad_norm_sq's list: each chunk whole, in order (the reduction is deterministic). The padding
 * is zero and adds nothing to Σ g².
 */
export function loraGradSlices(lora: GpuLora): GradSlice[] {
  return lora.arenas.grads.map((buffer, i) => ({ buffer, n: lora.arenas.layout.chunkBytes[i] / 4 }));
}

/** Zeroes every gradient: one clear per chunk. */
export function zeroLoraGrads(ctx: GpuContext, lora: GpuLora): void {
  for (const b of lora.arenas.grads) ctx.clear(b);
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
  const a = lora.arenas;
  for (const b of [...a.params, ...a.grads, ...a.expAvg, ...a.expAvgSq]) ctx.destroy(b);
}
