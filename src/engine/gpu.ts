// The GPU context: one device, its memory ledger and kernel registry, and a command recorder that batches
// dispatches into one encoder per flush. Nothing here is browser- or Node-specific: it takes a `GPU` object
// (navigator.gpu in a worker, Dawn's `create()` in Node).

import { BindGroupCache } from './bind-group-cache.ts';
import { sliceBuffer, sliceBytes, sliceOffset, type BufferSlice } from './buffer-slice.ts';
import { describeGpuAdapter, type GpuAdapterInfo } from './gpu-adapter.ts';
import { FinetuneError, thrownMessage } from '../core/errors.ts';
import { MemoryLedger, type MemoryCategory } from './ledger.ts';
import { DispatchProfiler, type ProfiledDispatch } from './profiler.ts';
import { firstFitting, fittingNote, unfitKernels, type KernelKinds } from './kernel-fit.ts';
import { KernelRegistry, type KernelSpec } from './registry.ts';
import { shaderSources } from './shaders.ts';
import { int8SubgroupMatrixUnsupported, SUBGROUP_MATRIX_FEATURE } from './subgroup-matrix.ts';

/** The largest buffer we ask for: some drivers report 1 TiB and crash when asked for it (docs/testing.md). */
export const MAX_REQUESTED_BUFFER = 4 * 1024 ** 3 - 4;
const UNIFORM_SLOT = 256;
const UNIFORM_SLOTS = 2048;
/** Bytes every context holds from its creation (the uniform arena and the two 4-byte fence buffers); the planner counts them. */
export const CONTEXT_BYTES = UNIFORM_SLOT * UNIFORM_SLOTS + 4 + 4;

/**
 * Which attention kernels (forward and backward) the engine runs: 'rows' (shaders/attention.wgsl, measured) or
 * 'tiled' (the register-tiled, GQA-grouped shaders/attention_flash.wgsl: 14× the forward and 7–9× the backward of
 * 'rows' on the H200, docs/benchmarks.md; a run on a GPU picks it where its own measurement says so).
 */
export type AttentionKernel = 'rows' | 'tiled';
export const ATTENTION_KERNELS: readonly AttentionKernel[] = ['rows', 'tiled'];

/**
 * Which kernel `gemm` (kernels/matmul.ts) runs. 'basic': shaders/matmul.wgsl. 'tiled': shaders/matmul_tiled.wgsl,
 * register-tiled (measured on the H200, docs/benchmarks.md). 'tiled-fixed': the same with M, N, K compiled into each
 * pipeline (one pipeline per shape). 'tiled-warp': the same with its threads mapped so that a warp of 32 covers 8 × 4
 * of the thread grid instead of 16 × 2 (WARP_MAP: the same bits, fewer shared-memory wavefronts by count; 87.2 against
 * 90.1 ms a Mistral-7B layer on the H200 in `bench tune`, 81.2 against 81.4 in `bench layer`, 2026-12-04).
 * 'tiled-k32', 'tiled-warp-k32': those two with a K step of 32 (DEEP_K: 32 KiB of workgroup memory, half the
 * barriers; the same bits; not yet measured on a GPU: a run takes them only where its own measurement says so).
 * docs/performance.md says why 'basic' is the default.
 */
export type GemmKernel = 'basic' | 'tiled' | 'tiled-fixed' | 'tiled-warp' | 'tiled-k32' | 'tiled-warp-k32';
export const GEMM_KERNELS: readonly GemmKernel[] = ['basic', 'tiled', 'tiled-fixed', 'tiled-warp', 'tiled-k32', 'tiled-warp-k32'];

/** How a tiled GEMM kernel runs the register-tiled shader: its thread map and K step (null for 'basic'). */
export interface TiledKernelParts {
  map: 'row' | 'warp';
  kStep: 16 | 32;
}
const TILED_KERNEL_PARTS: Readonly<Record<GemmKernel, TiledKernelParts | null>> = {
  basic: null,
  tiled: { map: 'row', kStep: 16 },
  'tiled-fixed': { map: 'row', kStep: 16 },
  'tiled-warp': { map: 'warp', kStep: 16 },
  'tiled-k32': { map: 'row', kStep: 32 },
  'tiled-warp-k32': { map: 'warp', kStep: 32 },
};
export const tiledKernelParts = (k: GemmKernel): TiledKernelParts | null => TILED_KERNEL_PARTS[k];

