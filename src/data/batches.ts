// From examples to what the trainer consumes: the validation split, per-epoch seeded shuffling, packing, optimizer
// steps of train_batch_size sequences made of micro-batches of micro_batch_size sequences (gradient accumulation
// = train_batch_size / micro_batch_size), and the numbers the UI shows before training starts.
//
// A micro-batch holds B rows padded to T tokens, row-major (B, T), the model's flattened token layout. A row is one
// sequence, or with padding_free several of the micro-batch's sequences end to end (repack.ts), each example still
// its own segment:
//   inputIds      u32  token ids (padding: padId)
//   labels        i32  unshifted labels: the id where the loss counts, -100 on prompt tokens (instruct) and padding
//   targets       i32  what the loss kernel compares logits[t] with: labels[t+1] when t+1 is in the same segment,
//                      else -100 (HF convention, logits[t] predicts labels[t+1]; -100 at segment ends and padding)
//   segmentIds    u32  0 = padding, 1.. = the k-th packed example of the row; the attention kernel lets query i see
//                      key j iff j ≤ i and seg[j] == seg[i] != 0
//   positionIds   u32  restart at 0 at each segment (0 on padding). A segment that continues an example cut by
//                      wrap_packed_sequences restarts at 0 too: with attention confined to the segment, RoPE only
//                      sees relative positions, so the offset would change nothing.
//   attentionMask u8   1 = real token, 0 = padding

import { FinetuneError } from '../core/errors.ts';
import { formatCount } from '../core/units.ts';
import { IGNORE_INDEX, lossTokensIn, type Example } from './layout.ts';
import { packSequences, sequenceLength, type Sequence } from './pack.ts';
import { repackRows, repackSequences } from './repack.ts';
import { planValidationPasses, type ValidationPassPlan } from './validation-passes.ts';
import { epochPermutation } from '../core/prng.ts';
import type { TokenBatch } from '../core/token-batch.ts';

/** The hyperparameters the data plan depends on (names as in the one schema, src/config). */
export interface DataPlanOptions {
  num_train_epochs: number;
  train_batch_size: number;
  micro_batch_size: number;
  validation_batch_size: number;
  pack_sequences: boolean;
  wrap_packed_sequences: boolean;
  chunk_size: number;
  seed: number;
  run_validation: boolean;
  num_validation_samples: number;
  /** Stop after this many optimizer steps (the last epoch may end early); 0 or absent = every step of every epoch. */
  max_steps?: number;
  /**
   * Lay each micro-batch's sequences end to end in as few rows as fit the longest sequence of the run (repack.ts):
   * the same losses and gradients up to rounding, fewer padding tokens computed. Absent = padded, one sequence a row.
   */
  padding_free?: boolean;
}

/** A TokenBatch as the data pipeline builds it: typed arrays, plus the labels, mask and counts it needs. */
export interface MicroBatch extends TokenBatch {
  B: number;
  T: number;
  inputIds: Uint32Array; // (B, T)
  labels: Int32Array; // (B, T)
  targets: Int32Array; // (B, T)
  segmentIds: Uint32Array; // (B, T)
  positionIds: Uint32Array; // (B, T)
  attentionMask: Uint8Array; // (B, T)
  /** Real (non-padding) tokens. */
  tokens: number;
  /**
   * Sequences (of the plan: examples, or packs with pack_sequences) the micro-batch holds: B, or more where
   * padding_free (or a validation pass) put several in a row. The validation loss weighs each validation batch's mean
   * by its sequences, as transformers does by rows.
   */
  sequences: number;
  /** Positions whose target is not -100. */
  lossTokens: number;
  /** File lines of the examples in each row, for debugging and display. */
  lines: number[][];
}

/**
 * One forward pass of a validation: rows of the runner's shape holding whole sequences of several validation batches
 * end to end (validation-passes.ts), each token weighted by its own batch.
 */
export interface ValidationPass extends MicroBatch {
  /**
   * (B, T) f32: a counted token's weight, its validation batch's sequences / that batch's counted tokens (0 where the
   * target is -100). Σ weight · token loss over every pass, over DataStats.validation.scoredSequences, is the validation
   * loss as a pass per batch gives it (trainer.ts evaluate).
   */
  lossWeights: Float32Array;
}

