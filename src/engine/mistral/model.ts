// The Mistral decoder with LoRA: forward, backward and the optimizer step, recorded onto the GPU.
//
// Per layer (docs/mistral.md): h = x + o(attn(rope(q(n1(x))), rope(k(n1(x))), v(n1(x)))); out = h + down(silu(gate(n2(h))) * up(n2(h))).
// Recomputation (what PyTorch calls activation checkpointing): the forward keeps only each layer's input xs[l] (N,
// C); the backward recomputes the layer's forward into one set of layer buffers, then runs its backward. Activation
// memory is therefore (L+1)·N·C plus one layer's worth, whatever the depth. Where memory allows, the last
// `keptLayers` layers each get a set of their own: their forward's intermediates stay until their backward, which
// then skips the recomputation (the same kernels on the same inputs, so the numbers are identical bit for bit). Every
// buffer is sized by `runnerLayout` (./sizing.ts, which the memory planner also adds up) and made in the constructor.

import { type Projection } from '../../core/mistral.ts';
import type { TokenBatch } from '../../core/token-batch.ts';
import { FinetuneError } from '../../core/errors.ts';
import type { GpuContext } from '../gpu.ts';
import { adamw_step, clip_scale, createGradNormPartials, grad_norm_sq, type GradNormPartials } from '../kernels/adamw.ts';
import { attention_backward, attention_forward } from '../kernels/attention.ts';
import { copy } from '../kernels/elementwise.ts';
import { checkTokenIds, embedding_forward } from '../kernels/embedding.ts';
import { lora_backward, lora_intermediate, loraInputTerm, loraUpTerm, type LoraDropout, type LoraScratch } from '../kernels/lora.ts';
import { rmsnorm_backward, rmsnorm_forward } from '../kernels/norm.ts';
import { rope_backward_qk, rope_forward_qk, ropeTable } from '../kernels/rope.ts';
import { swiglu_backward, swiglu_forward } from '../kernels/swiglu.ts';
import { createLmheadXentScratch, destroyLmheadXentScratch, lmhead_xent_forward, lmhead_xent_forward_backward, type LmheadXentScratch } from '../kernels/xent.ts';
import type { Dims } from './dims.ts';
import { base_linear_backward, base_linear_forward } from './linear.ts';
import { loraChunkLimit } from './lora-layout.ts';
import { loraGradSlices, zeroLoraGrads, type GpuLora } from './lora.ts';
import { MLP_GRADIENT_LABEL, runnerBytes, runnerLayout, type HeadMode, type RunnerShape } from './sizing.ts';
import { layerWeights, type LayerWeights, type MistralWeights } from './weights.ts';

export type { TokenBatch } from '../../core/token-batch.ts';

/**
 * How a pass treats the LoRA dropout: 'train' draws a mask, 'eval' uses none (inference mode, as PEFT's model.eval()).
 * Validation, generation and the golden check run in 'eval'; only training steps run in 'train'.
 */
export type PassMode = 'train' | 'eval';

export interface RunnerOptions {
  /** Largest micro-batch (rows × tokens) this runner is sized for. */
  B: number;
  T: number;
  /** Tokens per chunk of the lm_head + cross-entropy (the logits chunk is chunk × V f32); default sizing.ts's defaultXentChunk. */
  xentChunk?: number;
  seed?: number;
  /** Layers (the last ones) whose intermediates are kept for the backward instead of recomputed; default 0. */
  keptLayers?: number;
  /** The recomputed layers keep their attention output and logsumexp: their recomputation skips the attention forward. */
  keptAttention?: boolean;
  /**
   * Which tokens the lm_head computes (sizing.ts HeadMode): 'counted' (default) those with a loss; 'all' every one,
   * so that `lse` holds every position's logsumexp (the golden check reads them all).
   */
  head?: HeadMode;
}

export interface OptimizerSettings {
  lr: number;
  beta1: number;
  beta2: number;
  eps: number;
  weightDecay: number;
  /** ≤ 0 disables clipping. */
  maxGradNorm: number;
}

interface LayerBuffers {
  n1: GPUBuffer; // (N, C)
  rstd1: GPUBuffer; // (N)
  q: GPUBuffer; // (N, nH·hd)
  k: GPUBuffer; // (N, nKV·hd)
  v: GPUBuffer; // (N, nKV·hd)
  att: GPUBuffer; // (N, nH·hd)
  lse: GPUBuffer; // (N, nH)
  h: GPUBuffer; // (N, C)
  n2: GPUBuffer; // (N, C)
  rstd2: GPUBuffer; // (N)
  g: GPUBuffer; // (N, I)
  u: GPUBuffer; // (N, I)
  a: GPUBuffer; // (N, I)
}

