// The LoRA arena layout (src/engine/mistral/lora-layout.ts): where every A and B lives in the four arenas GpuLora
// allocates. Pure arithmetic, so checked exactly here; the GPU side (one dispatch per chunk, AdamW over the arena) is
// test/gpu/lora-arena.test.ts.
import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { PROJECTIONS } from '../../../src/core/mistral.ts';
import { parseHyperparams } from '../../../src/config/index.ts';
import { NORM_CHUNK } from '../../../src/engine/kernels/adamw.ts';
import { grid1d, WG } from '../../../src/engine/kernels/elementwise.ts';
import { dimsOf, linearShape, type Dims } from '../../../src/engine/mistral/dims.ts';
import { ARENA_ALIGN, arenaBytes, arenaGradNormSlots, loraArenaLayout, loraChunkLimit, type LoraArenaLayout } from '../../../src/engine/mistral/lora-layout.ts';
import { runnerLayout } from '../../../src/engine/mistral/sizing.ts';
import { parseMistralConfig } from '../../../src/model/config.ts';
import { planMemory } from '../../../src/run/planner.ts';

const mistral7b = parseMistralConfig(JSON.parse(readFileSync('test/fixtures/mistral-7b-instruct-v0.2/config.json', 'utf8')));
const MiB = 1024 ** 2;
// r·in and out·r not multiples of 64 floats: every tensor but the first is followed by padding.
const odd: Dims = { V: 50, C: 24, I: 40, L: 3, nH: 3, nKV: 1, hd: 8, theta: 1e4, eps: 1e-5 };

/** Every structural promise of a layout: aligned starts, whole tensors inside their chunk, no overlap, greedy chunks. */
function expectWellFormed(lay: LoraArenaLayout): void {
  let prevEnd = 0;
  let prevChunk = -1;
  for (const t of lay.tensors) {
    expect(t.offset % ARENA_ALIGN).toBe(0);
    const end = t.offset + t.floats * 4;
    expect(end).toBeLessThanOrEqual(lay.chunkBytes[t.chunk]);
    if (t.chunk === prevChunk) {
      expect(t.offset).toBeGreaterThanOrEqual(prevEnd);
      expect(t.offset - prevEnd).toBeLessThan(ARENA_ALIGN); // padding only up to the next boundary
    } else {
      expect(t.chunk).toBe(prevChunk + 1);
      expect(t.offset).toBe(0);
      // A new chunk only when the tensor would not fit after the previous one: the fewest chunks for this order.
      if (prevChunk >= 0) expect(Math.ceil(prevEnd / ARENA_ALIGN) * ARENA_ALIGN + t.floats * 4).toBeGreaterThan(lay.maxChunkBytes);
    }
    prevEnd = end;
    prevChunk = t.chunk;
  }
  expect(lay.chunkBytes.length).toBe(prevChunk + 1);
  // Each chunk ends where its last tensor ends.
  lay.chunkBytes.forEach((b, i) => {
    const last = lay.tensors.filter((t) => t.chunk === i).at(-1)!;
    expect(b).toBe(last.offset + last.floats * 4);
  });
}