export interface TrainStep {
  /** 0-based optimizer step over the whole run. */
  index: number;
  epoch: number;
  /** 0-based step within the epoch. */
  stepInEpoch: number;
  /** train_batch_size / micro_batch_size micro-batches (fewer, or a smaller last one, at the end of an epoch). */
  microBatches: MicroBatch[];
  tokens: number;
  lossTokens: number;
}

export interface DataStats {
  trainExamples: number;
  validationExamples: number;
  /** Real tokens the model reads per epoch (the same every epoch: packing loses none). */
  tokensPerEpoch: number;
  /** Tokens with a loss target in epoch 0 (wrap cuts can change it by a few tokens in later epochs). */
  lossTokensPerEpoch: number;
  /** Sequences (batch rows) in epoch 0. */
  sequencesPerEpoch: number;
  /** Optimizer steps in epoch 0; see stepsByEpoch when greedy packing varies it. */
  stepsPerEpoch: number;
  stepsByEpoch: number[];
  totalSteps: number;
  epochs: number;
  trainBatchSize: number;
  microBatchSize: number;
  gradientAccumulationSteps: number;
  /** Longest sequence over every epoch: the T to size activations for when padding to one length. */
  longestSequence: number;
  /**
   * Fraction of padding tokens in epoch 0's micro-batches (each padded to its own longest row, or to padTo; with
   * padding_free after its sequences were laid end to end).
   */
  paddingFraction: number;
  /** The same with each sequence a row of its own (as paddingFraction without padding_free): what padding_free saved. */
  paddingFractionPadded: number;
  /** Whether micro-batches lay their sequences end to end (DataPlanOptions.padding_free). */
  paddingFree: boolean;
  /**
   * The longest row a micro-batch may hold: the longest sequence of the training and validation data (padTo where
   * given). Rows of several sequences are cut to it, so the runner sized for the longest sequence holds every batch.
   */
  rowTokens: number;
  /**
   * The validation set as a validation reads it: its real tokens, the tokens its forward passes compute (their rows ×
   * their longest row: as run.paddedTokens for the steps), the tokens its loss counts, its batches
   * (validation_batch_size sequences each, as transformers batches them: what the loss averages over), the sequences
   * of the batches with a counted token (the loss's denominator), and the forward passes that compute them
   * (validationPasses: the batches packed into rows of the runner's shape) with their rows.
   */
  validation: { examples: number; sequences: number; tokens: number; paddedTokens: number; lossTokens: number; batches: number; scoredSequences: number; passes: number; rows: number };
  /**
   * The run as the trainer makes it, every epoch's steps cut by max_steps: its real tokens, the tokens of its
   * micro-batches with their padding (B × T each), and its micro-batches. What a run costs; the per-epoch figures
   * above describe the data (a max_steps run may train a small part of an epoch).
   */
  run: { tokens: number; paddedTokens: number; microBatches: number };
  /** Decisions taken for the user that they should hear about (e.g. a smaller validation split than asked for). */
  notices?: string[];
  /**
   * The learning rate by optimizer step (1-based), added by the run's plan from the hyperparameters (the data does not
   * know them): every step up to LR_CURVE_POINTS steps, else that many spread over the run, warmup's end included.
   */
  learningRates?: { steps: number[]; rates: number[] };
}

export interface BatchBuildOptions {
  /** Pad every micro-batch to this T instead of its own longest row (must be ≥ every sequence). */
  padTo?: number;
  /** Id written at padding positions (never read by the loss or attention); default 0. */
  padId?: number;
}