interface GradBuffers {
  dres: GPUBuffer; // (N, C) gradient of the residual stream
  dn: GPUBuffer; // (N, C)
  dq: GPUBuffer; // (N, nH·hd)
  dk: GPUBuffer; // (N, nKV·hd)
  dv: GPUBuffer; // (N, nKV·hd)
  datt: GPUBuffer; // (N, nH·hd)
  /** (N, I) d swiglu, then d gate over it (in place), then the attention backward's dS (sizing.ts: grads.da). */
  da: GPUBuffer;
  du: GPUBuffer; // (N, I)
  dxf: GPUBuffer; // (N, C)
  attnStats: GPUBuffer; // (2, N, nH) + N: lse, D and the segment ids, for the attention backward
  attnSpill: GPUBuffer | null; // da, when it is large enough for dS (sizing.ts: attentionSpillFloats), else null
}

/**
 * Bytes of activations and scratch a runner allocates for N = B·T tokens (the ledger reports the same): the sum of
 * the one layout (./sizing.ts) the constructor allocates from.
 */
export function activationBytes(d: Dims, shape: RunnerShape): number {
  const b = runnerBytes(runnerLayout(d, shape));
  return b.activations + b.scratch;
}

export class MistralRunner {
  readonly N: number;
  private readonly ids: GPUBuffer;
  private readonly targets: GPUBuffer;
  private readonly seg: GPUBuffer;
  private readonly pos: GPUBuffer;
  /** (N) f32: each token's weight in a packed validation pass's loss (evaluateWeighted). */
  private readonly lossWeights: GPUBuffer;
  /** (N) u32 and i32: the batch's tokens with a loss, and their targets: the rows the lm_head computes. */
  private readonly headRows: GPUBuffer;
  private readonly headTargets: GPUBuffer;
  /**
   * The batch's counted tokens (positions into it, ascending) when the head computes only those, and fewer than all;
   * null when it computes every token (head 'all', or every token counted).
   */
  private counted: Uint32Array | null = null;
  private readonly rope: GPUBuffer;
  /** xs[l] is the input of layer l; xs[L] the input of the final norm. */
  readonly xs: GPUBuffer[];
  readonly xf: GPUBuffer; // (N, C) after the final norm
  private readonly rstdf: GPUBuffer;
  readonly lossSum: GPUBuffer; // (1)
  /** (N) logsumexp of the head's logits: every token's with head 'all', else one a counted token, in their order. */
  readonly lse: GPUBuffer;
  readonly clip: GPUBuffer; // (2) [scale, norm]
  /** sets[i] holds the intermediates of layer firstKept + i; the last set (when some layer is recomputed) is shared. */
  private readonly sets: LayerBuffers[];
  /**
   * With keptAttention, recomputed layer l < firstKept − 1 reads and writes the shared set with its own att and lse
   * (attentionViews[l]); the last recomputed layer uses the shared set's, which nothing overwrites between its forward and its
   * backward.
   */
  private readonly attentionViews: LayerBuffers[] = [];
  /**
   * ts[l]: layer l's LoRA intermediates t (N, r) per adapted module, its own whether kept or recomputed (sizing.ts:
   * loraT): the recomputation reuses the forward's instead of reading each module's input again.
   */
  private readonly ts: Partial<Record<Projection, GPUBuffer>>[];
  /** Whether the recomputed layers skip the attention forward (their forward's attention is kept). */
  readonly keptAttention: boolean;
  /** Layers firstKept..L−1 keep their intermediates; the layers below are recomputed. */
  readonly firstKept: number;
  private readonly G: GradBuffers;
  private readonly loraScratch: LoraScratch;
  private readonly xent: LmheadXentScratch;
  private readonly normPartials: GradNormPartials | null;
  private readonly owned: GPUBuffer[] = [];
  private B = 0;
  private T = 0;
  private readonly xentChunk: number;
  private readonly seed: number;
  /** Counts training forward passes (they draw a dropout mask); a recomputation reuses its forward's value. */
  private microStep = 0;
  private optimizerSteps = 0;