/**
 * Which kernel runs the products whose output has a side of at most 16 and whose reduction is long: LoRA's rank-r
 * products (t = x·Aᵀ, dt = dy·B, dA, dB). 'general': the GEMM kernel `gemmKernel` names, whose 64- or 128-wide blocks
 * leave most of each block idle and launch few workgroups for them. 'skinny': shaders/matmul_skinny.wgsl, a reduction
 * spread over a whole workgroup per few outputs (kernels/matmul_skinny.ts). Faster on the H200 (a layer 1.1–1.2×,
 * docs/benchmarks.md), but a run takes it only when measuring it on its own GPU says so (src/run/kernel-tuning.ts).
 */
export type LoraKernel = 'general' | 'skinny';
export const LORA_KERNELS: readonly LoraKernel[] = ['general', 'skinny'];

/**
 * How the training runner's products with the frozen NF4 base weights run. 'fp32': dequantise to f32 and multiply in
 * f32 (the proven path). 'int8': every projection on the experimental int8 path (docs/int8.md: activations and
 * weights in int8 with a scale per 64 values, int32 sums). 'int8-mlp': only the MLP's gate, up and down projections
 * (≈ 80 % of Mistral-7B's base FLOPs) in int8, attention's four in fp32: the variant that passes the accuracy gates.
 * Off by default until a GPU measures the int8 products faster.
 */
export type BaseMatmul = 'fp32' | 'int8' | 'int8-mlp';
export const BASE_MATMULS: readonly BaseMatmul[] = ['fp32', 'int8', 'int8-mlp'];

/**
 * Which kernel runs the int8 path's products (docs/int8.md). 'dp4a': shaders/int8_matmul.wgsl, dot4I8Packed, every
 * adapter. 'subgroup-matrix': shaders/int8_matmul_sm.wgsl, the same numbers to the bit from tensor-core subgroup
 * matrices, only where the adapter offers them (engine/subgroup-matrix.ts); experimental, never chosen by itself.
 */
export type Int8Kernel = 'dp4a' | 'subgroup-matrix';

/**
 * Stages of workgroup tiles in the tiled GEMM (kernels/matmul_tiled.ts): 1, two barriers per K step (16 KiB for the
 * wide block), or 2, one barrier per K step (twice the workgroup memory). The same bits either way.
 */
export type TiledStages = 1 | 2;
export const TILED_STAGES: readonly TiledStages[] = [1, 2];
export const INT8_KERNELS: readonly Int8Kernel[] = ['dp4a', 'subgroup-matrix'];

/**
 * One NF4 product of the int8 path, also computed in fp32 for comparison (GpuContext.int8Probe): both outputs, with
 * alpha 1 and no accumulation. The listener owns the two buffers (and must destroy them).
 */
export interface Int8ProbeRecord {
  kind: 'forward' | 'input-gradient';
  /** The weight's codes buffer label (its module name for a model's weights). */
  weight: string;
  int8: GPUBuffer;
  fp32: GPUBuffer;
  /** Floats in each output. */
  count: number;
}

export interface GpuContextOptions {
  powerPreference?: GPUPowerPreference;
  /**
   * The attention forward and backward (default 'rows', or 'tiled' where the adapter's workgroup memory is too small
   * for 'rows': engine/kernel-fit.ts). A kernel that does not fit the adapter is refused, saying why.
   */
  attention?: AttentionKernel;
  /** The GEMM kernel (default 'basic', or 'tiled' where 'basic' does not fit; refused likewise). */
  gemmKernel?: GemmKernel;
  /** The kernel of LoRA's rank-r products (default 'general'; refused likewise). */
  loraKernel?: LoraKernel;
  /** The frozen-base products (default 'fp32'). */
  baseMatmul?: BaseMatmul;
  /**
   * The int8 path's kernel (default 'dp4a'). 'subgroup-matrix' makes the device with the subgroup-matrix feature and
   * fails, saying why, on an adapter that cannot run it.
   */
  int8Kernel?: Int8Kernel;
  /** Stages of workgroup tiles in the tiled GEMM (default 1; 2 runs where the workgroup memory has room). */
  tiledStages?: TiledStages;
}

