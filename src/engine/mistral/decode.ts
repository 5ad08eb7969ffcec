// The Mistral decoder for generation, with a KV cache: the prompt runs once (in chunks of up to `chunk` tokens), each
// layer's keys (after RoPE) and values are kept for every position so far, and every new token then costs one row of
// work instead of a forward pass over the whole sequence. GQA-aware: the cache holds nKV heads, not nH.
//
// The same layer as MistralRunner's forward (model.ts), for inference: LoRA applied without dropout, no activation
// checkpoints, no loss, and only the last row's logits. Every buffer is sized from maxT (cache) and chunk (per-call
// rows) in the constructor; the caches are in the ledger's 'kv-cache' category.

import { type Projection } from '../../core/mistral.ts';
import { FinetuneError } from '../../core/errors.ts';
import type { GpuContext } from '../gpu.ts';
import { decode_attention } from '../kernels/decode_attention.ts';
import { copy } from '../kernels/elementwise.ts';
import { checkTokenIds, embedding_forward } from '../kernels/embedding.ts';
import { lora_forward } from '../kernels/lora.ts';
import { matvec_forward, MATVEC_MAX_ROWS, nf4_matvec_forward } from '../kernels/matvec.ts';
import { rmsnorm_forward } from '../kernels/norm.ts';
import { rope_forward_qk, ropeTable } from '../kernels/rope.ts';
import { swiglu_forward } from '../kernels/swiglu.ts';
import { base_linear_forward } from './linear.ts';
import { decoderChunk } from './sizing.ts';
import type { GpuLora } from './lora.ts';
import { layerWeights, type BaseLinear, type LayerWeights, type MistralWeights } from './weights.ts';

export interface DecoderOptions {
  /** Most positions the cache holds (prompt + new tokens). */
  maxT: number;
  /**
   * Most tokens one forward call processes; a longer prompt is fed in chunks of this size. Default 128 on a hardware
   * GPU (the tiled products suit a prompt), 8 on a software adapter: there the few-row kernels (matvec) win even for
   * a prompt — a 16-token prompt of the demo model (NF4) took 16–33 s in chunks of 128 and 5–6 s in chunks of 8.
   */
  chunk?: number;
}


export class MistralDecoder {
  readonly maxT: number;
  readonly chunk: number;
  private readonly kCache: GPUBuffer[];
  private readonly vCache: GPUBuffer[];
  private readonly ids: GPUBuffer; // (chunk) u32
  private readonly pos: GPUBuffer; // (chunk) u32
  private readonly rope: GPUBuffer;
  private readonly x: GPUBuffer; // (chunk, C) residual stream
  private readonly n: GPUBuffer; // (chunk, C) normed input of a block
  private readonly rstd: GPUBuffer; // (chunk)
  private readonly q: GPUBuffer; // (chunk, nH·hd)
  private readonly k: GPUBuffer; // (chunk, nKV·hd) before it joins the cache
  private readonly v: GPUBuffer; // (chunk, nKV·hd)
  private readonly att: GPUBuffer; // (chunk, nH·hd)
  private readonly h: GPUBuffer; // (chunk, C)
  private readonly g: GPUBuffer; // (chunk, I)
  private readonly u: GPUBuffer; // (chunk, I)
  private readonly a: GPUBuffer; // (chunk, I)
  private readonly t: GPUBuffer | null; // (chunk, r) LoRA intermediate, one for every module (nothing is kept)
  private readonly last: GPUBuffer; // (C) the last row, then normed
  private readonly lastNormed: GPUBuffer; // (C)
  private readonly lastRstd: GPUBuffer; // (1)
  /** (V) logits of the last position fed. */
  readonly logits: GPUBuffer;
  private readonly owned: GPUBuffer[] = [];
  private cached = 0;
  /** Rows of the last chunk run: the last position fed is row lastRows-1 of x. */
  private lastRows = 0;

