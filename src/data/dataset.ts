// A JSONL file → validated, tokenised examples plus every problem found, in one streaming pass. The same function
// backs `finetune validate`, the page's dataset panel and the trainer (which keeps the examples).

import { FinetuneError } from '../core/errors.ts';
import { formatCount } from '../core/units.ts';
import type { ByteSource, ReadCounters, ReadOptions } from './jsonl.ts';
import { readJsonl } from './jsonl.ts';
import { encodeRow, lossTokensIn, type Example, type Layout } from './layout.ts';
import { TokenArena } from './token-arena.ts';
import { ProblemLog } from './problems.ts';
import { RowChecker, type DataRow, type RowShape } from './rows.ts';
import type { Tokenizer } from './tokenizer.ts';

export interface LoadOptions extends ReadOptions {
  /** Without a tokenizer the rows are validated only (no token counts, no truncation warnings). */
  tokenizer?: Tokenizer;
  layout?: Layout; // default 'replicate'
  maxSeqLen?: number; // default 4096, as Replicate
  /** Problems kept in the log (the rest are counted); default 100. */
  maxProblems?: number;
  /** Keep the tokenised examples (the trainer does; validation needs only their lengths). Default true. */
  keepExamples?: boolean;
  /** Keep the rows as read (for display and export). Default false. */
  keepRows?: boolean;
}

export interface TokenStats {
  total: number;
  min: number;
  median: number;
  max: number;
  /** Tokens whose next-token prediction counts in the loss (after the shift), summed over rows. */
  lossTokens: number;
  /** The rows by their length before truncation: what max_seq_len cuts, as the page draws it. */
  histogram: LengthHistogram;
}

/**
 * Rows counted by length in tokens before truncation, in bins of `binWidth` tokens: bin i holds lengths
 * i·binWidth + 1 … (i + 1)·binWidth (lengths of 0, which a row never has, in bin 0). Rows that fit max_seq_len and rows
 * that are longer (truncated) are counted apart, so a bin across max_seq_len shows both.
 */
export interface LengthHistogram {
  binWidth: number;
  fits: number[];
  truncated: number[];
}

/** At most this many bins: enough to see a distribution's shape in a panel a few hundred pixels wide. */
export const HISTOGRAM_MAX_BINS = 40;

/** The smallest of 1, 2, 5 × 10^k at least `x`: bin edges a person reads at a glance. */
function niceWidth(x: number): number {
  for (let p = 1; ; p *= 10) for (const m of [1, 2, 5]) if (m * p >= x) return m * p;
}

/** The histogram of `full` (lengths before truncation) against max_seq_len. */
export function lengthHistogram(full: ArrayLike<number>, maxSeqLen: number): LengthHistogram {
  let longest = 0;
  for (let i = 0; i < full.length; i++) longest = Math.max(longest, full[i]);
  const binWidth = niceWidth(Math.max(1, longest) / HISTOGRAM_MAX_BINS);
  const bins = Math.max(1, Math.ceil(longest / binWidth));
  const fits = new Array<number>(bins).fill(0);
  const truncated = new Array<number>(bins).fill(0);
  for (let i = 0; i < full.length; i++) {
    const bin = Math.max(0, Math.ceil(full[i] / binWidth) - 1);
    (full[i] > maxSeqLen ? truncated : fits)[bin]++;
  }
  return { binWidth, fits, truncated };
}

export interface DatasetSummary {
  /** Usable rows (the examples). */
  rows: number;
  /** Non-blank lines that could not be used (each has an error). */
  rejectedRows: number;
  /** Lines in the file, blank ones included. */
  lines: number;
  /** Bytes read: the whole file, except one refused as binary (notText), read only as far as needed to tell. */
  bytes: number;
  /** The file was refused as binary ('not-text'): nothing of it was read as lines, so rows and lines say nothing. */
  notText: boolean;
  shape: RowShape | null;
  layout: Layout;
  maxSeqLen: number;
  /** Null without a tokenizer. Counts are after truncation. */
  tokens: TokenStats | null;
  rowsTruncated: number;
  tokensLost: number;
  /**
   * Errors, as the problem list shows them: one per error on a line, plus an error about the whole file (empty,
   * binary). Notes (a wrong-format hint, "no usable rows") are not counted: they explain errors already counted.
   */
  errors: number;
  warnings: number;
}

export interface LoadedDataset {
  /** In file order; empty unless keepExamples. */
  examples: Example[];
  /** In file order; empty unless keepRows. */
  rows: DataRow[];
  /**
   * Each usable row's length in tokens before truncation, in file order (empty without a tokenizer): as a trainer
   * sees it, min(length, its own cut), whatever max_seq_len this read cut at (Replicate's trainer cuts at 4096).
   */
  lengths: Uint32Array;
  problems: ProblemLog;
  summary: DatasetSummary;
  /** True when the data can be trained on: no errors. */
  ok: boolean;
}

function median(sorted: Uint32Array): number {
  const n = sorted.length;
  if (n === 0) return 0;
  return n % 2 === 1 ? sorted[(n - 1) >> 1] : (sorted[n / 2 - 1] + sorted[n / 2]) / 2;
}