/** Builds one micro-batch of B = seqs.length rows. */
export function buildMicroBatch(examples: readonly Example[], seqs: readonly Sequence[], options: BatchBuildOptions = {}): MicroBatch {
  const B = seqs.length;
  let longest = 0;
  for (const s of seqs) longest = Math.max(longest, sequenceLength(s));
  const T = options.padTo ?? longest;
  if (longest > T) throw new FinetuneError('internal', `buildMicroBatch: a sequence of ${longest} tokens does not fit padTo ${T}`);
  const padId = options.padId ?? 0;
  const inputIds = new Uint32Array(B * T).fill(padId);
  const labels = new Int32Array(B * T).fill(IGNORE_INDEX);
  const targets = new Int32Array(B * T).fill(IGNORE_INDEX);
  const segmentIds = new Uint32Array(B * T);
  const positionIds = new Uint32Array(B * T);
  const attentionMask = new Uint8Array(B * T);
  const lines: number[][] = [];
  let tokens = 0;
  let lossTokens = 0;
  for (let b = 0; b < B; b++) {
    let t = b * T;
    const rowLines: number[] = [];
    seqs[b].forEach((seg, k) => {
      const ex = examples[seg.example];
      rowLines.push(ex.line);
      const segStart = t;
      for (let i = seg.start; i < seg.end; i++, t++) {
        inputIds[t] = ex.ids[i];
        labels[t] = i >= ex.lossStart ? ex.ids[i] : IGNORE_INDEX;
        segmentIds[t] = k + 1;
        positionIds[t] = t - segStart;
        attentionMask[t] = 1;
      }
      // targets[t] = labels[t+1] inside the segment; its last token has no next token here.
      for (let u = segStart; u < t - 1; u++) {
        targets[u] = labels[u + 1];
        if (targets[u] !== IGNORE_INDEX) lossTokens++;
      }
      tokens += seg.end - seg.start;
    });
    lines.push(rowLines);
  }
  return { B, T, inputIds, labels, targets, segmentIds, positionIds, attentionMask, tokens, lossTokens, sequences: B, lines };
}

function positiveInt(name: string, v: number): void {
  if (!Number.isInteger(v) || v < 1) throw new FinetuneError('bad-input', `${name} must be a positive integer, got ${v}`);
}

/** Checks train_batch_size / micro_batch_size and returns the number of micro-batches per optimizer step. */
export function gradientAccumulationSteps(trainBatchSize: number, microBatchSize: number): number {
  positiveInt('train_batch_size', trainBatchSize);
  positiveInt('micro_batch_size', microBatchSize);
  if (trainBatchSize % microBatchSize !== 0) {
    throw new FinetuneError(
      'bad-input',
      `train_batch_size (${trainBatchSize}) must be a multiple of micro_batch_size (${microBatchSize}): each optimizer step accumulates train_batch_size / micro_batch_size micro-batches`,
    );
  }
  return trainBatchSize / microBatchSize;
}

/**
 * The validation split, as Replicate's trainer makes it: with run_validation false, none; with validation data, its
 * first num_validation_samples rows (all of it if shorter); otherwise the last num_validation_samples rows of the
 * training file (unshuffled), which then leave the training set.
 */
export function splitExamples(
  train: readonly Example[],
  validation: readonly Example[] | null,
  opts: Pick<DataPlanOptions, 'run_validation' | 'num_validation_samples'>,
): { train: Example[]; validation: Example[]; notice?: string } {
  if (!opts.run_validation) return { train: train.slice(), validation: [] };
  const n = opts.num_validation_samples;
  positiveInt('num_validation_samples', n);
  if (validation) {
    if (validation.length === 0) throw new FinetuneError('bad-input', 'validation_data has no usable rows');
    return { train: train.slice(), validation: validation.slice(0, n) };
  }
  if (n >= train.length) {
    // A small file with Replicate's default of 50 validation rows would leave nothing to train on. Rather than stop,
    // hold out a tenth of the rows (at least one) and say so, naming the flags that choose otherwise; a single row
    // cannot be split, so it trains without validation.
    const choose = 'choose with num_validation_samples, give validation_data, or set run_validation false';
    if (train.length < 2) {
      return { train: train.slice(), validation: [], notice: `the training data has ${train.length} row, too few to hold any out for validation (num_validation_samples is ${n}): training without validation; ${choose}` };
    }
    const k = Math.max(1, Math.floor(train.length / 10));
    return {
      train: train.slice(0, train.length - k),
      validation: train.slice(train.length - k),
      notice: `the training data has ${train.length} rows, not more than num_validation_samples (${n}): holding out its last ${k} row${k === 1 ? '' : 's'} for validation instead (a tenth, at least one) and training on ${train.length - k}; ${choose}`,
    };
  }
  const kept = train.length - n;
  // Replicate's split as it is, but a run that holds out more rows than it trains on is rarely what was meant (its
  // default of 50 on a file of 62 trains on 12): say so, with the numbers and the flags.
  const notice =
    n > kept
      ? `holding out the last ${n} of the training data's ${train.length} rows for validation (num_validation_samples) leaves ${kept} to train on, fewer than it validates on; choose with num_validation_samples, give validation_data, or set run_validation false`
      : undefined;
  return { train: train.slice(0, kept), validation: train.slice(kept), ...(notice ? { notice } : {}) };
}