describe('LoRA arena layout', () => {
  it('orders tensors layer by layer, projection by projection, A before B, with r·in / out·r floats each', () => {
    const targets = ['v_proj', 'q_proj', 'down_proj'] as const;
    const lay = loraArenaLayout(odd, 5, targets, 1 << 30);
    const want = [];
    for (let l = 0; l < odd.L; l++) {
      for (const name of PROJECTIONS.filter((p) => (targets as readonly string[]).includes(p))) {
        const s = linearShape(odd, name);
        want.push({ layer: l, name, factor: 'A', floats: 5 * s.in }, { layer: l, name, factor: 'B', floats: s.out * 5 });
      }
    }
    expect(lay.tensors.map(({ layer, name, factor, floats }) => ({ layer, name, factor, floats }))).toEqual(want);
    expect(lay.chunkBytes).toHaveLength(1);
    expectWellFormed(lay);
    // Padding is real memory: the arena is larger than the tensors alone.
    const raw = want.reduce((a, t) => a + t.floats * 4, 0);
    expect(arenaBytes(lay)).toBeGreaterThan(raw);
    expect(arenaBytes(lay)).toBeLessThan(raw + want.length * ARENA_ALIGN);
  });

  it('splits into chunks under the limit without splitting a tensor, and is a pure function of its inputs', () => {
    const targets = [...PROJECTIONS];
    const one = loraArenaLayout(odd, 7, targets, 1 << 30);
    const total = arenaBytes(one);
    for (const limit of [Math.ceil(total / 2), Math.ceil(total / 5), 4096]) {
      const lay = loraArenaLayout(odd, 7, targets, limit);
      expectWellFormed(lay);
      expect(lay.chunkBytes.length).toBeGreaterThanOrEqual(2);
      expect(Math.max(...lay.chunkBytes)).toBeLessThanOrEqual(limit);
      expect(lay).toEqual(loraArenaLayout(odd, 7, targets, limit));
    }
    // A tensor larger than the limit gets a chunk of its own (over the limit: uploadLora refuses, the planner reports).
    const big = loraArenaLayout(odd, 7, targets, 256);
    expectWellFormed(big);
    expect(big.chunkBytes).toHaveLength(big.tensors.length);
    expect(loraArenaLayout(odd, 0, targets, 1 << 30).chunkBytes).toHaveLength(0);
  });

  it('grad-norm slots: one per NORM_CHUNK floats of each chunk', () => {
    const lay = loraArenaLayout(odd, 7, [...PROJECTIONS], 8192);
    expect(arenaGradNormSlots(lay)).toBe(lay.chunkBytes.reduce((a, b) => a + Math.ceil(b / 4 / NORM_CHUNK), 0));
    expect(runnerLayout(odd, { B: 1, T: 4, r: 7, targets: [...PROJECTIONS], loraChunkBytes: 8192 }).gradNormSlots).toBe(arenaGradNormSlots(lay));
  });

  it('Mistral-7B, r 64, all seven projections: 671 MB per arena, one chunk under 4 GiB, several under 128 MiB', () => {
    const d = dimsOf(mistral7b);
    const whole = loraArenaLayout(d, 64, [...PROJECTIONS], loraChunkLimit({ maxBufferSize: 4 * 1024 ** 3 - 4, maxStorageBufferBindingSize: 4 * 1024 ** 3 - 4 }));
    expect(whole.tensors).toHaveLength(32 * 7 * 2);
    expect(whole.chunkBytes).toHaveLength(1);
    // Every tensor is a multiple of 256 bytes at r 64: no padding.
    expect(arenaBytes(whole)).toBe(32 * 64 * (2 * 8192 + 2 * 5120 + 3 * 18432) * 4);
    // WebGPU's default maxStorageBufferBindingSize (128 MiB) binds the limit, not maxBufferSize (256 MiB).
    const limit = loraChunkLimit({ maxBufferSize: 256 * MiB, maxStorageBufferBindingSize: 128 * MiB });
    expect(limit).toBe(128 * MiB);
    const split = loraArenaLayout(d, 64, [...PROJECTIONS], limit);
    expectWellFormed(split);
    expect(split.chunkBytes.length).toBeGreaterThanOrEqual(Math.ceil(arenaBytes(whole) / limit));
    expect(split.chunkBytes.length).toBeLessThanOrEqual(6);
    // One AdamW / SUMSQ launch covers a whole 671 MB chunk (≈ 168 M floats), and the largest chunk we ever make.
    for (const floats of [arenaBytes(whole) / 4, Math.floor((4 * 1024 ** 3 - 4) / 4)]) {
      for (const per of [WG, NORM_CHUNK]) {
        const [x, y] = grid1d(floats, per);
        expect(x).toBeLessThanOrEqual(65535);
        expect(y).toBeLessThanOrEqual(65535);
        expect(x * y * per).toBeGreaterThanOrEqual(floats);
      }
    }
  });

  it('the planner counts the arenas, padding included, chunked by the limits it is given', () => {
    const hp = parseHyperparams({ peft_method: 'qlora', lora_rank: 64, lora_target_modules: 'all-linear', micro_batch_size: 1, train_batch_size: 1, max_seq_len: 256 });
    const d = dimsOf(mistral7b);
    const gpu = { maxBufferSize: 256 * MiB, maxStorageBufferBindingSize: 128 * MiB };
    const plan = planMemory(mistral7b, hp, { gpu });
    const lay = loraArenaLayout(d, 64, [...PROJECTIONS], 128 * MiB);
    expect(plan.bytes.lora).toBe(2 * arenaBytes(lay));
    const slots = runnerLayout(d, { B: 1, T: 256, r: 64, targets: [...PROJECTIONS], loraChunkBytes: 128 * MiB }).gradNormSlots!;
    expect(slots).toBe(arenaGradNormSlots(lay));
    expect(plan.bytes.optimizer).toBe(2 * arenaBytes(lay) + slots * 4);
  });
});