export class GpuContext {
  readonly ledger: MemoryLedger;
  readonly registry: KernelRegistry;
  readonly hasSubgroups: boolean;
  /**
   * The kernels attention_forward and attention_backward run from now on (GpuContextOptions.attention); a run may
   * switch it before it starts (src/run/kernel-tuning.ts), never mid-pass.
   */
  attention: AttentionKernel;
  private encoder: GPUCommandEncoder | null = null;
  private pass: GPUComputePassEncoder | null = null;
  private readonly uniformBuffer: GPUBuffer;
  private readonly uniformStaging = new ArrayBuffer(UNIFORM_SLOT * UNIFORM_SLOTS);
  private uniformSlotsUsed = 0;
  private lostInfo: GPUDeviceLostInfo | null = null;
  private pendingError: FinetuneError | null = null;
  /**
   * 4-byte buffers a fence maps, one per sync in flight: two callers may wait at once (a model loading while a
   * validation loss runs), and a second copy into a buffer pending its map was a validation error.
   */
  private readonly freeFences: GPUBuffer[] = [];
  private readonly fenceSource: GPUBuffer;
  /** Number of dispatches recorded since creation; benchmarks use it to report kernel launches per step. */
  dispatchCount = 0;
  /** The GEMM kernel products use from now on; pipelines of both kernels may coexist. */
  gemmKernel: GemmKernel;
  /** The kernel products with an output side ≤ 16 and a long reduction use from now on (LoraKernel). */
  loraKernel: LoraKernel = 'general';
  /**
   * Why this context's default kernels are not the usual ones (the adapter's workgroup memory is too small for them:
   * engine/kernel-fit.ts), or null.
   */
  kernelNote: string | null = null;
  /** How the NF4 base products run from now on (GpuContextOptions.baseMatmul). */
  baseMatmul: BaseMatmul = 'fp32';
  /** The int8 path's kernel from now on; 'subgroup-matrix' only where `hasInt8SubgroupMatrix`. */
  int8Kernel: Int8Kernel = 'dp4a';
  /** Whether the device was made with the subgroup-matrix feature the tensor-core int8 kernel needs. */
  hasInt8SubgroupMatrix = false;
  /**
   * When set and `baseMatmul` is 'int8', every NF4 product also runs in fp32 into fresh buffers handed here: the
   * per-kernel error on the activations a real run produces (finetune bench int8-ab, docs/int8.md). Costs a second
   * product and two buffers per call; for measurements only.
   */
  int8Probe: ((record: Int8ProbeRecord) => void) | null = null;
  /**
   * Whether dispatches reuse bind groups made for the same pipeline and bindings (bind-group-cache.ts): the same GPU
   * work, less host time per dispatch. On unless switched off here; `finetune bench dispatch` times both.
   */
  cacheBindGroups = true;
  /**
   * Stages of workgroup tiles in the tiled GEMM and its NF4 products (kernels/matmul_tiled.ts): 2 where the device has
   * the workgroup memory (one barrier per K step instead of two), else 1; the same bits either way. 1 unless set here
   * (GpuContextOptions.tiledStages, `--tiled-stages`): on the H200 two stages ran at 0.75–0.9× of one (2026-11-30;
   * 32 KiB a workgroup lets fewer fit an SM). `finetune bench matmul` and `bench nf4` time both.
   */
  tiledStages: TiledStages = 1;
  /**
   * Whether the tiled attention backward passes dS through the scratch its caller gives (attention_backward's
   * `spill`: 5 T²·hd products instead of 7, the same bits). On unless switched off here: `finetune bench
   * --no-attention-spill` times a layer or a step without it, for the A/B.
   */
  attentionSpill = true;
  /**
   * Whether LoRA's up-projection and input gradient ride on the frozen base's products (the tiled kernel's low-rank
   * epilogue, mistral/linear.ts) instead of a GEMM of their own over the whole output: the same bits, one dispatch
   * and one read and write of the output fewer per module and pass. On unless switched off here; `finetune bench
   * --no-lora-epilogue` times a layer or a step without it, for the A/B.
   */
  loraEpilogue = true;
  /**
   * Whether kernels that can use subgroup operations do, where the device has them (`hasSubgroups`): today the tiled
   * attention forward's row max, whose result is the same to the bit either way. Off unless switched on here: two H200
   * machines (2026-11-30, docs/benchmarks.md) disagreed (the shuffles at 0.80× and at 1.05× the workgroup-memory path),
   * the forward is 2 % of a layer, and the workgroup-memory path is the one every adapter has. `finetune bench
   * attention` times both.
   */
  useSubgroups = false;
  /** Whether kernels run their subgroup variants now: the device has subgroups and `useSubgroups` is on. */
  get subgroupsInUse(): boolean {
    return this.hasSubgroups && this.useSubgroups;
  }
  readonly bindGroups: BindGroupCache;
  /** Attached while profileDispatches records: each dispatch then gets a timestamped pass of its own. */
  private profiler: DispatchProfiler | null = null;
  /** Named work buffers kernels share (see `scratch`). */
  private readonly scratchBuffers = new Map<string, GPUBuffer>();

