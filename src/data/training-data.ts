// One call from the files of a run to its TrainingData: read and tokenise the training file (and validation_data
// when given), refuse files with errors (listing their problems), split, shuffle, pack and plan. What the trainer,
// the worker and a CLI `train` command need; the page's dataset panel uses loadDataset directly to show problems.

import { FinetuneError } from '../core/errors.ts';
import { visibleText } from '../core/quote.ts';
import { formatCount } from '../core/units.ts';
import { prepareTrainingData, type BatchBuildOptions, type DataPlanOptions, type TrainingData } from './batches.ts';
import { loadDataset, type LoadedDataset } from './dataset.ts';
import type { ByteSource } from './jsonl.ts';
import type { Layout } from './layout.ts';
import type { Tokenizer } from './tokenizer.ts';

/** The hyperparameters the data of a run depends on (a Hyperparams object from src/config fits). */
export interface RunDataOptions extends DataPlanOptions {
  layout: Layout;
  max_seq_len: number;
}

export interface RunData {
  data: TrainingData;
  train: LoadedDataset;
  validation: LoadedDataset | null;
}

function refuse(name: string, d: LoadedDataset): never {
  const lines = d.problems.lines();
  // `name` is the file's as it was picked or given, the message's subject: shown with visibleText's escapes (no quotes).
  throw new FinetuneError('bad-input', `${visibleText(name)} has ${formatCount(d.problems.errorCount)} error${d.problems.errorCount === 1 ? '' : 's'}:\n${lines.join('\n')}`, {
    problems: d.problems.shown,
    errors: d.problems.errorCount,
    warnings: d.problems.warningCount,
  });
}

export async function loadRunData(
  sources: { train: ByteSource; validation?: ByteSource | null; trainName?: string; validationName?: string },
  tokenizer: Tokenizer,
  hp: RunDataOptions,
  options: {
    maxProblems?: number;
    build?: BatchBuildOptions;
    /** After each chunk read, the bytes of that file read so far (a progress line; a throw here ends the load). */
    onProgress?: (file: 'train' | 'validation', bytesRead: number) => void;
    /**
     * Each file once read and usable, before the run is planned from them: its warnings are said then, even when the
     * plan then refuses the data for what they name (every completion cut off by max_seq_len), as the refusal says.
     */
    onLoaded?: (file: 'train' | 'validation', dataset: LoadedDataset) => void;
  } = {},
): Promise<RunData> {
  const load = (s: ByteSource, file: 'train' | 'validation') =>
    loadDataset(s, { tokenizer, layout: hp.layout, maxSeqLen: hp.max_seq_len, maxProblems: options.maxProblems, onProgress: options.onProgress && ((b) => options.onProgress?.(file, b)) });
  const train = await load(sources.train, 'train');
  if (!train.ok) refuse(sources.trainName ?? 'the training data', train);
  options.onLoaded?.('train', train);
  let validation: LoadedDataset | null = null;
  if (sources.validation && hp.run_validation) {
    validation = await load(sources.validation, 'validation');
    if (!validation.ok) refuse(sources.validationName ?? 'the validation data', validation);
    options.onLoaded?.('validation', validation);
  }
  const data = prepareTrainingData(train.examples, validation?.examples ?? null, hp, options.build);
  return { data, train, validation };
}