/** Reads, validates and (with a tokenizer) tokenises a JSONL dataset. Throws only FinetuneError('bad-input'). */
export async function loadDataset(source: ByteSource, options: LoadOptions = {}): Promise<LoadedDataset> {
  const layout = options.layout ?? 'replicate';
  const maxSeqLen = options.maxSeqLen ?? 4096;
  if (!Number.isInteger(maxSeqLen) || maxSeqLen < 1) throw new FinetuneError('bad-input', `max_seq_len must be a positive integer, got ${maxSeqLen}`);
  const keepExamples = options.keepExamples ?? true;
  const tok = options.tokenizer;
  const log = new ProblemLog(options.maxProblems ?? 100);
  const checker = new RowChecker();
  const examples: Example[] = [];
  // The kept examples' ids live in a few large blocks, not one typed array per row (see token-arena.ts).
  const arena = tok && keepExamples ? new TokenArena(tok.vocabSize) : null;
  const rows: DataRow[] = [];
  // Each row's length before truncation (the histogram's); as training sees it, it is min(length, maxSeqLen).
  let lengths = new Uint32Array(1024);
  let count = 0;
  let total = 0;
  let lossTokens = 0;
  let rowsTruncated = 0;
  let tokensLost = 0;
  let layoutReported = false;

  const counters: ReadCounters = options.counters ?? { lines: 0, contentLines: 0, bytes: 0 };
  for await (const { line, value } of readJsonl(source, log, { ...options, counters })) {
    const row = checker.check(value, line, log);
    if (!row) continue;
    if (layout === 'instruct' && row.shape === 'text') {
      if (!layoutReported) {
        log.error(line, 'layout-mismatch', 'the instruct layout needs rows with "prompt" and "completion"; this file has "text" rows (use the replicate layout)');
        layoutReported = true;
      }
      continue;
    }
    if (options.keepRows) rows.push(row);
    if (tok) {
      const ex = encodeRow(tok, row, layout, maxSeqLen);
      const len = ex.ids.length;
      const learn = lossTokensIn(ex, 0, len);
      if (ex.truncated > 0) {
        rowsTruncated++;
        tokensLost += ex.truncated;
        log.warn(
          line,
          'truncated',
          ex.lengthAtLeast
            ? // Megabytes of text: encoded only as far as the cut needs (its length is a lower bound).
              `more than ${formatCount(len + ex.truncated)} tokens (tokenised only as far as the cut needs), longer than max_seq_len ${formatCount(maxSeqLen)}: truncated, all but the first ${formatCount(len)} tokens lost`
            : `${formatCount(len + ex.truncated)} tokens, longer than max_seq_len ${formatCount(maxSeqLen)}: truncated, ${formatCount(ex.truncated)} tokens lost`,
        );
        if (learn === 0) {
          log.warn(line, 'no-loss-tokens', ex.lossStart > 0
            ? `after truncation nothing of the completion is left to learn from (its prompt alone takes ${formatCount(ex.lossStart)} tokens)`
            : `after truncation at ${formatCount(maxSeqLen)} token${maxSeqLen === 1 ? '' : 's'} nothing is left to learn from (a token is learned from the one before it)`);
        }
      }
      if (count === lengths.length) {
        const grown = new Uint32Array(lengths.length * 2);
        grown.set(lengths);
        lengths = grown;
      }
      lengths[count] = len + ex.truncated;
      total += len;
      lossTokens += learn;
      if (arena) examples.push({ ...ex, ids: arena.hold(ex.ids) });
    }
    count++;
  }

  const rejected = counters.contentLines - count;
  if (counters.notText) {
    // Already said once, for the whole file.
  } else if (counters.contentLines === 0) {
    log.error(null, 'empty-file', 'the file has no rows (it is empty or holds only blank lines); expected one JSON object per line');
  } else if (count === 0) {
    // Every row was rejected, each with its error already counted: a note sums it up once, after them. (Should a row
    // ever be rejected without an error, the file must still be refused: then it is the error.)
    // The instruct layout's refusal of text rows is said once, for the file, not row by row.
    if (log.errorCount > 0) log.note(null, 'empty-file', layoutReported ? 'no usable rows: the instruct layout takes prompt/completion rows only' : 'no usable rows: every row has an error');
    else log.error(null, 'empty-file', 'no usable rows');
  }

  let tokens: TokenStats | null = null;
  if (tok) {
    const full = lengths.subarray(0, count);
    const sorted = full.map((n) => Math.min(n, maxSeqLen)).sort();
    tokens = { total, min: count ? sorted[0] : 0, median: median(sorted), max: count ? sorted[count - 1] : 0, lossTokens, histogram: lengthHistogram(full, maxSeqLen) };
  }
  const summary: DatasetSummary = {
    rows: count,
    rejectedRows: rejected,
    lines: counters.lines,
    bytes: counters.bytes,
    notText: counters.notText === true,
    shape: checker.shape,
    layout,
    maxSeqLen,
    tokens,
    rowsTruncated,
    tokensLost,
    errors: log.errorCount,
    warnings: log.warningCount,
  };
  return { examples, rows, lengths: lengths.slice(0, tok ? count : 0), problems: log, summary, ok: log.errorCount === 0 };
}