function lossTokensOf(examples: readonly Example[], seqs: readonly Sequence[]): number {
  let n = 0;
  for (const s of seqs) for (const seg of s) n += lossTokensIn(examples[seg.example], seg.start, seg.end);
  return n;
}

/** Each sequence's tokens, in order. */
function lengthsOf(seqs: readonly Sequence[]): Uint32Array {
  return Uint32Array.from(seqs, sequenceLength);
}

/**
 * Sequences (their lengths) taken `mbs` at a time, each micro-batch padded to its longest row (or to `padTo`): their tokens. With
 * `rowTokens` a micro-batch's rows are repackRows' under that capacity, else one sequence each.
 */
function microBatchTokens(sequenceLengths: Uint32Array, mbs: number, padTo: number | undefined, rowTokens: number | null): DataStats['run'] {
  const out = { tokens: 0, paddedTokens: 0, microBatches: 0 };
  for (let i = 0; i < sequenceLengths.length; i += mbs) {
    // A plain array for repackRows; a loop, not Array.from, which took most of a large plan's time here.
    const lengths: number[] = [];
    for (let j = i; j < Math.min(i + mbs, sequenceLengths.length); j++) lengths.push(sequenceLengths[j]);
    const rows = rowTokens === null ? lengths : repackRows(lengths, rowTokens).map((r) => r.reduce((a, j) => a + lengths[j], 0));
    out.tokens += lengths.reduce((a, b) => a + b, 0);
    out.paddedTokens += rows.length * (padTo ?? Math.max(...rows));
    out.microBatches++;
  }
  return out;
}

/**
 * The most rows (over every epoch) a plan may walk: each epoch is shuffled and packed when the run is planned, so the
 * plan's work grows with epochs × rows. Ten million rows is weeks of Mistral-7B training on the fastest GPU there is.
 */
export const MAX_PLANNED_ROWS = 10_000_000;

/**
 * Refuses a plan of more than MAX_PLANNED_ROWS rows before any epoch is planned: 1e11 epochs once kept the worker
 * planning forever, and every later call queued behind it. Each planned epoch has at least one step, so max_steps
 * bounds the epochs planned whatever num_train_epochs says.
 */
function checkPlannedRows(rows: number, epochs: number, maxSteps: number): void {
  const planned = rows * (maxSteps > 0 ? Math.min(epochs, maxSteps) : epochs);
  if (planned <= MAX_PLANNED_ROWS) return;
  const n = formatCount;
  throw new FinetuneError(
    'bad-input',
    `num_train_epochs ${n(epochs)} over ${n(rows)} row${rows === 1 ? '' : 's'} plans ${n(planned)} rows, more than the ${n(MAX_PLANNED_ROWS)} a run may: lower num_train_epochs, or set max_steps`,
    { num_train_epochs: epochs, rows },
  );
}

/** The training and validation data of a run, with its plan of steps. */
export class TrainingData {
  readonly train: Example[];
  readonly validation: Example[];
  readonly options: DataPlanOptions;
  readonly stats: DataStats;
  readonly accumulation: number;
  private readonly lengths: Uint32Array;
  private readonly stepStarts: number[]; // global index of the first step of each epoch, plus the total at the end
  private cache: { epoch: number; seqs: Sequence[] } | null = null;
  private readonly validationSeqs: Sequence[];
  /** The validation's forward passes: rows of validationSeqs indices (planValidationPasses). */
  private readonly validationPlan: ValidationPassPlan[];
  /** A validation sequence's token weight: its batch's sequences / the batch's counted tokens (0: nothing counted). */
  private readonly validationWeights: Float64Array;
  /** The row capacity of padding-free micro-batches (DataStats.rowTokens), null when each sequence is a row. */
  private readonly repackTo: number | null;

