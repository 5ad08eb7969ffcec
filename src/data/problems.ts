// What is wrong with a dataset, line by line. Every problem names the line it is on (1-based, counting every line
// of the file, blank ones included, as an editor does), or is about the file as a whole (line null: the file is empty,
// the layout does not fit the rows…). The log keeps the first `maxProblems` problems and counts the rest.
//
// A note is a remark about the file that explains or sums up its errors ("this looks like CSV", "no usable rows"): it is
// listed with them but counted as neither an error nor a warning, so the error count is the number of things wrong
// that the list shows, not one more for the remark. A note never stands alone: the errors it speaks of refuse the file.

import { formatCount } from '../core/units.ts';

export type Severity = 'error' | 'warning' | 'note';

export type ProblemCode =
  | 'empty-file' // no rows at all (an error), or no usable ones, every row having an error (a note)
  | 'looks-like-json-array' // the file starts with '[': a JSON array, not JSONL (a note)
  | 'looks-like-csv' // the first line is no JSON but has commas or tabs and no '{' (a note)
  | 'cr-line-ends' // the first line is no JSON and holds lone CRs: old Mac line ends, the file read as one line (a note)
  | 'not-text' // the file is binary (an image, an archive, UTF-16…), not UTF-8 text: reported once, nothing read
  | 'invalid-utf8' // bytes that are not UTF-8
  | 'line-too-long' // a line longer than the reader's byte limit (skipped)
  | 'invalid-json' // a JSON syntax error (with a column)
  | 'not-object' // valid JSON, but not an object
  | 'no-fields' // neither "text" nor "prompt"/"completion"
  | 'both-shapes' // "text" and "prompt"/"completion" in one row
  | 'missing-field' // "prompt" without "completion" or the reverse
  | 'not-string' // a field that is not a string
  | 'empty-string' // "" where text is needed
  | 'unpaired-surrogate' // half of a UTF-16 surrogate pair alone (\ud800 in JSON): no Unicode character
  | 'blank-string' // only whitespace (a warning)
  | 'mixed-shapes' // text rows and prompt/completion rows in one file
  | 'unknown-fields' // extra fields, ignored (a warning)
  | 'layout-mismatch' // e.g. the instruct layout on text rows
  | 'truncated' // longer than max_seq_len, cut (a warning)
  | 'no-loss-tokens' // nothing left to learn from after truncation (a warning)
  | 'special-token-text' // the text "<s>" or "</s>" in a row: characters, not the special token (a warning)
  | 'read-failed'; // the byte stream itself failed

export interface Problem {
  /** 1-based line number, or null for a problem about the whole file. */
  line: number | null;
  /** 1-based column (in characters) where the problem is, when it is at one place in the line. */
  column?: number;
  severity: Severity;
  code: ProblemCode;
  message: string;
}

/** `line 12, column 5: …`, `line 12: warning: …`, `file: …`, `file: note: …` — the form the CLI prints. */
export function formatProblem(p: Problem): string {
  const where = p.line === null ? 'file' : p.column !== undefined ? `line ${p.line}, column ${p.column}` : `line ${p.line}`;
  return `${where}: ${p.severity === 'error' ? '' : `${p.severity}: `}${p.message}`;
}

export class ProblemLog {
  readonly maxProblems: number;
  /** The problems kept, in the order found (at most maxProblems). */
  readonly shown: Problem[] = [];
  errorCount = 0;
  warningCount = 0;
  noteCount = 0;

  constructor(maxProblems = 100) {
    if (!Number.isInteger(maxProblems) || maxProblems < 0) throw new RangeError(`maxProblems must be a non-negative integer, got ${maxProblems}`);
    this.maxProblems = maxProblems;
  }

  add(p: Problem): void {
    if (p.severity === 'error') this.errorCount++;
    else if (p.severity === 'warning') this.warningCount++;
    else this.noteCount++;
    if (this.shown.length < this.maxProblems) this.shown.push(p);
  }

  error(line: number | null, code: ProblemCode, message: string, column?: number): void {
    this.add(column === undefined ? { line, severity: 'error', code, message } : { line, column, severity: 'error', code, message });
  }

  warn(line: number | null, code: ProblemCode, message: string): void {
    this.add({ line, severity: 'warning', code, message });
  }

  /** A remark that explains errors already (or about to be) logged; counted as neither an error nor a warning. */
  note(line: number | null, code: ProblemCode, message: string): void {
    this.add({ line, severity: 'note', code, message });
  }

  /** Every problem found, notes included (what `omitted` is counted against). */
  get total(): number {
    return this.errorCount + this.warningCount + this.noteCount;
  }

  /** Problems found but not kept. */
  get omitted(): number {
    return this.total - this.shown.length;
  }

  get hasErrors(): boolean {
    return this.errorCount > 0;
  }

  /** One line per kept problem, plus a last line counting the ones left out. */
  lines(): string[] {
    const out = this.shown.map(formatProblem);
    const n = (k: number, word: string) => `${formatCount(k)} ${word}${k === 1 ? '' : 's'}`;
    if (this.omitted > 0) out.push(`… and ${n(this.omitted, 'more problem')} not shown (${n(this.errorCount, 'error')}, ${n(this.warningCount, 'warning')} in all)`);
    return out;
  }
}