  constructor(
    private readonly ctx: GpuContext,
    readonly weights: MistralWeights,
    readonly lora: GpuLora | null,
    readonly o: RunnerOptions,
  ) {
    const d = weights.dims;
    const N = (this.N = o.B * o.T);
    const r = lora?.r ?? 0;
    const s = runnerLayout(d, {
      B: o.B,
      T: o.T,
      r,
      targets: lora?.targets ?? [],
      xentChunk: o.xentChunk,
      // What one binding holds: the adapter's arenas are chunked by it; without an adapter, the device's own.
      loraChunkBytes: lora?.arenas.layout.maxChunkBytes ?? loraChunkLimit(ctx.device.limits),
      keptLayers: o.keptLayers,
      keptAttention: o.keptAttention,
      head: o.head,
    });
    this.firstKept = d.L - s.keptLayers;
    this.keptAttention = (o.keptAttention ?? false) && this.firstKept > 0;
    this.xentChunk = s.xentChunk;
    this.seed = o.seed ?? 42;
    // A buffer the GPU cannot make is reported at the next submit (the rope table's upload), and the lm_head scratch
    // refuses a chunk over the device's limits at the end: the caller gets no runner to destroy, so what was made is
    // freed here (at 7B the activations alone are gigabytes, which every later try would then lack).
    let xentMade: LmheadXentScratch | null = null;
    try {
      const buf = (label: string, floats: number, cat: 'activations' | 'scratch' | 'io' = 'activations'): GPUBuffer => {
        const b = ctx.createBuffer(label, Math.max(1, floats) * 4, cat);
        this.owned.push(b);
        return b;
      };
      this.ids = buf('input ids', s.io.ids, 'io');
      this.targets = buf('targets', s.io.targets, 'io');
      this.seg = buf('segment ids', s.io.seg, 'io');
      this.pos = buf('positions', s.io.pos, 'io');
      this.lossWeights = buf('loss weights', s.io.lossWeights, 'io');
      this.headRows = buf('head rows', s.io.headRows, 'io');
      this.headTargets = buf('head targets', s.io.headTargets, 'io');
      const table = ropeTable(o.T, d.hd, d.theta);
      if (table.length !== s.ropeTable) throw new FinetuneError('internal', `rope table of ${table.length} floats, the layout says ${s.ropeTable}`);
      this.rope = ctx.upload('rope table', table, 'scratch');
      this.owned.push(this.rope);
      this.xs = s.xs.map((n, l) => buf(`x[${l}]`, n));
      this.xf = buf('x final', s.xf);
      this.rstdf = buf('rstd final', s.rstdf);
      this.lossSum = buf('loss sum', s.lossSum, 'scratch');
      this.lse = buf('head lse', s.lse);
      this.clip = buf('clip', s.clip, 'scratch');
      const Ls = s.layer;
      // One n1, n2 and a for every layer (sizing.ts: REBUILT_BUFFERS): a kept layer rebuilds them before its backward.
      const rebuilt = { n1: buf('n1', Ls.n1), n2: buf('n2', Ls.n2), a: buf('swiglu', Ls.a) };
      this.ts = Array.from({ length: d.L }, (_, l) => {
        const t: Partial<Record<Projection, GPUBuffer>> = {};
        for (const name of lora?.targets ?? []) t[name] = buf(`lora t ${name} ${l}`, s.loraT[name] ?? 0);
        return t;
      });
      this.sets = Array.from({ length: s.layerSets }, (_, i) => {
        // Labels say which layer a set belongs to: the ledger lists them.
        const tag = i < s.keptLayers ? ` ${this.firstKept + i}` : '';
        return {
          n1: rebuilt.n1,
          rstd1: buf(`rstd1${tag}`, Ls.rstd1),
          q: buf(`q${tag}`, Ls.q),
          k: buf(`k${tag}`, Ls.k),
          v: buf(`v${tag}`, Ls.v),
          att: buf(`att${tag}`, Ls.att),
          lse: buf(`attention lse${tag}`, Ls.lse),
          h: buf(`h${tag}`, Ls.h),
          n2: rebuilt.n2,
          rstd2: buf(`rstd2${tag}`, Ls.rstd2),
          g: buf(`gate${tag}`, Ls.g),
          u: buf(`up${tag}`, Ls.u),
          a: rebuilt.a,
        };
      });
      const shared = this.sets[this.sets.length - 1];
      for (let l = 0; l < s.attentionSets; l++) {
        this.attentionViews.push({ ...shared, att: buf(`att ${l}`, s.attention.att), lse: buf(`attention lse ${l}`, s.attention.lse) });
      }
      const Gs = s.grads;
      const da = buf(MLP_GRADIENT_LABEL, Gs.da);
      this.G = {
        dres: buf('d residual', Gs.dres),
        dn: buf('d norm', Gs.dn),
        dq: buf('dq', Gs.dq),
        dk: buf('dk', Gs.dk),
        dv: buf('dv', Gs.dv),
        datt: buf('d att', Gs.datt),
        da,
        du: buf('d up', Gs.du),
        dxf: buf('d x final', Gs.dxf),
        attnStats: buf('attention lse and D', s.attnStats, 'scratch'),
        attnSpill: s.attnSpill > 0 ? da : null,
      };
      this.loraScratch = {
        dt: lora && s.loraDt !== null ? buf('lora dt', s.loraDt, 'scratch') : null,
      };
      this.xent = xentMade = createLmheadXentScratch(ctx, N, d.C, d.V, this.xentChunk, this.headMode === 'counted');
      this.normPartials = lora ? createGradNormPartials(ctx, loraGradSlices(lora)) : null;
      if (this.normPartials) this.owned.push(this.normPartials.buffer);
      // The planner counts the slots from the same arena layout: they must agree exactly.
      if (this.normPartials && this.normPartials.slots !== (s.gradNormSlots ?? 0)) {
        throw new FinetuneError('internal', `grad-norm partials: ${this.normPartials.slots} slots, the layout has ${s.gradNormSlots}`);
      }
    } catch (e) {
      for (const b of this.owned) ctx.destroy(b);
      this.owned.length = 0;
      if (xentMade) destroyLmheadXentScratch(ctx, xentMade);
      throw e;
    }
  }

