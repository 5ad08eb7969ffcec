// How many rows Replicate's trainer will train on. Its split (docs/replicate-trainer.md, "The validation split") takes
// the last num_validation_samples rows of the training file for validation when no validation file is given, and
// unlike local training (src/data/batches.ts splitExamples) it has no fallback for a small file: with the default of
// 50 a file of 20 rows trains on nothing. A job that bills the start-up and trains nothing must not be sent, and one
// that trains on fewer rows than it validates on is said before it is. Shared by `finetune remote train` and the
// page's remote panel so that both say the same.

import type { Hyperparams } from '../config/hyperparams.ts';
import { REPLICATE_MAX_SEQ_LEN } from '../config/replicate.ts';
import { formatCounted } from '../core/units.ts';

export interface RemoteSplit {
  /** Rows the trainer trains on. */
  trainRows: number;
  /** Rows of the training file held out for validation (0 with a validation file or run_validation false). */
  heldOut: number;
  /** Why the job must not be sent (nothing would be trained on), or null. */
  refusal: string | null;
  /** A doubtful but possible split (fewer rows trained on than validated on), or null. */
  warning: string | null;
}

const CHOOSE = 'choose a smaller num_validation_samples, give a validation file, or set run_validation false';

/** The split Replicate's trainer will make of a training file of `rows` rows with these hyperparameters. */
export function remoteSplit(rows: number, hp: Pick<Hyperparams, 'run_validation' | 'num_validation_samples'>, hasValidationFile: boolean): RemoteSplit {
  if (!hp.run_validation || hasValidationFile) return { trainRows: rows, heldOut: 0, refusal: null, warning: null };
  const n = hp.num_validation_samples;
  if (n >= rows) {
    return {
      trainRows: 0,
      heldOut: rows,
      refusal: `the training data has ${formatCounted(rows, 'row')} and num_validation_samples is ${n}: Replicate's trainer holds out the last ${n} rows for validation, which leaves nothing to train on (local training holds out a tenth instead; Replicate's trainer does not). To train on Replicate, ${CHOOSE}`,
      warning: null,
    };
  }
  const kept = rows - n;
  return {
    trainRows: kept,
    heldOut: n,
    refusal: null,
    warning:
      n > kept
        ? `Replicate's trainer holds out the last ${n} of the training data's ${rows} rows for validation (num_validation_samples), which leaves ${kept} to train on, fewer than it validates on; ${CHOOSE}`
        : null,
  };
}

/**
 * The tokens of the rows trained on, for the cost estimate: the first `split.trainRows` rows (the split holds out the
 * last ones), each cut at REPLICATE_MAX_SEQ_LEN as Replicate's trainer cuts it. `lengths` is each row's length before
 * truncation, in file order (LoadedDataset.lengths, the page's DatasetReport.rowLengths), so the count is the same
 * whatever max_seq_len the file was read with.
 */
export function trainedTokens(lengths: ArrayLike<number>, split: Pick<RemoteSplit, 'trainRows'>): number {
  const rows = Math.min(split.trainRows, lengths.length);
  let n = 0;
  for (let i = 0; i < rows; i++) n += Math.min(lengths[i], REPLICATE_MAX_SEQ_LEN);
  return n;
}
