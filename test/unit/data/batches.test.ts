import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { buildMicroBatch, gradientAccumulationSteps, MAX_PLANNED_ROWS, prepareTrainingData, splitExamples, TrainingData, type DataPlanOptions, type MicroBatch } from '../../../src/data/batches.ts';
import { IGNORE_INDEX, type Example } from '../../../src/data/layout.ts';
import { packSequences } from '../../../src/data/pack.ts';
import { isFinetuneError } from '../../../src/core/errors.ts';

/** Example k has ids 1000k + 0, 1000k + 1, … so every token says where it came from. */
function ex(k: number, len: number, lossStart = 0): Example {
  return { line: k + 1, ids: Uint32Array.from({ length: len }, (_, t) => 1000 * k + t), lossStart, truncated: 0 };
}

const OPTS: DataPlanOptions = {
  num_train_epochs: 3,
  train_batch_size: 4,
  micro_batch_size: 2,
  validation_batch_size: 1,
  pack_sequences: false,
  wrap_packed_sequences: false,
  chunk_size: 2048,
  seed: 42,
  run_validation: false,
  num_validation_samples: 50,
};

function thrown(f: () => unknown): unknown {
  try {
    f();
  } catch (e) {
    return e;
  }
  return null;
}

describe('micro-batches', () => {
  it('lays out ids, labels, shifted targets, segments, positions and the mask, padded to the longest row', () => {
    const examples = [ex(0, 3), ex(1, 4, 2), ex(2, 2)];
    // Row 0 packs examples 0 and 2; row 1 holds example 1 (its first two labels are ignored, like an instruct prompt).
    const mb = buildMicroBatch(examples, [
      [
        { example: 0, start: 0, end: 3 },
        { example: 2, start: 0, end: 2 },
      ],
      [{ example: 1, start: 0, end: 4 }],
    ]);
    const X = IGNORE_INDEX;
    expect([mb.B, mb.T]).toEqual([2, 5]);
    expect(Array.from(mb.inputIds)).toEqual([0, 1, 2, 2000, 2001, 1000, 1001, 1002, 1003, 0]);
    expect(Array.from(mb.labels)).toEqual([0, 1, 2, 2000, 2001, X, X, 1002, 1003, X]);
    expect(Array.from(mb.targets)).toEqual([1, 2, X, 2001, X, X, 1002, 1003, X, X]);
    expect(Array.from(mb.segmentIds)).toEqual([1, 1, 1, 2, 2, 1, 1, 1, 1, 0]);
    expect(Array.from(mb.positionIds)).toEqual([0, 1, 2, 0, 1, 0, 1, 2, 3, 0]);
    expect(Array.from(mb.attentionMask)).toEqual([1, 1, 1, 1, 1, 1, 1, 1, 1, 0]);
    expect(mb.tokens).toBe(9);
    expect(mb.lossTokens).toBe(5);
    expect(mb.lines).toEqual([[1, 3], [2]]);
  });

  it('pads to a fixed length on request, with the pad id given', () => {
    const mb = buildMicroBatch([ex(0, 2)], [[{ example: 0, start: 0, end: 2 }]], { padTo: 4, padId: 7 });
    expect(mb.T).toBe(4);
    expect(Array.from(mb.inputIds)).toEqual([0, 1, 7, 7]);
    expect(Array.from(mb.segmentIds)).toEqual([1, 1, 0, 0]);
    expect(() => buildMicroBatch([ex(0, 5)], [[{ example: 0, start: 0, end: 5 }]], { padTo: 4 })).toThrow(/does not fit/);
  });

  it('targets[t] = labels[t+1] exactly within a segment, -100 elsewhere; positions restart per segment (property)', () => {
    fc.assert(
      fc.property(
        fc.array(fc.tuple(fc.integer({ min: 1, max: 12 }), fc.integer({ min: 0, max: 14 })), { minLength: 1, maxLength: 12 }),
        fc.integer({ min: 1, max: 16 }),
        fc.boolean(),
        (spec, chunk, wrap) => {
          const examples = spec.map(([len, ls], k) => ex(k, len, ls));
          const seqs = packSequences(
            examples.map((e) => e.ids.length),
            examples.map((_, i) => i),
            { pack: true, wrap, chunkSize: chunk },
          );
          const mb: MicroBatch = buildMicroBatch(examples, seqs);
          let loss = 0;
          for (let b = 0; b < mb.B; b++) {
            for (let t = 0; t < mb.T; t++) {
              const i = b * mb.T + t;
              const seg = mb.segmentIds[i];
              const id = mb.inputIds[i];
              if (seg === 0) {
                expect([mb.attentionMask[i], mb.labels[i], mb.targets[i]]).toEqual([0, X(), X()]);
                continue;
              }
              const k = Math.floor(id / 1000);
              const tok = id % 1000;
              expect(mb.labels[i]).toBe(tok >= examples[k].lossStart ? id : IGNORE_INDEX);
              const nextSame = t + 1 < mb.T && mb.segmentIds[i + 1] === seg;
              expect(mb.targets[i]).toBe(nextSame ? mb.labels[i + 1] : IGNORE_INDEX);
              // Position: how far into its segment the token is.
              let start = t;
              while (start > 0 && mb.segmentIds[i - (t - start) - 1] === seg) start--;
              expect(mb.positionIds[i]).toBe(t - start);
              if (mb.targets[i] !== IGNORE_INDEX) loss++;
            }
          }
          expect(mb.lossTokens).toBe(loss);
          expect(mb.tokens).toBe(examples.reduce((a, e) => a + e.ids.length, 0));
        },
      ),
      { numRuns: 300 },
    );
    function X(): number {
      return IGNORE_INDEX;
    }
  });
});