  constructor(
    train: Example[],
    validation: Example[],
    options: DataPlanOptions,
    private readonly build: BatchBuildOptions = {},
  ) {
    this.accumulation = gradientAccumulationSteps(options.train_batch_size, options.micro_batch_size);
    positiveInt('num_train_epochs', options.num_train_epochs);
    positiveInt('validation_batch_size', options.validation_batch_size);
    checkPlannedRows(train.length, options.num_train_epochs, options.max_steps ?? 0);
    positiveInt('chunk_size', options.chunk_size);
    // Wrapped, every sequence is chunk_size tokens of the concatenated rows; a token's loss is taken from the token before
    // it in its sequence, so sequences of one token have none. It was refused below as rows whose completions
    // max_seq_len had cut off, which sent the user to the wrong setting.
    if (options.pack_sequences && options.wrap_packed_sequences && options.chunk_size === 1) {
      throw new FinetuneError(
        'bad-input',
        'chunk_size 1 with wrap_packed_sequences cuts the training data into sequences of one token, and a token is learnt from the one before it in its sequence: no sequence has a token to learn from. Set chunk_size to 2 or more (the default is 2048), or turn wrap_packed_sequences off',
      );
    }
    if (!Number.isSafeInteger(options.seed)) throw new FinetuneError('bad-input', `seed must be an integer, got ${options.seed}`);
    if (train.length === 0) throw new FinetuneError('bad-input', 'there are no training rows left');
    this.train = train;
    this.validation = validation;
    this.options = options;
    this.lengths = Uint32Array.from(train, (e) => e.ids.length);
    const valLengths = Uint32Array.from(validation, (e) => e.ids.length);
    const valOrder = Uint32Array.from(validation, (_, i) => i);
    this.validationSeqs = packSequences(valLengths, valOrder, this.packOptions());

    const tbs = options.train_batch_size;
    const mbs = options.micro_batch_size;
    const stepsByEpoch: number[] = [];
    this.stepStarts = [0];
    let longest = 0;
    let sequences0 = 0;
    let lossTokens0 = 0;
    const run = { tokens: 0, paddedTokens: 0, microBatches: 0 };
    const maxSteps = options.max_steps ?? 0;
    if (!(Number.isSafeInteger(maxSteps) && maxSteps >= 0)) throw new FinetuneError('bad-input', `max_steps must be a non-negative integer, got ${maxSteps}`);
    // The plan's epochs and their longest sequence first: padding-free rows are cut to the longest sequence of the
    // whole run, which the micro-batches' token counts below depend on. Each epoch is shuffled and packed once: its
    // sequences' lengths are all the counts need (4 bytes a sequence, where walking the epochs again took a third of
    // the plan's time).
    const epochLengths: Uint32Array[] = [];
    for (let e = 0; e < options.num_train_epochs; e++) {
      if (maxSteps > 0 && this.stepStarts[e] >= maxSteps) break;
      const seqs = this.epochSequences(e);
      // max_steps cuts the run short: the epoch it falls in ends there (so validation and saving happen at the end).
      const steps = Math.min(Math.ceil(seqs.length / tbs), maxSteps > 0 ? maxSteps - this.stepStarts[e] : Infinity);
      stepsByEpoch.push(steps);
      this.stepStarts.push(this.stepStarts[e] + steps);
      const lengths = lengthsOf(seqs);
      for (const l of lengths) longest = Math.max(longest, l);
      epochLengths.push(lengths);
      if (e === 0) {
        sequences0 = seqs.length;
        lossTokens0 = lossTokensOf(train, seqs);
      }
    }
    if (build.padTo !== undefined && longest > build.padTo) {
      throw new FinetuneError('bad-input', `a training sequence has ${longest} tokens, more than the padded length ${build.padTo}`);
    }
    let rowTokens = longest;
    const valSequenceLengths = lengthsOf(this.validationSeqs);
    for (const l of valSequenceLengths) rowTokens = Math.max(rowTokens, l);
    if (build.padTo !== undefined && rowTokens > build.padTo) {
      throw new FinetuneError('bad-input', `a validation sequence has ${rowTokens} tokens, more than the padded length ${build.padTo}`);
    }
    rowTokens = build.padTo ?? rowTokens;
    const paddingFree = options.padding_free === true;
    this.repackTo = paddingFree ? rowTokens : null;
    epochLengths.forEach((lengths, e) => {
      // The steps this epoch trains (train_batch_size is a multiple of micro_batch_size, so its micro-batches are
      // those of `step`).
      const trained = microBatchTokens(lengths.subarray(0, stepsByEpoch[e] * tbs), mbs, build.padTo, this.repackTo);
      run.tokens += trained.tokens;
      run.paddedTokens += trained.paddedTokens;
      run.microBatches += trained.microBatches;
    });
    const padded0 = microBatchTokens(epochLengths[0], mbs, build.padTo, this.repackTo).paddedTokens;
    const rowPerSequence0 = this.repackTo === null ? padded0 : microBatchTokens(epochLengths[0], mbs, build.padTo, null).paddedTokens;
    const tokensPerEpoch = this.lengths.reduce((a, b) => a + b, 0);
    const valTokens = valLengths.reduce((a, b) => a + b, 0);
    // Validation: batches of validation_batch_size sequences weigh the loss; passes of micro_batch_size rows of
    // rowTokens compute it (the runner's shape for the steps, so validating needs no larger one).
    const vbs = options.validation_batch_size;
    const valSequenceLoss = Uint32Array.from(this.validationSeqs, (s) => lossTokensOf(validation, [s]));
    this.validationWeights = new Float64Array(this.validationSeqs.length);
    let valBatches = 0;
    let scoredSequences = 0;
    for (let i = 0; i < this.validationSeqs.length; i += vbs, valBatches++) {
      const end = Math.min(i + vbs, this.validationSeqs.length);
      const counted = valSequenceLoss.subarray(i, end).reduce((a, b) => a + b, 0);
      if (counted === 0) continue;
      scoredSequences += end - i;
      this.validationWeights.fill((end - i) / counted, i, end);
    }
    this.validationPlan = planValidationPasses(valSequenceLengths, mbs, rowTokens, { fixedRowLength: build.padTo !== undefined });
    const valPassTokens = this.validationPassTokens().reduce((a, b) => a + b, 0);
    this.stats = {
      trainExamples: train.length,
      validationExamples: validation.length,
      tokensPerEpoch,
      lossTokensPerEpoch: lossTokens0,
      sequencesPerEpoch: sequences0,
      stepsPerEpoch: stepsByEpoch[0],
      stepsByEpoch,
      totalSteps: this.stepStarts[this.stepStarts.length - 1],
      epochs: stepsByEpoch.length,
      trainBatchSize: tbs,
      microBatchSize: mbs,
      gradientAccumulationSteps: this.accumulation,
      longestSequence: longest,
      paddingFraction: padded0 === 0 ? 0 : 1 - tokensPerEpoch / padded0,
      paddingFractionPadded: rowPerSequence0 === 0 ? 0 : 1 - tokensPerEpoch / rowPerSequence0,
      paddingFree,
      rowTokens,
      validation: {
        examples: validation.length,
        sequences: this.validationSeqs.length,
        tokens: valTokens,
        paddedTokens: valPassTokens,
        lossTokens: valSequenceLoss.reduce((a, b) => a + b, 0),
        batches: valBatches,
        scoredSequences,
        passes: this.validationPlan.length,
        rows: this.validationPlan.reduce((a, p) => a + p.rows.length, 0),
      },
      run,
    };
    // Nothing to learn from gives no number, but the loss average of no tokens read as a perfect 0.000 (a run of
    // max_seq_len 12 with the instruct layout "finished" at loss 0, its validation passes empty).
    if (train.length > 0 && lossTokens0 === 0) {
      throw new FinetuneError('bad-input', `no row of the training data has a token to learn from: every row's completion is cut off by max_seq_len (${formatCount(train.length)} row${train.length === 1 ? '' : 's'}; the dataset's warnings name them) or has none. Raise max_seq_len, or shorten the prompts`);
    }
    if (validation.length > 0 && this.stats.validation.lossTokens === 0) {
      throw new FinetuneError('bad-input', `no validation row has a token to score: every one's completion is cut off by max_seq_len or has none, so no validation loss could be measured. Raise max_seq_len, give other validation rows, or set run_validation false`);
    }
  }