  private constructor(
    readonly adapter: GPUAdapter,
    readonly device: GPUDevice,
    readonly report: GpuAdapterInfo,
    attention: AttentionKernel,
    gemmKernel: GemmKernel,
  ) {
    this.attention = attention;
    this.gemmKernel = gemmKernel;
    this.ledger = new MemoryLedger(device);
    this.registry = new KernelRegistry(device, shaderSources);
    this.bindGroups = new BindGroupCache(device);
    this.hasSubgroups = device.features.has('subgroups');
    device.lost.then((info) => {
      this.lostInfo = info;
    });
    const onError = (ev: Event): void => {
      const error = (ev as GPUUncapturedErrorEvent).error;
      const isOom = error.constructor?.name === 'GPUOutOfMemoryError' || /out of memory/i.test(error.message);
      this.pendingError ??= new FinetuneError(isOom ? 'out-of-memory' : 'internal', `GPU error: ${error.message}`);
    };
    if (typeof device.addEventListener === 'function') device.addEventListener('uncapturederror', onError);
    else (device as { onuncapturederror: unknown }).onuncapturederror = onError;
    this.uniformBuffer = this.ledger.create('uniform arena', UNIFORM_SLOT * UNIFORM_SLOTS, GPUBufferUsage.UNIFORM | GPUBufferUsage.COPY_DST, 'scratch');
    this.fenceSource = this.ledger.create('fence source', 4, GPUBufferUsage.COPY_SRC | GPUBufferUsage.STORAGE, 'scratch');
    this.freeFences.push(this.newFence());
  }

  static async create(gpu: GPU, options: GpuContextOptions = {}): Promise<GpuContext> {
    const adapter = await gpu.requestAdapter({ powerPreference: options.powerPreference ?? 'high-performance' });
    if (!adapter) throw new FinetuneError('no-webgpu', 'WebGPU is available but no GPU adapter was found');
    return GpuContext.fromAdapter(adapter, options);
  }