  destroy(): void {
    for (const b of this.owned) this.ctx.destroy(b);
    destroyLmheadXentScratch(this.ctx, this.xent);
  }

  /** Uploads a micro-batch; checks ids against the vocabulary and positions against the RoPE table. */
  setBatch(b: TokenBatch): void {
    const d = this.weights.dims;
    const n = b.B * b.T;
    if (b.B * b.T > this.N || b.T > this.o.T) throw new FinetuneError('internal', `batch ${b.B}×${b.T} exceeds the runner's ${this.o.B}×${this.o.T}`);
    for (const [name, arr] of [['inputIds', b.inputIds], ['targets', b.targets], ['segmentIds', b.segmentIds], ['positionIds', b.positionIds]] as const) {
      if (arr.length !== n) throw new FinetuneError('internal', `batch.${name} has ${arr.length} values, expected ${n}`);
    }
    checkTokenIds(b.inputIds, d.V);
    for (let i = 0; i < n; i++) {
      if (!(b.positionIds[i] >= 0 && b.positionIds[i] < this.o.T)) throw new FinetuneError('internal', `position ${b.positionIds[i]} outside [0, ${this.o.T})`);
    }
    this.B = b.B;
    this.T = b.T;
    this.ctx.write(this.ids, Uint32Array.from(b.inputIds));
    this.ctx.write(this.targets, Int32Array.from(b.targets));
    this.ctx.write(this.seg, Uint32Array.from(b.segmentIds));
    this.ctx.write(this.pos, Uint32Array.from(b.positionIds));
    this.counted = null;
    if (this.headMode === 'counted') {
      const rows = countedRows(b.targets, d.V);
      if (rows.length < n) {
        this.counted = rows;
        if (rows.length > 0) {
          this.ctx.write(this.headRows, rows);
          this.ctx.write(this.headTargets, Int32Array.from(rows, (t) => b.targets[t]));
        }
      }
    }
  }

  private get headMode(): HeadMode {
    return this.o.head ?? 'counted';
  }

  private get n(): number {
    return this.B * this.T;
  }

  /** The dropout of one module in one pass: none in inference mode. */
  private dropout(layer: number, module: number, mode: PassMode): LoraDropout | null {
    const l = this.lora;
    if (!l || l.dropout <= 0 || mode === 'eval') return null;
    return { p: l.dropout, key: { seed: this.seed, step: this.microStep, layer, module } };
  }

  /** Whether layer l keeps its forward's intermediates for its backward (no recomputation). */
  isKept(l: number): boolean {
    return l >= this.firstKept;
  }

  /** The buffers layer l's intermediates live in: its own set when kept, else the shared one. */
  private layerSet(l: number): LayerBuffers {
    if (this.isKept(l)) return this.sets[l - this.firstKept];
    return this.attentionViews[l] ?? this.sets[this.sets.length - 1];
  }