  private packOptions() {
    return { pack: this.options.pack_sequences, wrap: this.options.wrap_packed_sequences, chunkSize: this.options.chunk_size };
  }

  /** The training rows in epoch `epoch`'s seeded order, packed: the same for the same seed everywhere. */
  epochSequences(epoch: number): Sequence[] {
    if (this.cache?.epoch === epoch) return this.cache.seqs;
    const order = epochPermutation(this.train.length, this.options.seed, epoch);
    const seqs = packSequences(this.lengths, order, this.packOptions());
    this.cache = { epoch, seqs };
    return seqs;
  }

  /** Optimizer step `index` (0-based over the run). */
  step(index: number): TrainStep {
    const total = this.stats.totalSteps;
    if (!Number.isInteger(index) || index < 0 || index >= total) throw new FinetuneError('internal', `step ${index} is outside 0..${total - 1}`);
    let epoch = 0;
    while (this.stepStarts[epoch + 1] <= index) epoch++;
    const stepInEpoch = index - this.stepStarts[epoch];
    const seqs = this.epochSequences(epoch);
    const tbs = this.options.train_batch_size;
    const mbs = this.options.micro_batch_size;
    const mine = seqs.slice(stepInEpoch * tbs, (stepInEpoch + 1) * tbs);
    const microBatches: MicroBatch[] = [];
    for (let i = 0; i < mine.length; i += mbs) microBatches.push(this.microBatch(this.train, mine.slice(i, i + mbs)));
    return {
      index,
      epoch,
      stepInEpoch,
      microBatches,
      tokens: microBatches.reduce((a, m) => a + m.tokens, 0),
      lossTokens: microBatches.reduce((a, m) => a + m.lossTokens, 0),
    };
  }