  static async fromAdapter(adapter: GPUAdapter, options: GpuContextOptions = {}): Promise<GpuContext> {
    const report = describeGpuAdapter(adapter);
    const requiredFeatures: GPUFeatureName[] = [];
    if (adapter.features.has('subgroups')) requiredFeatures.push('subgroups' as GPUFeatureName);
    if (adapter.features.has('timestamp-query')) requiredFeatures.push('timestamp-query');
    const wantsSubgroupMatrix = options.int8Kernel === 'subgroup-matrix';
    if (wantsSubgroupMatrix) {
      const why = int8SubgroupMatrixUnsupported(adapter);
      if (why) throw new FinetuneError('no-webgpu', `the subgroup-matrix int8 kernel cannot run on this adapter: ${why} (the dp4a kernel runs everywhere)`);
      requiredFeatures.push(SUBGROUP_MATRIX_FEATURE as GPUFeatureName);
    }
    const l = adapter.limits;
    // The defaults where they fit the workgroup memory asked for below (the adapter's), else their siblings that do; a
    // kernel asked for must fit, or no device is made.
    const limit = l.maxComputeWorkgroupStorageSize;
    const kernels: KernelKinds = {
      gemm: options.gemmKernel ?? firstFitting(limit, 'gemm', GEMM_KERNELS),
      attention: options.attention ?? firstFitting(limit, 'attention', ATTENTION_KERNELS),
      lora: options.loraKernel ?? firstFitting(limit, 'lora', LORA_KERNELS),
    };
    const unfit = unfitKernels(limit, kernels);
    if (unfit) throw new FinetuneError('bad-input', `${unfit}; leave that kernel's choice to the engine, which takes one that fits`);
    const requiredLimits: Record<string, number> = {
      maxBufferSize: Math.min(l.maxBufferSize, MAX_REQUESTED_BUFFER),
      maxStorageBufferBindingSize: Math.min(l.maxStorageBufferBindingSize, MAX_REQUESTED_BUFFER),
      maxComputeWorkgroupStorageSize: limit,
      maxComputeInvocationsPerWorkgroup: l.maxComputeInvocationsPerWorkgroup,
      maxComputeWorkgroupSizeX: l.maxComputeWorkgroupSizeX,
      maxComputeWorkgroupSizeY: l.maxComputeWorkgroupSizeY,
      maxStorageBuffersPerShaderStage: l.maxStorageBuffersPerShaderStage,
    };
    let device: GPUDevice;
    try {
      device = await adapter.requestDevice({ label: 'finetune', requiredFeatures, requiredLimits });
    } catch (e) {
      // Whatever the browser threw (not always an Error), in words: the GPU panel shows it as why there is no GPU.
      throw new FinetuneError('no-webgpu', `the GPU adapter refused a device: ${thrownMessage(e)}`);
    }
    const ctx = new GpuContext(adapter, device, report, kernels.attention, kernels.gemm);
    ctx.baseMatmul = options.baseMatmul ?? 'fp32';
    ctx.loraKernel = kernels.lora;
    ctx.kernelNote = fittingNote(limit, kernels);
    ctx.hasInt8SubgroupMatrix = wantsSubgroupMatrix;
    ctx.int8Kernel = options.int8Kernel ?? 'dp4a';
    ctx.tiledStages = options.tiledStages ?? 1;
    return ctx;
  }

  /**
   * Throws the typed error for a lost device or an uncaptured GPU error, if one happened. The work recorded and not
   * yet submitted is dropped with it: the operation that recorded it fails, and its clean-up may already have freed
   * buffers that work names (with an error pending, destroy() frees without submitting), which a later submit would
   * turn into a second error.
   */
  checkHealthy(): void {
    const lost = this.lossError();
    if (lost) {
      this.dropRecorded();
      throw lost;
    }
    if (this.pendingError) {
      const e = this.pendingError;
      this.pendingError = null;
      this.dropRecorded();
      throw e;
    }
  }

  /**
   * The typed error of a lost device (its device.lost resolved), else null; unlike checkHealthy it changes nothing,
   * so that whoever only asks whether the device lives (the worker's probe) drops no work recorded on it.
   */
  lossError(): FinetuneError | null {
    return this.lostInfo ? new FinetuneError('device-lost', `the GPU device was lost (${this.lostInfo.reason}): ${this.lostInfo.message}`) : null;
  }

  private dropRecorded(): void {
    this.pass = null;
    this.encoder = null;
    this.uniformSlotsUsed = 0;
  }

  createBuffer(label: string, size: number, category: MemoryCategory, extraUsage: GPUBufferUsageFlags = 0): GPUBuffer {
    return this.ledger.create(label, size, GPUBufferUsage.STORAGE | GPUBufferUsage.COPY_SRC | GPUBufferUsage.COPY_DST | extraUsage, category);
  }