  /**
   * Y (+)= X·Wᵀ + scale·(drop(X)·Aᵀ)·Bᵀ for one module of one layer (w: that layer's weights): t first (unless this is
   * the recomputation, which finds the forward's: the same mask on the same X), then the base product with the
   * up-projection as its low-rank term (in its epilogue where the kernel allows, linear.ts).
   */
  private proj(mode: PassMode, w: LayerWeights, layer: number, name: Projection, Y: GPUBuffer, X: GPUBuffer, accumulate: boolean, recomputing: boolean): void {
    const m = this.lora?.modules[layer][name];
    const t = this.ts[layer][name];
    if (m && t && this.lora) {
      if (!recomputing) lora_intermediate(this.ctx, t, X, m.A, this.n, m.in, this.lora.r, this.dropout(layer, m.moduleId, mode));
      base_linear_forward(this.ctx, Y, X, w.linears[name], this.n, accumulate, name, loraUpTerm(t, m.B, this.lora.r, this.lora.scale));
    } else base_linear_forward(this.ctx, Y, X, w.linears[name], this.n, accumulate, name);
  }

  /**
   * dX (+)= dY·W + LoRA's input gradient; accumulates the module's dA, dB. X and t are the forward's. The adapter's
   * gradients first, then the base's input gradient with LoRA's as its low-rank term.
   */
  private projBackward(mode: PassMode, w: LayerWeights, layer: number, name: Projection, dX: GPUBuffer, dY: GPUBuffer, X: GPUBuffer, accumulate = false): void {
    const m = this.lora?.modules[layer][name];
    const t = this.ts[layer][name];
    if (m && t && this.lora) {
      const dropout = this.dropout(layer, m.moduleId, mode);
      const dt = lora_backward(this.ctx, null, m.dA, m.dB, dY, X, t, m.A, m.B, this.n, m.in, m.out, this.lora.r, this.lora.scale, dropout, this.loraScratch);
      base_linear_backward(this.ctx, dX, dY, w.linears[name], this.n, accumulate, name, loraInputTerm(dt, m.A, this.lora.r, dropout));
    } else base_linear_backward(this.ctx, dX, dY, w.linears[name], this.n, accumulate, name);
  }

  /** Forward of layer l from xs[l]; writes xs[l+1] unless only the intermediates are wanted (recomputation). */
  private layerForward(mode: PassMode, l: number, writeOutput: boolean): void {
    const { ctx } = this;
    const d = this.weights.dims;
    // Asked for once per layer pass: with streamed layers this is where layer l reaches the GPU (and l±1 follows).
    const w = layerWeights(this.weights, l);
    const n = this.n;
    const X = this.xs[l];
    const Lb = this.layerSet(l);
    const re = !writeOutput;
    this.inputNorm(w, l, Lb);
    this.proj(mode, w, l, 'q_proj', Lb.q, Lb.n1, false, re);
    this.proj(mode, w, l, 'k_proj', Lb.k, Lb.n1, false, re);
    this.proj(mode, w, l, 'v_proj', Lb.v, Lb.n1, false, re);
    rope_forward_qk(ctx, Lb.q, Lb.k, this.pos, this.rope, n, d.nH, d.nKV, d.hd);
    // A recomputation with the attention kept: the forward's att and lse are still there (q, k and v are recomputed
    // for the attention backward; they come out the same bits, so the kept attention is the one they would give).
    if (writeOutput || !this.keptAttention) attention_forward(ctx, Lb.att, Lb.lse, Lb.q, Lb.k, Lb.v, this.seg, this.B, this.T, d.nH, d.nKV, d.hd);
    copy(ctx, Lb.h, X, n * d.C);
    this.proj(mode, w, l, 'o_proj', Lb.h, Lb.att, true, re);
    this.postAttentionNorm(w, Lb);
    this.proj(mode, w, l, 'gate_proj', Lb.g, Lb.n2, false, re);
    this.proj(mode, w, l, 'up_proj', Lb.u, Lb.n2, false, re);
    this.swiglu(Lb);
    // The recomputation needs no layer output: down_proj's backward reads only a and the forward's t.
    if (writeOutput) {
      copy(ctx, this.xs[l + 1], Lb.h, n * d.C);
      this.proj(mode, w, l, 'down_proj', this.xs[l + 1], Lb.a, true, false);
    }
  }