describe('gradient accumulation and the validation split', () => {
  it('needs train_batch_size to be a multiple of micro_batch_size', () => {
    expect(gradientAccumulationSteps(8, 2)).toBe(4);
    expect(gradientAccumulationSteps(4, 4)).toBe(1);
    const e = thrown(() => gradientAccumulationSteps(6, 4));
    expect(isFinetuneError(e, 'bad-input')).toBe(true);
    expect((e as Error).message).toBe(
      'train_batch_size (6) must be a multiple of micro_batch_size (4): each optimizer step accumulates train_batch_size / micro_batch_size micro-batches',
    );
  });

  const rows = Array.from({ length: 10 }, (_, k) => ex(k, 3));
  it('holds out the last num_validation_samples rows of the training file, unshuffled', () => {
    const s = splitExamples(rows, null, { run_validation: true, num_validation_samples: 3 });
    expect(s.train.map((e) => e.line)).toEqual([1, 2, 3, 4, 5, 6, 7]);
    expect(s.validation.map((e) => e.line)).toEqual([8, 9, 10]);
  });

  it('takes the first num_validation_samples rows of validation_data, all training rows stay', () => {
    const val = Array.from({ length: 5 }, (_, k) => ex(100 + k, 2));
    const s = splitExamples(rows, val, { run_validation: true, num_validation_samples: 3 });
    expect(s.train).toHaveLength(10);
    expect(s.validation.map((e) => e.line)).toEqual([101, 102, 103]);
    expect(splitExamples(rows, val, { run_validation: true, num_validation_samples: 50 }).validation).toHaveLength(5);
  });

  it('has no validation with run_validation false', () => {
    const s = splitExamples(rows, [ex(100, 2)], { run_validation: false, num_validation_samples: 3 });
    expect([s.train.length, s.validation.length]).toEqual([10, 0]);
  });

  it('holds out a tenth of a file too small for num_validation_samples, with a notice naming the flags', () => {
    // Replicate's default of 50 validation rows on a 10-row file: formerly a dead end (bad-input), now 9 + 1.
    const s = splitExamples(rows, null, { run_validation: true, num_validation_samples: 50 });
    expect([s.train.length, s.validation.length]).toEqual([9, 1]);
    expect(s.validation[0]).toBe(rows[9]);
    expect(s.notice).toBe(
      'the training data has 10 rows, not more than num_validation_samples (50): holding out its last 1 row for validation instead (a tenth, at least one) and training on 9; choose with num_validation_samples, give validation_data, or set run_validation false',
    );
    // Of 5 rows the one held out is a fifth, not "a tenth" as the notice once said: the rule, and the rows left.
    expect(splitExamples(rows.slice(0, 5), null, { run_validation: true, num_validation_samples: 6 }).notice).toContain('holding out its last 1 row for validation instead (a tenth, at least one) and training on 4;');
    const twenty = Array.from({ length: 25 }, (_, i) => ex(i, 3));
    expect(splitExamples(twenty, null, { run_validation: true, num_validation_samples: 25 }).validation).toEqual(twenty.slice(23));
    // One row cannot be split: it trains without validation, and says so.
    const one = splitExamples([rows[0]], null, { run_validation: true, num_validation_samples: 50 });
    expect([one.train.length, one.validation.length]).toEqual([1, 0]);
    expect(one.notice).toMatch(/^the training data has 1 row, too few to hold any out for validation/);
    // Enough rows: no notice; as many held out as kept, neither.
    expect(splitExamples(rows, null, { run_validation: true, num_validation_samples: 3 }).notice).toBeUndefined();
    expect(splitExamples(rows, null, { run_validation: true, num_validation_samples: 5 }).notice).toBeUndefined();
  });

  it("says so when it holds out more rows than it leaves to train on (Replicate's 50 of a 62-row file)", () => {
    const s = splitExamples(rows, null, { run_validation: true, num_validation_samples: 6 });
    expect([s.train.length, s.validation.length]).toEqual([4, 6]);
    expect(s.validation).toEqual(rows.slice(4));
    expect(s.notice).toBe(
      "holding out the last 6 of the training data's 10 rows for validation (num_validation_samples) leaves 4 to train on, fewer than it validates on; choose with num_validation_samples, give validation_data, or set run_validation false",
    );
  });

  it('reports the notice in the plan (prepareTrainingData stats)', () => {
    const data = prepareTrainingData(rows, null, { ...OPTS, run_validation: true, num_validation_samples: 50 });
    expect(data.stats.validationExamples).toBe(1);
    expect(data.stats.notices).toEqual([expect.stringMatching(/holding out its last 1 row/)]);
  });
});

