// The local check before an upload: a JSONL file read the way Replicate's trainer will read it (src/data, layout
// replicate, rows cut at 4096 tokens). Apart from flow.ts so the page, which has the dataset panel's report from the
// worker already, does not pull the data pipeline into its own bundle.

import { REPLICATE_MAX_SEQ_LEN } from '../config/replicate.ts';
import { FinetuneError } from '../core/errors.ts';
import { loadDataset, type LoadedDataset } from '../data/dataset.ts';
import type { Tokenizer } from '../data/tokenizer.ts';

/**
 * Reads a JSONL file the way the trainer will (src/data) and refuses it with every problem by line when it would fail
 * there. With a tokenizer the summary also has token counts (for the cost estimate).
 */
export async function checkTrainingFile(bytes: Uint8Array, what: string, tokenizer?: Tokenizer): Promise<LoadedDataset> {
  const data = await loadDataset(bytes, { tokenizer, layout: 'replicate', maxSeqLen: REPLICATE_MAX_SEQ_LEN, keepExamples: false });
  if (!data.ok) {
    const lines = data.problems.lines();
    throw new FinetuneError('bad-input', `${what} would fail on Replicate:\n${lines.join('\n')}`, { problems: lines });
  }
  if (data.summary.rows === 0) throw new FinetuneError('bad-input', `${what} has no rows to train on`);
  return data;
}