  /**
   * A kept layer's n1, n2 and a, which later layers' forwards overwrote (sizing.ts: REBUILT_BUFFERS), rebuilt for its
   * backward where its LoRA products read them (the inputs of their dA); its norms' rstd are rewritten with the same
   * values. The same kernels on the same inputs as its forward, so the same bits.
   */
  private rebuild(w: LayerWeights, l: number, Lb: LayerBuffers): void {
    const modules = this.lora?.modules[l];
    if (!modules) return;
    const adapted = (names: readonly Projection[]): boolean => names.some((name) => modules[name] !== undefined);
    if (adapted(['q_proj', 'k_proj', 'v_proj'])) this.inputNorm(w, l, Lb);
    if (adapted(['gate_proj', 'up_proj'])) this.postAttentionNorm(w, Lb);
    if (adapted(['down_proj'])) this.swiglu(Lb);
  }

  // The three passes a layer's forward and a kept layer's rebuild share, so both run the same kernel on the same inputs.
  /** n1, rstd1 = norm(x) of layer l. */
  private inputNorm(w: LayerWeights, l: number, Lb: LayerBuffers): void {
    const d = this.weights.dims;
    rmsnorm_forward(this.ctx, Lb.n1, Lb.rstd1, this.xs[l], w.inputNorm, this.n, d.C, d.eps);
  }

  /** n2, rstd2 = norm(h). */
  private postAttentionNorm(w: LayerWeights, Lb: LayerBuffers): void {
    const d = this.weights.dims;
    rmsnorm_forward(this.ctx, Lb.n2, Lb.rstd2, Lb.h, w.postAttentionNorm, this.n, d.C, d.eps);
  }

  /** a = silu(g) · u. */
  private swiglu(Lb: LayerBuffers): void {
    swiglu_forward(this.ctx, Lb.a, Lb.g, Lb.u, this.n * this.weights.dims.I);
  }

  /**
   * Backward of layer l: G.dres holds d xs[l+1] on entry and d xs[l] on exit. Needs layer l's intermediates: a kept
   * layer's from the forward, else layerForward(l, false) just before.
   */
  private layerBackward(mode: PassMode, l: number): void {
    const { ctx } = this;
    const d = this.weights.dims;
    const w = layerWeights(this.weights, l);
    const n = this.n;
    const Lb = this.layerSet(l);
    const G = this.G;
    if (this.isKept(l)) this.rebuild(w, l, Lb);
    // out = h + down(a)
    this.projBackward(mode, w, l, 'down_proj', G.da, G.dres, Lb.a);
    // d gate over d swiglu (in place): da is dead after this, and holds dS in the attention backward below.
    swiglu_backward(ctx, G.da, G.du, G.da, Lb.g, Lb.u, n * d.I);
    this.projBackward(mode, w, l, 'gate_proj', G.dn, G.da, Lb.n2);
    this.projBackward(mode, w, l, 'up_proj', G.dn, G.du, Lb.n2, true);
    rmsnorm_backward(ctx, G.dres, G.dn, Lb.h, w.postAttentionNorm, Lb.rstd2, n, d.C, { accumulate: true });
    // h = x + o(att)
    this.projBackward(mode, w, l, 'o_proj', G.datt, G.dres, Lb.att);
    attention_backward(ctx, G.dq, G.dk, G.dv, G.datt, Lb.att, Lb.lse, Lb.q, Lb.k, Lb.v, this.seg, this.B, this.T, d.nH, d.nKV, d.hd, G.attnStats, G.attnSpill ?? undefined);
    rope_backward_qk(ctx, G.dq, G.dk, this.pos, this.rope, n, d.nH, d.nKV, d.hd);
    this.projBackward(mode, w, l, 'q_proj', G.dn, G.dq, Lb.n1);
    this.projBackward(mode, w, l, 'k_proj', G.dn, G.dk, Lb.n1, true);
    this.projBackward(mode, w, l, 'v_proj', G.dn, G.dv, Lb.n1, true);
    rmsnorm_backward(ctx, G.dres, G.dn, this.xs[l], w.inputNorm, Lb.rstd1, n, d.C, { accumulate: true });
  }

  /** Embeddings and every layer: fills xs[0..L] and xf. */
  forwardHidden(mode: PassMode): void {
    const d = this.weights.dims;
    embedding_forward(this.ctx, this.xs[0], this.ids, this.weights.embed.buffer, this.n, d.C, { storage: this.weights.embed.storage, V: d.V });
    for (let l = 0; l < d.L; l++) {
      this.layerForward(mode, l, true);
      // Long models: submit per layer so the driver can start while we record.
      if (l % 4 === 3) this.ctx.flush();
    }
    rmsnorm_forward(this.ctx, this.xf, this.rstdf, this.xs[d.L], this.weights.finalNorm, this.n, d.C, d.eps);
  }