  /** Every optimizer step from `from` (0-based) to the end of the run, built lazily. */
  *steps(from = 0): Generator<TrainStep> {
    for (let i = from; i < this.stats.totalSteps; i++) yield this.step(i);
  }

  /**
   * The validation set in file order, validation_batch_size sequences per batch: the batches the validation loss
   * averages over (as transformers'), each a micro-batch of its own. A validation computes them as validationPasses.
   */
  *validationBatches(): Generator<MicroBatch> {
    const bs = this.options.validation_batch_size;
    for (let i = 0; i < this.validationSeqs.length; i += bs) {
      yield this.microBatch(this.validation, this.validationSeqs.slice(i, i + bs));
    }
  }

  /**
   * The validation's forward passes: every validation sequence once, laid end to end in at most micro_batch_size rows
   * of at most rowTokens tokens a pass, each counted token weighted by its own batch (ValidationPass.lossWeights).
   */
  *validationPasses(): Generator<ValidationPass> {
    for (const plan of this.validationPlan) {
      const rows = plan.rows.map((row) => row.flatMap((i) => this.validationSeqs[i]));
      const batch = buildMicroBatch(this.validation, rows, this.build);
      const lossWeights = new Float32Array(batch.B * batch.T);
      plan.rows.forEach((row, b) => {
        let t = b * batch.T;
        for (const i of row) {
          const end = t + sequenceLength(this.validationSeqs[i]);
          for (; t < end; t++) if (batch.targets[t] !== IGNORE_INDEX) lossWeights[t] = this.validationWeights[i];
        }
      });
      yield { ...batch, sequences: plan.rows.reduce((a, r) => a + r.length, 0), lossWeights };
    }
  }

  /** The tokens each validation pass computes (its rows × its row length), in order, without building the passes. */
  validationPassTokens(): number[] {
    return this.validationPlan.map((p) => p.rows.length * (this.build.padTo ?? p.longestRow));
  }

  /** The longest row of any validation pass (0 without validation): the runner's T must hold it. */
  get longestValidationRow(): number {
    return this.validationPlan.reduce((m, p) => Math.max(m, this.build.padTo ?? p.longestRow), 0);
  }

  /** One micro-batch of these sequences: a row each, or laid end to end with padding_free. */
  private microBatch(examples: readonly Example[], seqs: readonly Sequence[]): MicroBatch {
    if (this.repackTo === null) return buildMicroBatch(examples, seqs, this.build);
    return { ...buildMicroBatch(examples, repackSequences(seqs, this.repackTo), this.build), sequences: seqs.length };
  }
}

/**
 * The data of a run: splits the validation set off (or takes it from validation data), then plans the epochs.
 * `trainExamples` and `validationExamples` are in file order, as loadDataset returns them.
 */
export function prepareTrainingData(
  trainExamples: readonly Example[],
  validationExamples: readonly Example[] | null,
  options: DataPlanOptions,
  build: BatchBuildOptions = {},
): TrainingData {
  const { train, validation, notice } = splitExamples(trainExamples, validationExamples, options);
  const data = new TrainingData(train, validation, options, build);
  if (notice) data.stats.notices = [notice];
  return data;
}