  /**
   * A work buffer of at least `bytes` bytes under `name`, shared by every caller that asks for that name and kept
   * between calls (ledger category 'scratch'): for kernels that need a staging area the caller does not own, such as
   * the int8 path's quantised activations. It grows (the old one freed after the work recorded so far is submitted)
   * and never shrinks; work recorded in order may reuse it, since WebGPU orders dispatches that share a buffer.
   */
  scratch(name: string, bytes: number): GPUBuffer {
    const have = this.scratchBuffers.get(name);
    if (have && have.size >= bytes) return have;
    if (have) this.destroy(have);
    const buf = this.createBuffer(`scratch: ${name}`, Math.max(4, Math.ceil(bytes / 4) * 4), 'scratch');
    this.scratchBuffers.set(name, buf);
    return buf;
  }

  /** Frees every named scratch buffer, or the one named (the next `scratch` call makes a new one). */
  releaseScratch(name?: string): void {
    for (const [n, buf] of this.scratchBuffers) {
      if (name !== undefined && n !== name) continue;
      this.destroy(buf);
      this.scratchBuffers.delete(n);
    }
  }

  /** Creates a storage buffer holding `data` (any typed array). */
  upload(label: string, data: ArrayBufferView, category: MemoryCategory): GPUBuffer {
    const buf = this.createBuffer(label, data.byteLength, category);
    try {
      this.write(buf, data);
    } catch (e) {
      // The write submits first, and so throws a GPU error reported since the last submit: on Dawn, the one for this
      // very buffer when the device had no memory for it. The caller never gets the buffer to free: freed here (no
      // recorded work names it yet, so nothing needs submitting first).
      this.ledger.destroy(buf);
      throw e;
    }
    return buf;
  }

  /**
   * Writes CPU data into a buffer in program order: work recorded before this call sees the old contents, work
   * recorded after sees the new (queue.writeBuffer alone would jump ahead of dispatches not yet submitted).
   * `offset` is in bytes from the start of `target` (a buffer or a slice of one).
   */
  write(target: BufferSlice, data: ArrayBufferView, offset = 0): void {
    // Offsets are relative to the slice; a write past its end would overwrite the next tensor of an arena.
    if (offset + data.byteLength > sliceBytes(target)) {
      throw new FinetuneError('internal', `write of ${data.byteLength} bytes at ${offset} overruns "${sliceBuffer(target).label}" (${sliceBytes(target)} bytes)`);
    }
    const buffer = sliceBuffer(target);
    offset += sliceOffset(target);
    this.flush();
    // writeBuffer needs a multiple of 4 bytes.
    if (data.byteLength % 4 !== 0) {
      const padded = new Uint8Array(Math.ceil(data.byteLength / 4) * 4);
      padded.set(new Uint8Array(data.buffer, data.byteOffset, data.byteLength));
      this.device.queue.writeBuffer(buffer, offset, padded);
    } else {
      this.device.queue.writeBuffer(buffer, offset, data.buffer, data.byteOffset, data.byteLength);
    }
  }

  /**
   * Frees a buffer. Recorded work that is not submitted yet may still name it, and WebGPU refuses a submit that uses a
   * destroyed buffer (it would poison the device for the next run): that work is submitted first. On a lost device
   * nothing runs any more, so there is nothing to submit.
   */
  destroy(buffer: GPUBuffer): void {
    if (this.encoder && !this.lostInfo && !this.pendingError) this.flush();
    this.bindGroups.forget(buffer);
    this.ledger.destroy(buffer);
  }

  private ensurePass(): GPUComputePassEncoder {
    if (!this.encoder) this.encoder = this.device.createCommandEncoder({ label: 'finetune' });
    if (!this.pass) this.pass = this.encoder.beginComputePass();
    return this.pass;
  }

  private endPass(): GPUCommandEncoder {
    if (!this.encoder) this.encoder = this.device.createCommandEncoder({ label: 'finetune' });
    if (this.pass) {
      this.pass.end();
      this.pass = null;
    }
    return this.encoder;
  }