  constructor(
    private readonly ctx: GpuContext,
    readonly weights: MistralWeights,
    readonly lora: GpuLora | null,
    o: DecoderOptions,
  ) {
    const d = weights.dims;
    if (!(Number.isInteger(o.maxT) && o.maxT >= 1)) throw new FinetuneError('bad-input', `the generation length must be a whole number ≥ 1, got ${o.maxT}`);
    this.maxT = o.maxT;
    // Sized as sizing.ts decoderBytes counts it (the planner's sample beside a run).
    const n = (this.chunk = decoderChunk(o.maxT, ctx.report.software, o.chunk));
    const Q = d.nH * d.hd;
    const KV = d.nKV * d.hd;
    const buf = (label: string, floats: number, cat: 'activations' | 'kv-cache' | 'scratch' | 'io' = 'activations'): GPUBuffer => {
      const b = ctx.createBuffer(label, Math.max(1, floats) * 4, cat);
      this.owned.push(b);
      return b;
    };
    // A buffer the GPU cannot make is reported at the next submit (the rope table's upload, on Dawn), with the KV
    // caches, the largest part, already made: freed here, since the caller gets no decoder to destroy.
    try {
      this.kCache = Array.from({ length: d.L }, (_, l) => buf(`k cache ${l}`, o.maxT * KV, 'kv-cache'));
      this.vCache = Array.from({ length: d.L }, (_, l) => buf(`v cache ${l}`, o.maxT * KV, 'kv-cache'));
      this.ids = buf('decode ids', n, 'io');
      this.pos = buf('decode positions', n, 'io');
      this.rope = ctx.upload('decode rope table', ropeTable(o.maxT, d.hd, d.theta), 'scratch');
      this.owned.push(this.rope);
      this.x = buf('decode x', n * d.C);
      this.n = buf('decode norm', n * d.C);
      this.rstd = buf('decode rstd', n);
      this.q = buf('decode q', n * Q);
      this.k = buf('decode k', n * KV);
      this.v = buf('decode v', n * KV);
      this.att = buf('decode att', n * Q);
      this.h = buf('decode h', n * d.C);
      this.g = buf('decode gate', n * d.I);
      this.u = buf('decode up', n * d.I);
      this.a = buf('decode swiglu', n * d.I);
      this.t = lora ? buf('decode lora t', n * lora.r) : null;
      this.last = buf('decode last row', d.C);
      this.lastNormed = buf('decode last normed', d.C);
      this.lastRstd = buf('decode last rstd', 1);
      this.logits = buf('decode logits', d.V, 'io');
    } catch (e) {
      for (const b of this.owned) ctx.destroy(b);
      this.owned.length = 0;
      throw e;
    }
  }

  /** Positions in the cache so far. */
  get length(): number {
    return this.cached;
  }

  /** Forgets the cache (the buffers stay): the next feed starts at position 0. */
  reset(): void {
    this.cached = 0;
  }

  destroy(): void {
    for (const b of this.owned) this.ctx.destroy(b);
    this.owned.length = 0;
  }

  /**
   * Runs `ids` at the next positions, appending their keys and values to the cache, and leaves the logits of the last
   * of them in `logits` (read them with readLogits). Each generated token is one call; a prompt is one call, or parts
   * given to extend() and the last part to feed().
   */
  feed(ids: readonly number[]): void {
    this.extend(ids);
    this.head();
  }

  /**
   * Runs `ids` at the next positions and appends their keys and values to the cache, without the logits: a long
   * prompt's parts but the last, so that a caller can await each part and stop or report between them.
   */
  extend(ids: readonly number[]): void {
    if (ids.length === 0) throw new FinetuneError('internal', 'decoder: nothing to feed');
    if (this.cached + ids.length > this.maxT) {
      throw new FinetuneError('bad-input', `generation needs ${this.cached + ids.length} positions; this decoder holds ${this.maxT}`);
    }
    checkTokenIds(ids, this.weights.dims.V);
    for (let s = 0; s < ids.length; s += this.chunk) this.forwardChunk(ids.slice(s, s + this.chunk));
  }

  /** The logits of the last position fed. */
  async readLogits(): Promise<Float32Array> {
    return this.ctx.readF32(this.logits);
  }

