// NF4 quantisation of frozen base weights on the GPU (shaders/nf4.wgsl): the QLoRA storage format, bit-exact
// with src/engine/reference/nf4.ts and bitsandbytes' byte layout.

import { NF4_BLOCK, DQ_BLOCK, thresholds, DYN8_TABLE, type Nf4Host } from '../../core/nf4-format.ts';
import { FinetuneError } from '../../core/errors.ts';
import type { GpuContext } from '../gpu.ts';
import { grid1d, requireBytes } from './elementwise.ts';

/** bnb double quantisation of the block scales: absmax[b] = fl(fl(table[codes[b]] · scale[b / 256]) + offset[0]). */
export interface Nf4DoubleQuant {
  codes: GPUBuffer; // (blocks) u8, 4 per u32 word, little-endian
  scale: GPUBuffer; // (ceil(blocks / 256)) f32
  offset: GPUBuffer; // (1) f32
  table: GPUBuffer; // (256) f32, bnb's signed dynamic map
}

/** A frozen [rows, cols] weight in NF4 (rows = out features, cols = in features, cols % 64 == 0). */
export interface Nf4Weight {
  rows: number;
  cols: number;
  /** rows·cols / 64 */
  blocks: number;
  /** (rows·cols / 8) u32: the bitsandbytes byte stream read as little-endian u32 (element 2b in the high nibble of byte b). */
  codes: GPUBuffer;
  doubleQuant: boolean;
  /** (blocks) f32 when !doubleQuant, else null. */
  absmax: GPUBuffer | null;
  /** The double-quantised scales when doubleQuant, else null. */
  dq: Nf4DoubleQuant | null;
}

export type Nf4SourceDtype = 'f32' | 'bf16' | 'f16';

export interface Nf4QuantizeOptions {
  doubleQuant?: boolean;
  label?: string;
}

/** A 2-D grid of `n` workgroups (each axis ≤ 65535); the shaders take its x extent as `gridX`. */
const grid = (n: number): [number, number] => grid1d(n, 1);

function params(n: number, gridX: number, aux = 0): ArrayBuffer {
  return new Uint32Array([n, gridX, aux, 0]).buffer;
}

function check(rows: number, cols: number): number {
  if (!Number.isInteger(rows) || !Number.isInteger(cols) || rows <= 0 || cols <= 0) {
    throw new FinetuneError('bad-input', `NF4 weight shape [${rows}, ${cols}] is not a positive integer shape`);
  }
  if (cols % NF4_BLOCK !== 0) {
    throw new FinetuneError('bad-input', `NF4 needs the input dimension to be a multiple of ${NF4_BLOCK}; got [${rows}, ${cols}]`);
  }
  const blocks = (rows * cols) / NF4_BLOCK;
  // The double-quant mean divides by the block count as an exact f32.
  if (blocks >= 2 ** 24) throw new FinetuneError('bad-input', `NF4 weight [${rows}, ${cols}] has too many blocks (${blocks})`);
  return blocks;
}

/** Bytes of GPU memory an NF4 weight takes (codes + scales). */
export function nf4Bytes(rows: number, cols: number, doubleQuant: boolean): number {
  const blocks = check(rows, cols);
  const codes = (rows * cols) / 2;
  if (!doubleQuant) return codes + blocks * 4;
  return codes + Math.ceil(blocks / 4) * 4 + Math.ceil(blocks / DQ_BLOCK) * 4 + 4 + 256 * 4;
}

/**
 * Quantises a [rows, cols] weight held on the GPU. `src` is f32, or bf16 / f16 packed two per u32 with the first
 * element in the low half (the little-endian order of a safetensors file). Records the work; the returned buffers
 * are owned by the caller (free them with nf4_destroy).
 */
