import { createReadStream, statSync } from 'node:fs';
import { dataProgressPrinter } from '../data-progress.ts';
import { flagSuggestion } from '../did-you-mean.ts';
import { HYPERPARAM_VALUE_FLAGS, hyperparamUsage, splitHyperparamFlags } from '../../config/flags.ts';
import { parseHyperparams, type HyperparamName } from '../../config/hyperparams.ts';
import { loadDataset } from '../../data/dataset.ts';
import { formatProblem } from '../../data/problems.ts';
import { FinetuneError } from '../../core/errors.ts';
import { formatCount } from '../../core/units.ts';
import { UsageError, type Command } from '../command.ts';
import { checkReadableFile } from '../input-file.ts';
import { loadTokenizerFrom } from './tokenize.ts';
import { quote, visibleText } from '../../core/quote.ts';

const HP_FLAGS: readonly HyperparamName[] = ['layout', 'max_seq_len'];

const USAGE = `finetune validate FILE.jsonl [--layout replicate|instruct] [--max_seq_len N] [--tokenizer DIR] [--max-problems N]

Checks a training file the way training reads it: every line must be a JSON object, {"text": …} or
{"prompt": …, "completion": …} (one shape per file), in UTF-8. Rows are tokenised in the layout to count tokens and
to warn about rows longer than max_seq_len (truncated).

Prints a JSON summary (rows, shape, token counts: total, min/median/max per row, rows truncated) and exits 0, or
prints one line per problem ("line N: …", "line N, column C: …" for JSON syntax) on stderr and exits 1.
Warnings (unknown fields, truncation) do not fail the check; they are listed in the summary and on stderr.

options:
${hyperparamUsage(HP_FLAGS)}
  --tokenizer DIR       directory holding tokenizer.model (default: the project's public/tokenizer)
  --max-problems N      problems listed before the rest are only counted (default 100)`;

export const validateCommand: Command = {
  name: 'validate',
  valueFlags: HYPERPARAM_VALUE_FLAGS,
  summary: 'check a JSONL training file: one line per problem, or a JSON summary with token counts',
  usage: USAGE,
  async run(args, io) {
    const { values, rest } = splitHyperparamFlags(args);
    const stray = Object.keys(values).filter((k) => !HP_FLAGS.includes(k as HyperparamName));
    if (stray.length > 0) throw new UsageError(`validate takes only --layout and --max_seq_len of the hyperparameters, not ${stray.map((s) => `--${s}`).join(', ')}`);
    const hp = parseHyperparams(values);
    let tokenizerDir: string | undefined;
    let maxProblems = 100;
    const files: string[] = [];
    for (let i = 0; i < rest.length; i++) {
      const a = rest[i];
      // After --, every word is a file (one named like a flag, too), as parseArgs reads the other commands' lines.
      if (a === '--') {
        files.push(...rest.slice(i + 1));
        break;
      }
      const [flag, inline] = a.startsWith('--') && a.includes('=') ? [a.slice(0, a.indexOf('=')), a.slice(a.indexOf('=') + 1)] : [a, undefined];
      const value = () => {
        const v = inline ?? rest[++i];
        if (v === undefined) throw new UsageError(`${flag} needs a value`);
        return v;
      };
      if (flag === '--tokenizer') tokenizerDir = value();
      else if (flag === '--max-problems') {
        const v = value();
        maxProblems = Number(v);
        if (!Number.isInteger(maxProblems) || maxProblems < 1) throw new FinetuneError('bad-input', `--max-problems must be a positive integer, got ${quote(v)}`);
      } else if (a.startsWith('-')) {
        const hint = flagSuggestion(a, ['tokenizer', 'max-problems', ...HP_FLAGS]);
        throw new UsageError(`unknown option ${a}${hint && `.${hint}`}`);
      } else files.push(a);
    }
    if (files.length !== 1) throw new UsageError(`give exactly one FILE.jsonl (got ${files.length})`);
    const file = files[0];
    checkReadableFile(file, '');
    const tokenizer = await loadTokenizerFrom(tokenizerDir);
    try {
      const data = await loadDataset(createReadStream(file), {
        // A large file takes a while (about 5 MB/s on two cores): said on stderr, as train says it.
        onProgress: dataProgressPrinter((l) => io.err(l), quote(file), statSync(file).size),
        tokenizer,
        layout: hp.layout,
        maxSeqLen: hp.max_seq_len,
        maxProblems,
        keepExamples: false,
      });
      const lines = data.problems.lines();
      if (!data.ok) {
        for (const l of lines) io.err(l);
        io.err(`${visibleText(file)}: ${formatCount(data.summary.errors)} error${data.summary.errors === 1 ? '' : 's'}, ${formatCount(data.summary.warnings)} warning${data.summary.warnings === 1 ? '' : 's'}: not usable for training`);
        return 1;
      }
      for (const l of lines) io.err(l);
      const s = data.summary;
      io.out(
        JSON.stringify(
          {
            file,
            rows: s.rows,
            shape: s.shape,
            layout: s.layout,
            max_seq_len: s.maxSeqLen,
            tokens: s.tokens && { total: s.tokens.total, min: s.tokens.min, median: s.tokens.median, max: s.tokens.max, loss_tokens: s.tokens.lossTokens },
            rows_truncated: s.rowsTruncated,
            tokens_lost: s.tokensLost,
            lines: s.lines,
            bytes: s.bytes,
            warnings: s.warnings,
            warning_lines: data.problems.shown.filter((p) => p.severity === 'warning').map(formatProblem),
          },
          null,
          2,
        ),
      );
      return 0;
    } finally {
      tokenizer.dispose();
    }
  },
};