  /** One chunk of rows at positions cached .. cached+n-1 through every layer; x ends as the last layer's output. */
  private forwardChunk(ids: readonly number[]): void {
    const { ctx } = this;
    const d = this.weights.dims;
    const n = ids.length;
    const past = this.cached;
    ctx.write(this.ids, Uint32Array.from(ids));
    ctx.write(this.pos, Uint32Array.from({ length: n }, (_, i) => past + i));
    embedding_forward(ctx, this.x, this.ids, this.weights.embed.buffer, n, d.C, { storage: this.weights.embed.storage, V: d.V });
    const KVbytes = d.nKV * d.hd * 4;
    for (let l = 0; l < d.L; l++) {
      // With streamed layers, layer l reaches the GPU here (every token streams the whole stack).
      const w = layerWeights(this.weights, l);
      rmsnorm_forward(ctx, this.n, this.rstd, this.x, w.inputNorm, n, d.C, d.eps);
      this.proj(w, l, 'q_proj', this.q, this.n, n);
      this.proj(w, l, 'k_proj', this.k, this.n, n);
      this.proj(w, l, 'v_proj', this.v, this.n, n);
      rope_forward_qk(ctx, this.q, this.k, this.pos, this.rope, n, d.nH, d.nKV, d.hd);
      ctx.copy(this.k, 0, this.kCache[l], past * KVbytes, n * KVbytes);
      ctx.copy(this.v, 0, this.vCache[l], past * KVbytes, n * KVbytes);
      decode_attention(ctx, this.att, this.q, this.kCache[l], this.vCache[l], { nQ: n, past, nH: d.nH, nKV: d.nKV, hd: d.hd });
      copy(ctx, this.h, this.x, n * d.C);
      this.proj(w, l, 'o_proj', this.h, this.att, n, true);
      rmsnorm_forward(ctx, this.n, this.rstd, this.h, w.postAttentionNorm, n, d.C, d.eps);
      this.proj(w, l, 'gate_proj', this.g, this.n, n);
      this.proj(w, l, 'up_proj', this.u, this.n, n);
      swiglu_forward(ctx, this.a, this.g, this.u, n * d.I);
      copy(ctx, this.x, this.h, n * d.C);
      this.proj(w, l, 'down_proj', this.x, this.a, n, true);
      // Long models: submit every few layers so the GPU starts while we record.
      if (l % 4 === 3) ctx.flush();
    }
    this.cached += n;
    this.lastRows = n;
  }

  /** logits (V) = lm_head(final_norm(last row of x)). */
  private head(): void {
    const d = this.weights.dims;
    this.ctx.copy(this.x, (this.lastRows - 1) * d.C * 4, this.last, 0, d.C * 4);
    rmsnorm_forward(this.ctx, this.lastNormed, this.lastRstd, this.last, this.weights.finalNorm, 1, d.C, d.eps);
    const head = this.weights.lmHead;
    this.linear(this.logits, this.lastNormed, { kind: 'dense', out: d.V, in: d.C, buffer: head.buffer, storage: head.storage }, 1);
  }

  /** Y (+)= X·Wᵀ + scale·(X·Aᵀ)·Bᵀ: the base product and, when adapted, LoRA's term (no dropout at inference). */
  private proj(w: LayerWeights, layer: number, name: Projection, Y: GPUBuffer, X: GPUBuffer, rows: number, accumulate = false): void {
    this.linear(Y, X, w.linears[name], rows, accumulate);
    const m = this.lora?.modules[layer][name];
    if (!m || !this.lora || !this.t) return;
    if (rows <= MATVEC_MAX_ROWS) {
      // t = X·Aᵀ, Y += scale·t·Bᵀ: lora_forward's products, each a matvec for a step's few rows.
      matvec_forward(this.ctx, this.t, X, m.A, rows, this.lora.r, m.in);
      matvec_forward(this.ctx, Y, this.t, m.B, rows, m.out, this.lora.r, { alpha: this.lora.scale, accumulate: true });
    } else {
      lora_forward(this.ctx, Y, this.t, X, m.A, m.B, rows, m.in, m.out, this.lora.r, this.lora.scale, null);
    }
  }

  /** Y (+)= X·Wᵀ; a generation step's few rows go through matvec (one read of W, no 64-row blocks). */
  private linear(Y: GPUBuffer, X: GPUBuffer, W: BaseLinear, rows: number, accumulate = false): void {
    if (W.kind === 'dense' && rows <= MATVEC_MAX_ROWS) {
      matvec_forward(this.ctx, Y, X, W.buffer, rows, W.out, W.in, { accumulate, wStorage: W.storage });
    } else if (W.kind === 'nf4' && rows <= MATVEC_MAX_ROWS) {
      nf4_matvec_forward(this.ctx, Y, X, W.weight, rows, { accumulate });
    } else {
      base_linear_forward(this.ctx, Y, X, W, rows, accumulate);
    }
  }
}