export function nf4_quantize(
  ctx: GpuContext,
  src: GPUBuffer,
  srcDtype: Nf4SourceDtype,
  rows: number,
  cols: number,
  o: Nf4QuantizeOptions = {},
): Nf4Weight {
  const blocks = check(rows, cols);
  const label = o.label ?? 'nf4';
  const words = (rows * cols) / 8;
  requireBytes(src, rows * cols * (srcDtype === 'f32' ? 4 : 2), 'nf4_quantize src');
  // Every buffer made here is freed if a later one cannot be made (a GPU error surfaces at the next write or submit):
  // a failed quantisation leaves nothing behind, its output included.
  const made: GPUBuffer[] = [];
  const make = (b: GPUBuffer): GPUBuffer => (made.push(b), b);
  try {
    const codes = make(ctx.createBuffer(`${label} codes`, words * 4, 'weights'));
    const absmax = make(ctx.createBuffer(`${label} absmax`, blocks * 4, o.doubleQuant ? 'scratch' : 'weights'));
    const g = grid(Math.ceil(words / 256));
    ctx.dispatch(
      { shader: 'nf4', entry: 'quantize', defines: { SRC_BF16: srcDtype === 'bf16', SRC_F16: srcDtype === 'f16' } },
      [src, codes, absmax],
      params(words, g[0]),
      g,
    );
    if (!o.doubleQuant) return { rows, cols, blocks, codes, doubleQuant: false, absmax, dq: null };

    const nPartials = Math.ceil(blocks / 256);
    const partials = make(ctx.createBuffer(`${label} absmax partial sums`, nPartials * 4, 'scratch'));
    const th = make(ctx.upload(`${label} dq thresholds`, thresholds(DYN8_TABLE), 'scratch'));
    const dqCodes = make(ctx.createBuffer(`${label} dq codes`, Math.ceil(blocks / 4) * 4, 'weights'));
    const dqScale = make(ctx.createBuffer(`${label} dq scale`, Math.ceil(blocks / DQ_BLOCK) * 4, 'weights'));
    const dqOffset = make(ctx.createBuffer(`${label} dq offset`, 4, 'weights'));
    const dq: Nf4DoubleQuant = { codes: dqCodes, scale: dqScale, offset: dqOffset, table: make(ctx.upload(`${label} dq table`, DYN8_TABLE, 'weights')) };
    nf4_absmax_mean(ctx, dq.offset, absmax, partials, blocks);
    const gq = grid(Math.ceil(blocks / DQ_BLOCK));
    ctx.dispatch({ shader: 'nf4', entry: 'dq_quantize' }, [absmax, dq.offset, th, dq.codes, dq.scale], params(blocks, gq[0]), gq);
    // The temporaries can go once the recorded work is submitted (WebGPU keeps them alive until it has run).
    ctx.flush();
    for (const b of [absmax, partials, th]) ctx.destroy(b);
    return { rows, cols, blocks, codes, doubleQuant: true, absmax: null, dq };
  } catch (e) {
    for (const b of made) ctx.destroy(b);
    throw e;
  }
}

/**
 * offset (1) f32 = fl(sum / n) of absmax (n) f32, the sum reduced in the fixed order of the reference's
 * `absmaxSumRef`; partials is scratch of ceil(n / 256) f32. The double-quant offset.
 */
export function nf4_absmax_mean(ctx: GpuContext, offset: GPUBuffer, absmax: GPUBuffer, partials: GPUBuffer, n: number): void {
  const nPartials = Math.ceil(n / 256);
  requireBytes(absmax, n * 4, 'nf4_absmax_mean absmax');
  requireBytes(partials, nPartials * 4, 'nf4_absmax_mean partials');
  const gp = grid(nPartials);
  ctx.dispatch({ shader: 'nf4', entry: 'absmax_partials' }, [absmax, partials], params(n, gp[0]), gp);
  ctx.dispatch({ shader: 'nf4', entry: 'absmax_mean' }, [partials, offset], params(n, 1, nPartials), [1]);
}

/** out (rows, cols) f32 = the dequantised weight (for tests, export and checks; the products never build it). */
export function nf4_dequantize(ctx: GpuContext, out: GPUBuffer, w: Nf4Weight): void {
  requireBytes(out, w.rows * w.cols * 4, 'nf4_dequantize out');
  const words = (w.rows * w.cols) / 8;
  const g = grid(Math.ceil(words / 256));
  ctx.dispatch({ shader: 'nf4', entry: 'dequantize', defines: { DQ: w.doubleQuant } }, [w.codes, ...scaleBuffers(w), out], params(words, g[0]), g);
}