  private headArgs(lossScale: number, lossWeights?: GPUBuffer) {
    const d = this.weights.dims;
    const counted = this.counted;
    return {
      lossWeights,
      lossSum: this.lossSum,
      lse: this.lse,
      h: this.xf,
      W: this.weights.lmHead.buffer,
      wStorage: this.weights.lmHead.storage,
      // The counted tokens alone: their own targets (and weights, evaluateWeighted) in the list's order.
      ...(counted ? { targets: this.headTargets, rows: { index: this.headRows, count: counted.length } } : { targets: this.targets }),
      BT: this.n,
      C: d.C,
      V: d.V,
      lossScale,
      chunkTokens: this.xentChunk,
      scratch: this.xent,
    };
  }

  /** lm_head + cross-entropy forward and backward from xf, then the final norm's backward: G.dres = d xs[L]. */
  private headBackward(lossScale: number, gradScale: number): void {
    const d = this.weights.dims;
    lmhead_xent_forward_backward(this.ctx, { ...this.headArgs(lossScale), dh: this.G.dxf, gradScale });
    rmsnorm_backward(this.ctx, this.G.dres, this.G.dxf, this.xs[d.L], this.weights.finalNorm, this.rstdf, this.n, d.C);
  }

  /**
   * The step's work above the last layer, as forwardBackward does it: final norm, lm_head + cross-entropy forward and
   * backward, the norm's backward (from whatever xs[L] holds). For the time estimate (src/run/calibrate.ts).
   */
  headTrainingWork(lossScale: number): void {
    const d = this.weights.dims;
    rmsnorm_forward(this.ctx, this.xf, this.rstdf, this.xs[d.L], this.weights.finalNorm, this.n, d.C, d.eps);
    this.headBackward(lossScale, lossScale);
    this.ctx.flush();
  }

  /** Loss without gradients (validation), in inference mode: adds lossScale·Σ token losses into lossSum. */
  evaluate(lossScale: number): void {
    this.forwardHidden('eval');
    lmhead_xent_forward(this.ctx, this.headArgs(lossScale));
  }

  /**
   * The same with a weight per token of the batch set last (B × T values): adds Σ weight·token loss into lossSum. A
   * packed validation pass (data/batches.ts validationPasses) weighs each token by its own validation batch.
   */
  evaluateWeighted(weights: ArrayLike<number>): void {
    if (weights.length !== this.n) throw new FinetuneError('internal', `loss weights: ${weights.length} values for a batch of ${this.n} tokens`);
    const counted = this.counted;
    const listed = counted ? Float32Array.from(counted, (t) => weights[t]) : Float32Array.from(weights);
    if (listed.length > 0) this.ctx.write(this.lossWeights, listed);
    this.forwardHidden('eval');
    lmhead_xent_forward(this.ctx, this.headArgs(1, this.lossWeights));
  }

  /**
   * Forward and backward of one micro-batch: lossSum += lossScale·Σ token losses, LoRA gradients += gradScale·d(Σ losses).
   * With gradient accumulation over k micro-batches of c_i counted tokens: scale_i = 1/(c_i·k) (a mean per micro-batch,
   * averaged over micro-batches, as HF/llama-recipes). `mode` 'eval' gives the gradients of the inference-mode loss
   * (no dropout), as the golden check needs; a training step passes 'train'.
   */
  forwardBackward(lossScale: number, gradScale: number, mode: PassMode, dropoutStep?: number): void {
    if (!this.lora) throw new FinetuneError('internal', 'forwardBackward needs a LoRA adapter to train');
    // The dropout masks are a function of this counter: a trainer passes its global micro-batch index so that a run
    // resumed from a checkpoint draws the same masks as the uninterrupted run.
    if (dropoutStep !== undefined) this.microStep = dropoutStep;
    const d = this.weights.dims;
    this.forwardHidden(mode);
    this.headBackward(lossScale, gradScale);
    for (let l = d.L - 1; l >= 0; l--) {
      if (!this.isKept(l)) this.layerForward(mode, l, false);
      this.layerBackward(mode, l);
      this.ctx.flush();
    }
    if (mode === 'train') this.microStep++;
  }