  /**
   * Records one compute dispatch. Binding 0 is the uniform block (if `uniforms` is given), then `buffers` in order.
   * Buffers may be given with an offset/size to bind a slice.
   */
  dispatch(
    spec: KernelSpec,
    buffers: readonly (GPUBuffer | GPUBufferBinding)[],
    uniforms: ArrayBuffer | ArrayBufferView | null,
    workgroups: readonly [number, number?, number?],
  ): void {
    this.checkHealthy();
    const [x, y = 1, z = 1] = workgroups;
    if (x === 0 || y === 0 || z === 0) return;
    const maxWg = this.device.limits.maxComputeWorkgroupsPerDimension;
    if (x > maxWg || y > maxWg || z > maxWg) {
      throw new FinetuneError('internal', `${spec.shader}: dispatch ${x}×${y}×${z} exceeds ${maxWg} workgroups per dimension`);
    }
    const pipeline = this.registry.pipeline(spec);
    // Binding i is entries[i]: the uniform block first when there is one, then the buffers.
    const entries: GPUBufferBinding[] = [];
    if (uniforms) {
      if (this.uniformSlotsUsed === UNIFORM_SLOTS) this.flush();
      const bytes = uniforms instanceof ArrayBuffer ? new Uint8Array(uniforms) : new Uint8Array(uniforms.buffer, uniforms.byteOffset, uniforms.byteLength);
      if (bytes.byteLength > UNIFORM_SLOT) throw new FinetuneError('internal', `${spec.shader}: uniforms over ${UNIFORM_SLOT} bytes`);
      const offset = this.uniformSlotsUsed * UNIFORM_SLOT;
      new Uint8Array(this.uniformStaging, offset, bytes.byteLength).set(bytes);
      this.uniformSlotsUsed++;
      entries.push({ buffer: this.uniformBuffer, offset, size: Math.ceil(bytes.byteLength / 16) * 16 });
    }
    for (const b of buffers) entries.push('buffer' in b ? b : { buffer: b });
    const bindGroup = this.cacheBindGroups
      ? this.bindGroups.get(pipeline, entries, spec.shader)
      : this.device.createBindGroup({ label: spec.shader, layout: pipeline.getBindGroupLayout(0), entries: entries.map((resource, binding) => ({ binding, resource })) });
    const pass = this.profiler ? this.profiledPass(spec, this.profiler) : this.ensurePass();
    pass.setPipeline(pipeline);
    pass.setBindGroup(0, bindGroup);
    pass.dispatchWorkgroups(x, y, z);
    if (this.profiler) this.endPass();
    this.dispatchCount++;
  }

  /** A compute pass of its own for one profiled dispatch, its start and end timestamped (profileDispatches). */
  private profiledPass(spec: KernelSpec, profiler: DispatchProfiler): GPUComputePassEncoder {
    this.pass = this.endPass().beginComputePass({ label: spec.shader, timestampWrites: profiler.writesFor(spec) });
    return this.pass;
  }

  /**
   * Records `record` with each dispatch in a compute pass of its own, timestamps written around it, runs it, and
   * returns each dispatch's kernel and GPU time in recording order (`finetune bench profile`). For measurements only:
   * the separate passes add a little time. Needs the device's 'timestamp-query' feature; at most `capacity`
   * dispatches. What `record` cannot do throws at once (no such feature, a profile already recording, over capacity),
   * with the profiler detached.
   */
  profileDispatches(record: () => void, capacity = 1024): Promise<ProfiledDispatch[]> {
    if (!this.device.features.has('timestamp-query')) {
      throw new FinetuneError('no-webgpu', "this GPU adapter offers no 'timestamp-query' feature, so the time of each dispatch cannot be measured");
    }
    if (this.profiler) throw new FinetuneError('internal', 'profileDispatches: a profile is already being recorded');
    this.flush();
    const profiler = new DispatchProfiler(this.device, capacity);
    this.profiler = profiler;
    try {
      record();
    } catch (e) {
      // What was recorded names the query set: submit it before the set goes.
      this.flush();
      profiler.destroy();
      throw e;
    } finally {
      this.profiler = null;
    }
    return this.readProfile(profiler);
  }