/** The scale buffers of a weight in the order the nf4 shaders bind them. */
export function scaleBuffers(w: Nf4Weight): GPUBuffer[] {
  if (w.doubleQuant) {
    if (!w.dq) throw new FinetuneError('internal', 'a double-quantised NF4 weight without its dq buffers');
    return [w.dq.codes, w.dq.scale, w.dq.offset, w.dq.table];
  }
  if (!w.absmax) throw new FinetuneError('internal', 'an NF4 weight without absmax');
  return [w.absmax];
}

function padded(bytes: Uint8Array): Uint8Array {
  if (bytes.byteLength % 4 === 0) return bytes;
  const out = new Uint8Array(Math.ceil(bytes.byteLength / 4) * 4);
  out.set(bytes);
  return out;
}

/** Uploads a weight quantised on the CPU (the reference, or a pre-quantised bitsandbytes checkpoint). */
export function nf4_upload(ctx: GpuContext, h: Nf4Host, label = 'nf4'): Nf4Weight {
  const blocks = check(h.rows, h.cols);
  if (h.codes.length !== (h.rows * h.cols) / 2) throw new FinetuneError('bad-input', `${label}: ${h.codes.length} code bytes for [${h.rows}, ${h.cols}]`);
  const codes = ctx.upload(`${label} codes`, h.codes, 'weights');
  if (h.dq) {
    if (h.dq.codes.length !== blocks || h.dq.scale.length !== Math.ceil(blocks / DQ_BLOCK) || h.dq.table.length !== 256) {
      throw new FinetuneError('bad-input', `${label}: double-quant parts do not fit [${h.rows}, ${h.cols}]`);
    }
    const dq: Nf4DoubleQuant = {
      codes: ctx.upload(`${label} dq codes`, padded(h.dq.codes), 'weights'),
      scale: ctx.upload(`${label} dq scale`, h.dq.scale, 'weights'),
      offset: ctx.upload(`${label} dq offset`, new Float32Array([h.dq.offset]), 'weights'),
      table: ctx.upload(`${label} dq table`, h.dq.table, 'weights'),
    };
    return { rows: h.rows, cols: h.cols, blocks, codes, doubleQuant: true, absmax: null, dq };
  }
  if (!h.absmax || h.absmax.length !== blocks) throw new FinetuneError('bad-input', `${label}: absmax does not fit [${h.rows}, ${h.cols}]`);
  return { rows: h.rows, cols: h.cols, blocks, codes, doubleQuant: false, absmax: ctx.upload(`${label} absmax`, h.absmax, 'weights'), dq: null };
}

/** Reads a quantised weight back in bitsandbytes' layout. */
export async function nf4_download(ctx: GpuContext, w: Nf4Weight): Promise<Nf4Host> {
  const codes = new Uint8Array(await ctx.read(w.codes, 0, (w.rows * w.cols) / 2));
  if (w.dq) {
    const dqCodes = new Uint8Array(await ctx.read(w.dq.codes, 0, w.blocks));
    const scale = await ctx.readF32(w.dq.scale, 0, Math.ceil(w.blocks / DQ_BLOCK));
    const offset = (await ctx.readF32(w.dq.offset, 0, 1))[0];
    const table = await ctx.readF32(w.dq.table, 0, 256);
    return { rows: w.rows, cols: w.cols, codes, absmax: null, dq: { codes: dqCodes, scale, offset, table } };
  }
  if (!w.absmax) throw new FinetuneError('internal', 'an NF4 weight without absmax');
  return { rows: w.rows, cols: w.cols, codes, absmax: await ctx.readF32(w.absmax, 0, w.blocks), dq: null };
}

export function nf4_destroy(ctx: GpuContext, w: Nf4Weight): void {
  ctx.destroy(w.codes);
  for (const b of scaleBuffers(w)) ctx.destroy(b);
}