describe('the training plan', () => {
  const rows = Array.from({ length: 23 }, (_, k) => ex(k, 1 + ((k * 7) % 11)));

  it('counts steps, micro-batches and tokens; the last step of an epoch is partial, nothing is dropped', () => {
    const data = new TrainingData(rows, [], OPTS);
    const total = rows.reduce((a, e) => a + e.ids.length, 0);
    expect(data.stats).toMatchObject({
      trainExamples: 23,
      tokensPerEpoch: total,
      lossTokensPerEpoch: total - 23,
      sequencesPerEpoch: 23,
      stepsPerEpoch: 6,
      stepsByEpoch: [6, 6, 6],
      totalSteps: 18,
      gradientAccumulationSteps: 2,
      longestSequence: 11,
    });
    const steps = [...data.steps()];
    expect(steps.map((s) => s.index)).toEqual(Array.from({ length: 18 }, (_, i) => i));
    expect(steps.map((s) => s.microBatches.map((m) => m.B))).toEqual([...Array(3)].flatMap(() => [[2, 2], [2, 2], [2, 2], [2, 2], [2, 2], [2, 1]]));
    for (let e = 0; e < 3; e++) {
      const epoch = steps.filter((s) => s.epoch === e);
      expect(epoch.map((s) => s.stepInEpoch)).toEqual([0, 1, 2, 3, 4, 5]);
      const lines = epoch.flatMap((s) => s.microBatches.flatMap((m) => m.lines.flat()));
      expect([...lines].sort((a, b) => a - b)).toEqual(rows.map((r) => r.line));
      expect(epoch.reduce((a, s) => a + s.tokens, 0)).toBe(total);
    }
    expect(data.step(7)).toEqual(steps[7]);
    expect(() => data.step(18)).toThrow(/outside/);
  });

  it('stops after max_steps: the epoch it falls in ends there, the steps are the uncut run\'s first ones', () => {
    const full = new TrainingData(rows, [], OPTS);
    const cut = new TrainingData(rows, [], { ...OPTS, max_steps: 8 });
    expect(cut.stats).toMatchObject({ stepsByEpoch: [6, 2], totalSteps: 8, epochs: 2 });
    expect([...cut.steps()]).toEqual([...full.steps()].slice(0, 8));
    expect(() => cut.step(8)).toThrow(/outside/);
    // A limit inside the first epoch, and one past the end (the whole run), and 0 (no limit).
    expect(new TrainingData(rows, [], { ...OPTS, max_steps: 3 }).stats).toMatchObject({ stepsByEpoch: [3], totalSteps: 3, epochs: 1 });
    expect(new TrainingData(rows, [], { ...OPTS, max_steps: 100 }).stats).toMatchObject({ stepsByEpoch: [6, 6, 6], totalSteps: 18, epochs: 3 });
    expect(new TrainingData(rows, [], { ...OPTS, max_steps: 0 }).stats.totalSteps).toBe(18);
    expect(() => new TrainingData(rows, [], { ...OPTS, max_steps: -1 })).toThrow(/max_steps/);
  });

  it('refuses data with no token to learn from or to score (its loss read as a perfect 0.000), and takes one such token', () => {
    // lossStart at or past the end: truncation cut off every completion.
    const cut = [ex(0, 4, 4), ex(1, 3, 9)];
    expect(() => new TrainingData(cut, [], OPTS)).toThrow(/^no row of the training data has a token to learn from: every row's completion is cut off by max_seq_len \(2 rows; the dataset's warnings name them\) or has none\. Raise max_seq_len, or shorten the prompts$/);
    expect(() => new TrainingData([...cut, ex(2, 4, 3)], [], OPTS)).not.toThrow();
    expect(() => new TrainingData([ex(0, 4)], cut, OPTS)).toThrow(/^no validation row has a token to score: .* set run_validation false$/);
    expect(() => new TrainingData([ex(0, 4)], [ex(2, 4, 3)], OPTS)).not.toThrow();
  });

  it('wrap packing with chunk_size 1 (one token a sequence, none with a next token) is refused naming chunk_size, not max_seq_len', () => {
    // Rows that each have tokens to learn from, whole or packed greedily.
    const rows3 = [ex(0, 4), ex(1, 5, 2), ex(2, 3)];
    const wrap = { ...OPTS, pack_sequences: true, wrap_packed_sequences: true };
    expect(() => new TrainingData(rows3, [], { ...OPTS, pack_sequences: true, chunk_size: 1 })).not.toThrow();
    expect(() => new TrainingData(rows3, [], { ...wrap, chunk_size: 2 })).not.toThrow();
    const e = thrown(() => new TrainingData(rows3, [], { ...wrap, chunk_size: 1 }));
    expect(isFinetuneError(e) && e.kind).toBe('bad-input');
    expect((e as Error).message).toBe(
      'chunk_size 1 with wrap_packed_sequences cuts the training data into sequences of one token, and a token is learnt from the one before it in its sequence: no sequence has a token to learn from. Set chunk_size to 2 or more (the default is 2048), or turn wrap_packed_sequences off',
    );
    // The validation rows are packed the same way: said the same, not as "cut off by max_seq_len".
    const v = thrown(() => new TrainingData(rows3, [ex(3, 4)], { ...wrap, chunk_size: 1, run_validation: true }));
    expect((v as Error).message).toMatch(/^chunk_size 1 with wrap_packed_sequences cuts the training data into sequences of one token/);
  });

  it('shuffles the rows per epoch from the seed: reproducible, different across epochs and seeds', () => {
    const order = (seed: number, epoch: number) =>
      new TrainingData(rows, [], { ...OPTS, seed })
        .epochSequences(epoch)
        .map((s) => s[0].example);
    expect(order(42, 0)).toEqual(order(42, 0));
    expect(order(42, 0)).not.toEqual(order(42, 1));
    expect(order(42, 0)).not.toEqual(order(7, 0));
    expect([...order(42, 2)].sort((a, b) => a - b)).toEqual(rows.map((_, i) => i));
    // The same order as an independent model computes: a change of PRNG or shuffle would silently change every run.
    expect(order(42, 0)).toEqual(PINNED_ORDER_SEED42_EPOCH0);
  });

  it('packs after shuffling: every token of every row once per epoch, no pack over chunk_size (property)', () => {
    fc.assert(
      fc.property(
        fc.array(fc.integer({ min: 1, max: 30 }), { minLength: 1, maxLength: 40 }),
        fc.integer({ min: 1, max: 64 }),
        fc.boolean(),
        fc.integer({ min: 1, max: 4 }),
        fc.integer({ min: 1, max: 3 }),
        fc.integer(),
        (lengths, chunk, wrap, mbs, accum, seed) => {
          // Data with something to learn (a token followed by one of its row): none is refused, tested above.
          fc.pre(chunk >= 2 && lengths.some((n) => n >= 2));
          const ex2 = lengths.map((n, k) => ex(k, n));
          const data = new TrainingData(ex2, [], { ...OPTS, pack_sequences: true, wrap_packed_sequences: wrap, chunk_size: chunk, micro_batch_size: mbs, train_batch_size: mbs * accum, num_train_epochs: 2, seed });
          let steps = 0;
          for (let e = 0; e < 2; e++) {
            const seen = new Map<number, number>();
            let tokens = 0;
            for (let s = 0; s < data.stats.stepsByEpoch[e]; s++) {
              const step = data.step(steps++);
              expect(step.epoch).toBe(e);
              expect(step.microBatches.length).toBeLessThanOrEqual(accum);
              for (const mb of step.microBatches) {
                expect(mb.B).toBeLessThanOrEqual(mbs);
                for (let i = 0; i < mb.inputIds.length; i++) {
                  if (mb.segmentIds[i] === 0) continue;
                  seen.set(mb.inputIds[i], (seen.get(mb.inputIds[i]) ?? 0) + 1);
                  tokens++;
                }
                for (let b = 0; b < mb.B; b++) {
                  let real = 0;
                  for (let t = 0; t < mb.T; t++) if (mb.segmentIds[b * mb.T + t]) real++;
                  if (wrap || !lengths.some((n) => n > chunk)) expect(real).toBeLessThanOrEqual(chunk);
                }
              }
            }
            expect(tokens).toBe(data.stats.tokensPerEpoch);
            expect(seen.size).toBe(data.stats.tokensPerEpoch);
            expect([...seen.values()].every((c) => c === 1)).toBe(true);
          }
          expect(steps).toBe(data.stats.totalSteps);
        },
      ),
      { numRuns: 150 },
    );
  });

  it('batches the validation set in file order, packed like training', () => {
    const val = Array.from({ length: 5 }, (_, k) => ex(100 + k, 3));
    const data = prepareTrainingData(rows, val, { ...OPTS, run_validation: true, num_validation_samples: 4, validation_batch_size: 3 });
    // Four sequences of 3 in rows of up to 11 (the longest training row), two rows a pass: one pass of two rows of 6.
    expect(data.stats.validation).toEqual({ examples: 4, sequences: 4, tokens: 12, paddedTokens: 12, lossTokens: 8, batches: 2, scoredSequences: 4, passes: 1, rows: 2 });
    expect([...data.validationBatches()].map((m) => m.lines)).toEqual([[[101], [102], [103]], [[104]]]);
    const packed = prepareTrainingData(rows, val, { ...OPTS, run_validation: true, num_validation_samples: 4, pack_sequences: true, chunk_size: 6 });
    expect([...packed.validationBatches()].map((m) => m.lines)).toEqual([[[101, 102]], [[103, 104]]]);
  });

  it('counts the tokens a validation computes, its passes\' padding included (what the time estimate prices)', () => {
    const val = [ex(100, 2), ex(101, 5), ex(102, 3), ex(103, 4)];
    const opts = { ...OPTS, run_validation: true, num_validation_samples: 4, validation_batch_size: 3 };
    const computed = (d: TrainingData): number => [...d.validationPasses()].reduce((a, m) => a + m.B * m.T, 0);
    const data = prepareTrainingData(rows, val, opts);
    // Rows of up to 11 tokens (the longest training row), two a pass: [5, 2] and [4, 3], no padding at all, in one pass
    // where a pass per batch computed [2, 5, 3] padded to 5, then [4]: 19.
    expect(data.stats.rowTokens).toBe(11);
    expect(data.stats.validation).toMatchObject({ tokens: 14, paddedTokens: 14, batches: 2, passes: 1, rows: 2 });
    expect(computed(data)).toBe(14);
    expect([...data.validationPasses()][0].lines).toEqual([[101, 102], [103, 104]]);
    const fixed = prepareTrainingData(rows, val, opts, { padTo: 16 });
    // One row of 16 holds all four.
    expect(fixed.stats.validation).toMatchObject({ paddedTokens: 16, passes: 1, rows: 1 });
    expect(computed(fixed)).toBe(16);
  });

  it('computes every validation token once in its passes, each weighted so that the passes give the batches\' loss (property)', () => {
    // A stand-in for a token's loss: any number per (example, position). Σ weight · loss over the passes, over the
    // scored sequences, must be each batch's mean weighted by its sequences, as transformers' eval_loss.
    const lossAt = (id: number): number => 0.5 + ((id * 2654435761) % 1000) / 250;
    fc.assert(
      fc.property(
        fc.array(fc.tuple(fc.integer({ min: 1, max: 40 }), fc.integer({ min: 0, max: 45 })), { minLength: 1, maxLength: 25 }),
        fc.integer({ min: 1, max: 5 }),
        fc.integer({ min: 1, max: 4 }),
        fc.boolean(),
        fc.boolean(),
        (shape, vbs, mbs, padFree, pack) => {
          const val = shape.map(([len, lossStart], k) => ex(200 + k, len, lossStart));
          const train = [ex(0, 7), ex(1, 30), ex(2, 3), ex(3, 12)];
          const o = { ...OPTS, micro_batch_size: mbs, train_batch_size: mbs, validation_batch_size: vbs, run_validation: true, num_validation_samples: 99, padding_free: padFree, pack_sequences: pack, chunk_size: 48 };
          let data: TrainingData;
          try {
            data = prepareTrainingData(train, val, o);
          } catch (e) {
            // Every validation row without a counted token: refused, as before.
            expect(isFinetuneError(e, 'bad-input')).toBe(true);
            return;
          }
          const passes = [...data.validationPasses()];
          let want = 0;
          let scored = 0;
          for (const b of data.validationBatches()) {
            if (b.lossTokens === 0) continue;
            let sum = 0;
            for (let t = 0; t < b.B * b.T; t++) if (b.targets[t] !== IGNORE_INDEX) sum += lossAt(b.inputIds[t]);
            want += (b.sequences * sum) / b.lossTokens;
            scored += b.sequences;
          }
          let got = 0;
          const seen = new Map<number, number>();
          let weights = 0;
          for (const p of passes) {
            expect(p.B).toBeLessThanOrEqual(mbs);
            expect(p.T).toBeLessThanOrEqual(data.stats.rowTokens);
            for (let t = 0; t < p.B * p.T; t++) {
              if (p.segmentIds[t] > 0) seen.set(p.inputIds[t], (seen.get(p.inputIds[t]) ?? 0) + 1);
              expect(p.lossWeights[t] > 0).toBe(p.targets[t] !== IGNORE_INDEX && data.stats.validation.scoredSequences > 0 && p.lossWeights[t] > 0);
              if (p.targets[t] === IGNORE_INDEX) expect(p.lossWeights[t]).toBe(0);
              got += p.lossWeights[t] * lossAt(p.inputIds[t]);
              weights += p.lossWeights[t];
            }
          }
          expect(data.stats.validation.scoredSequences).toBe(scored);
          expect(Math.abs(got / scored - want / scored)).toBeLessThan(1e-5 * (want / scored));
          // Each batch's weights add up to its sequences (Float32 weights: within rounding).
          expect(Math.abs(weights - scored)).toBeLessThan(1e-4 * scored);
          // Every validation token once (ids say where they came from).
          expect(seen.size).toBe(data.stats.validation.tokens);
          expect([...seen.values()].every((c) => c === 1)).toBe(true);
          // The stats are the passes built; validation never needs more rows than a micro-batch.
          expect(data.stats.validation.passes).toBe(passes.length);
          expect(data.stats.validation.rows).toBe(passes.reduce((a, p) => a + p.B, 0));
          expect(data.stats.validation.paddedTokens).toBe(passes.reduce((a, p) => a + p.B * p.T, 0));
          expect(data.validationPassTokens()).toEqual(passes.map((p) => p.B * p.T));
          expect(data.longestValidationRow).toBe(Math.max(...passes.map((p) => p.T)));
          expect(passes.reduce((a, p) => a + p.sequences, 0)).toBe(data.stats.validation.sequences);
        },
      ),
      { numRuns: 200 },
    );
  });

  it('reports the padding of epoch 0, and a fixed pad length when asked', () => {
    const two = [ex(0, 2), ex(1, 6)];
    const data = new TrainingData(two, [], { ...OPTS, num_train_epochs: 1, train_batch_size: 2, micro_batch_size: 2 });
    expect(data.stats.paddingFraction).toBeCloseTo(1 - 8 / 12, 12);
    const fixed = new TrainingData(two, [], { ...OPTS, num_train_epochs: 1, train_batch_size: 2, micro_batch_size: 2 }, { padTo: 8 });
    expect(fixed.stats.paddingFraction).toBeCloseTo(1 - 8 / 16, 12);
    expect(fixed.step(0).microBatches[0].T).toBe(8);
    expect(isFinetuneError(thrown(() => new TrainingData(two, [], OPTS, { padTo: 4 })), 'bad-input')).toBe(true);
  });

  it('refuses a validation sequence longer than the padded length with a bad-input error, as a training one', () => {
    const e = thrown(() => new TrainingData([ex(0, 3)], [ex(1, 6)], { ...OPTS, num_train_epochs: 1 }, { padTo: 4 }));
    expect(isFinetuneError(e, 'bad-input')).toBe(true);
    expect((e as Error).message).toMatch(/validation sequence has 6 tokens, more than the padded length 4/);
  });

  it('with a padded length, a validation pass is priced by its rows: never laid out in more rows than first fit made', () => {
    // Three sequences of 4 in rows of 8: first fit makes 2 rows; laid out again by their longest row, each alone in a
    // row (3 × 4 < 2 × 8) is cheaper, but padded to 8 those 3 rows compute 24 tokens where 2 compute 16.
    const three = [ex(0, 4), ex(1, 4), ex(2, 4)];
    const opts = { ...OPTS, num_train_epochs: 1, train_batch_size: 3, micro_batch_size: 3, validation_batch_size: 1 };
    const fixed = new TrainingData([ex(9, 8)], three, opts, { padTo: 8 });
    expect(fixed.stats.validation.rows).toBe(2);
    expect(fixed.validationPassTokens()).toEqual([16]);
    const passes = [...fixed.validationPasses()];
    expect(passes.map((p) => [p.B, p.T])).toEqual([[2, 8]]);
  });

  it("counts the run as the trainer makes it: every epoch's steps, cut by max_steps, with their padding", () => {
    // Rows of uneven lengths, so that padding, packing and the seeded order all change the sums.
    const uneven = Array.from({ length: 11 }, (_, k) => ex(k, 2 + ((k * 5) % 7)));
    for (const o of [
      { ...OPTS },
      { ...OPTS, max_steps: 4 }, // ends inside the second epoch (3 steps an epoch)
      { ...OPTS, max_steps: 2, micro_batch_size: 1 },
      { ...OPTS, pack_sequences: true, chunk_size: 9, max_steps: 5 },
      { ...OPTS, num_train_epochs: 1, train_batch_size: 2, micro_batch_size: 2 },
      { ...OPTS, micro_batch_size: 4, padding_free: true },
      { ...OPTS, micro_batch_size: 4, padding_free: true, pack_sequences: true, chunk_size: 9, max_steps: 5 },
    ]) {
      const data = new TrainingData(uneven, [], o);
      const steps = [...data.steps()];
      const batches = steps.flatMap((st) => st.microBatches);
      expect(data.stats.run, JSON.stringify(o)).toEqual({
        tokens: batches.reduce((a, m) => a + m.tokens, 0),
        paddedTokens: batches.reduce((a, m) => a + m.B * m.T, 0),
        microBatches: batches.length,
      });
    }
    // With a fixed pad length, every row counts that many tokens.
    const fixed = new TrainingData(uneven, [], { ...OPTS, max_steps: 1 }, { padTo: 12 });
    expect(fixed.stats.run).toEqual({ tokens: fixed.step(0).tokens, paddedTokens: 4 * 12, microBatches: 2 });
  });

  it('lays a micro-batch\'s sequences end to end with padding_free: the same examples and tokens in fewer rows', () => {
    const uneven = Array.from({ length: 24 }, (_, k) => ex(k, 1 + ((k * 5) % 13)));
    const val = Array.from({ length: 7 }, (_, k) => ex(100 + k, 2 + ((k * 3) % 9)));
    const o = { ...OPTS, micro_batch_size: 4, train_batch_size: 8, run_validation: true, num_validation_samples: 7, validation_batch_size: 4 };
    const padded = prepareTrainingData(uneven, val, o);
    const free = prepareTrainingData(uneven, val, { ...o, padding_free: true });
    expect(padded.stats).toMatchObject({ paddingFree: false, rowTokens: 13, longestSequence: 13 });
    expect(free.stats).toMatchObject({ paddingFree: true, rowTokens: 13, longestSequence: 13, totalSteps: padded.stats.totalSteps });
    const batchesOf = (d: TrainingData): MicroBatch[] => [...d.steps()].flatMap((st) => st.microBatches);
    const [p, f] = [batchesOf(padded), batchesOf(free)];
    expect(f.map((m) => m.lines.flat().sort((a, b) => a - b))).toEqual(p.map((m) => m.lines.flat().sort((a, b) => a - b)));
    expect(f.map((m) => [m.tokens, m.lossTokens, m.sequences])).toEqual(p.map((m) => [m.tokens, m.lossTokens, m.B]));
    for (const m of f) {
      expect(m.T).toBeLessThanOrEqual(free.stats.rowTokens);
      // Each example its own segment: ids restart their positions, and no row holds a segment id twice apart.
      for (let b = 0; b < m.B; b++) {
        const segs = [...m.segmentIds.subarray(b * m.T, (b + 1) * m.T)].filter((x) => x > 0);
        expect(new Set(segs).size).toBe(m.lines[b].length);
      }
    }
    const computed = (bs: MicroBatch[]): number => bs.reduce((a, m) => a + m.B * m.T, 0);
    expect(computed(f)).toBeLessThan(computed(p));
    expect(free.stats.run.paddedTokens).toBe(computed(f));
    expect(free.stats.paddingFraction).toBeLessThan(padded.stats.paddingFraction);
    // What the page shows beside it: the padded layout's padding, the same figure a padded plan reports.
    expect(free.stats.paddingFractionPadded).toBe(padded.stats.paddingFraction);
    expect(padded.stats.paddingFractionPadded).toBe(padded.stats.paddingFraction);
    const [pv, fv] = [[...padded.validationBatches()], [...free.validationBatches()]];
    expect(fv.map((m) => m.sequences)).toEqual(pv.map((m) => m.B));
    // Validation packs its batches either way: the same passes.
    expect(free.stats.validation).toEqual(padded.stats.validation);
    expect(free.stats.validation.paddedTokens).toBe(computed([...free.validationPasses()]));
    expect(free.stats.validation.paddedTokens).toBeLessThan(computed(pv));
  });

  it('refuses an empty training set and bad sizes as bad input', () => {
    expect(isFinetuneError(thrown(() => new TrainingData([], [], OPTS)), 'bad-input')).toBe(true);
    expect(isFinetuneError(thrown(() => new TrainingData(rows, [], { ...OPTS, micro_batch_size: 3 })), 'bad-input')).toBe(true);
    expect(isFinetuneError(thrown(() => new TrainingData(rows, [], { ...OPTS, num_train_epochs: 0 })), 'bad-input')).toBe(true);
  });

  it('refuses a plan of more rows than it can walk, at once, and plans one that max_steps cuts short', () => {
    // 1e11 epochs used to shuffle and pack the rows once per epoch: the worker hung, and every later call with it.
    const started = performance.now();
    const e = thrown(() => new TrainingData(rows, [], { ...OPTS, num_train_epochs: 99_999_999_999 }));
    expect(performance.now() - started).toBeLessThan(1000);
    expect(isFinetuneError(e, 'bad-input')).toBe(true);
    expect(String((e as Error).message)).toBe(
      `num_train_epochs 99,999,999,999 over 23 rows plans 2,299,999,999,977 rows, more than the ${MAX_PLANNED_ROWS.toLocaleString('en-US')} a run may: lower num_train_epochs, or set max_steps`,
    );
    // At most one epoch per step is planned, so max_steps bounds the work whatever the epochs.
    const cut = new TrainingData(rows, [], { ...OPTS, num_train_epochs: 99_999_999_999, max_steps: 20 });
    expect(cut.stats.totalSteps).toBe(20);
    expect(cut.stats.epochs).toBe(4); // 6 steps an epoch: 6 + 6 + 6 + 2
  });
});

// From test/unit/core/prng_reference.py, an independent Python model of the seeded shuffle: perm(23, 42, 0).
const PINNED_ORDER_SEED42_EPOCH0 = [6, 4, 0, 3, 13, 1, 12, 8, 20, 15, 19, 21, 5, 17, 16, 18, 9, 2, 10, 14, 11, 22, 7];