  /** The resolved timestamps of a recorded profile, as each dispatch's time (read back as any buffer is). */
  private async readProfile(profiler: DispatchProfiler): Promise<ProfiledDispatch[]> {
    const resolved = this.ledger.create('profile timestamps', profiler.resolveBytes, GPUBufferUsage.QUERY_RESOLVE | GPUBufferUsage.COPY_SRC, 'io');
    try {
      if (profiler.specs.length) this.endPass().resolveQuerySet(profiler.querySet, 0, 2 * profiler.specs.length, resolved, 0);
      return profiler.times(new BigUint64Array(await this.read(resolved)));
    } finally {
      this.ledger.destroy(resolved);
      profiler.destroy();
    }
  }

  copy(src: GPUBuffer, srcOffset: number, dst: GPUBuffer, dstOffset: number, size: number): void {
    this.endPass().copyBufferToBuffer(src, srcOffset, dst, dstOffset, size);
  }

  /** Zeroes `size` bytes (default: to the end) from `offset` of a buffer or slice; offset and size multiples of 4. */
  clear(target: BufferSlice, offset = 0, size?: number): void {
    this.endPass().clearBuffer(sliceBuffer(target), sliceOffset(target) + offset, size ?? sliceBytes(target) - offset);
  }

  /** Submits everything recorded so far. */
  flush(): void {
    this.checkHealthy();
    if (this.uniformSlotsUsed) {
      this.device.queue.writeBuffer(this.uniformBuffer, 0, this.uniformStaging, 0, this.uniformSlotsUsed * UNIFORM_SLOT);
      this.uniformSlotsUsed = 0;
    }
    if (this.encoder) {
      const enc = this.endPass();
      this.encoder = null;
      this.device.queue.submit([enc.finish()]);
    }
  }

  /** Copies `size` bytes (default: to the end) from `offset` of a buffer or slice back to the CPU (flushes first). */
  async read(source: BufferSlice, offset = 0, size?: number): Promise<ArrayBuffer> {
    const bytes = size ?? sliceBytes(source) - offset;
    if (offset + bytes > sliceBytes(source)) {
      throw new FinetuneError('internal', `read of ${bytes} bytes at ${offset} overruns "${sliceBuffer(source).label}" (${sliceBytes(source)} bytes)`);
    }
    const buffer = sliceBuffer(source);
    offset += sliceOffset(source);
    const aligned = Math.ceil(bytes / 4) * 4;
    const staging = this.ledger.create(`readback ${buffer.label}`, aligned, GPUBufferUsage.COPY_DST | GPUBufferUsage.MAP_READ, 'io');
    try {
      this.endPass().copyBufferToBuffer(buffer, offset, staging, 0, aligned);
      this.flush();
      await this.mapOrFail(staging);
      const out = staging.getMappedRange(0, aligned).slice(0, bytes);
      staging.unmap();
      this.checkHealthy();
      return out;
    } finally {
      this.ledger.destroy(staging);
    }
  }

  async readF32(source: BufferSlice, offset = 0, count?: number): Promise<Float32Array> {
    return new Float32Array(await this.read(source, offset, count === undefined ? undefined : count * 4));
  }

  /**
   * Waits until all submitted work is done. A 4-byte mapAsync after the work is the fence: queue.onSubmittedWorkDone
   * hung on one driver (docs/testing.md).
   */
  async sync(): Promise<void> {
    const fence = this.freeFences.pop() ?? this.newFence();
    try {
      this.endPass().copyBufferToBuffer(this.fenceSource, 0, fence, 0, 4);
      this.flush();
      await this.mapOrFail(fence);
      fence.unmap();
    } finally {
      // Unmapped whichever way it went (a flush that threw a pending error dropped the copy; a failed map leaves it
      // unmapped): back in the pool, or each failed wait made one more.
      this.freeFences.push(fence);
    }
    this.checkHealthy();
  }

  private newFence(): GPUBuffer {
    return this.ledger.create('fence', 4, GPUBufferUsage.COPY_DST | GPUBufferUsage.MAP_READ, 'scratch');
  }

  private async mapOrFail(buffer: GPUBuffer): Promise<void> {
    try {
      await buffer.mapAsync(GPUMapMode.READ);
    } catch (e) {
      this.checkHealthy();
      throw new FinetuneError('device-lost', `reading back from the GPU failed: ${thrownMessage(e)}`);
    }
  }

  destroyDevice(): void {
    this.device.destroy();
  }
}