  /**
   * One layer's share of a training step, as forwardBackward does it: forward (writing xs[l+1]), the recomputation
   * unless the layer is kept, and the backward from whatever G.dres holds. For benchmarks (`finetune bench layer`).
   */
  layerTrainingWork(l: number): void {
    this.layerForward('train', l, true);
    if (!this.isKept(l)) this.layerForward('train', l, false);
    this.layerBackward('train', l);
    this.ctx.flush();
  }

  /**
   * One layer's share of a validation pass, as evaluate does it: the inference-mode forward (writing xs[l+1]). For the
   * time estimate (src/run/calibrate.ts), beside headEvalWork.
   */
  layerEvalWork(l: number): void {
    this.layerForward('eval', l, true);
    this.ctx.flush();
  }

  /** The validation pass's work above the last layer: final norm, lm_head and cross-entropy forward (into lossSum). */
  headEvalWork(lossScale: number): void {
    const d = this.weights.dims;
    rmsnorm_forward(this.ctx, this.xf, this.rstdf, this.xs[d.L], this.weights.finalNorm, this.n, d.C, d.eps);
    lmhead_xent_forward(this.ctx, this.headArgs(lossScale));
    this.ctx.flush();
  }

  /**
   * The buffer layerTrainingWork's backward reads d xs[l+1] from and leaves d xs[l] in: a caller timing or comparing
   * one layer's work (kernel tuning, benchmarks) fills it, with xs[l], before the call.
   */
  get layerGradient(): GPUBuffer {
    return this.G.dres;
  }

  zeroGrads(): void {
    if (this.lora) zeroLoraGrads(this.ctx, this.lora);
  }

  resetLoss(): void {
    this.ctx.clear(this.lossSum);
  }

  /** Clips by the global gradient norm and applies one AdamW step to every LoRA tensor, all on the GPU. */
  optimizerStep(s: OptimizerSettings): void {
    this.measureGradients(s.maxGradNorm);
    this.applyUpdate(s);
  }

  /**
   * The first half of optimizerStep: the global gradient norm and the clip scale, into `clip` (readClip). Nothing is
   * updated, so a caller can read the norm and the loss and decide not to apply the step (a non-finite value).
   */
  measureGradients(maxGradNorm: number): void {
    const lora = this.lora;
    if (!lora || !this.normPartials) throw new FinetuneError('internal', 'no adapter to optimise');
    grad_norm_sq(this.ctx, this.normPartials, loraGradSlices(lora));
    clip_scale(this.ctx, this.clip, this.normPartials, maxGradNorm);
  }

  /** The second half of optimizerStep: one AdamW step with the clip scale measureGradients recorded. */
  applyUpdate(s: OptimizerSettings): void {
    const lora = this.lora;
    if (!lora) throw new FinetuneError('internal', 'no adapter to optimise');
    this.optimizerSteps++;
    const o = { lr: s.lr, beta1: s.beta1, beta2: s.beta2, eps: s.eps, weightDecay: s.weightDecay, step: this.optimizerSteps };
    // One dispatch per arena chunk, whatever the number of modules; the zero padding between tensors stays zero.
    const a = lora.arenas;
    a.params.forEach((p, i) => adamw_step(this.ctx, p, a.grads[i], a.expAvg[i], a.expAvgSq[i], this.clip, a.layout.chunkBytes[i] / 4, o));
    this.ctx.flush();
  }

  get steps(): number {
    return this.optimizerSteps;
  }

  set steps(v: number) {
    this.optimizerSteps = v;
  }

  async readLoss(): Promise<number> {
    return (await this.ctx.readF32(this.lossSum, 0, 1))[0];
  }

  /** [clip scale, global gradient norm] of the last optimizer step. */
  async readClip(): Promise<{ scale: number; norm: number }> {
    const c = await this.ctx.readF32(this.clip, 0, 2);
    return { scale: c[0], norm: c[1] };
  }
}

/**
 * The positions whose target has a loss (the cross-entropy's rule: an id in [0, V); −100 and anything else is ignored),
 * ascending.
 */
export function countedRows(targets: ArrayLike<number>, V: number): Uint32Array {
  let k = 0;
  for (let i = 0; i < targets.length; i++) if (targets[i] >= 0 && targets[i] < V) k++;
  const rows = new Uint32Array(k);
  k = 0;
  for (let i = 0; i < targets.length; i++) if (targets[i] >= 0 && targets[i] < V) rows[k++] = i;
  return rows;
}
