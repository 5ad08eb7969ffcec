import { columnOf, findJsonSyntaxError } from '../../data/json-syntax.ts';
import { readFileSync, statSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { FinetuneError, thrownMessage } from '../../core/errors.ts';
import { formatCount } from '../../core/units.ts';
import { loadTokenizer, vocabularyMismatch, type Tokenizer } from '../../data/tokenizer.ts';
import type { MistralConfig } from '../../model/config.ts';
import type { FileSet } from '../../model/source.ts';
import { MODEL_TOKENIZER_FILE, tokenizerForModel } from '../../run/model-tokenizer.ts';
import { parseCommandArgs, UsageError, type Command } from '../command.ts';
import { checkReadableFile } from '../input-file.ts';
import { quote } from '../../core/quote.ts';

/** The project's tokenizer (Mistral v1 SentencePiece), the one the demo model and the page use. */
export const DEFAULT_TOKENIZER_DIR = resolve(fileURLToPath(new URL('../../../public/tokenizer', import.meta.url)));

/** Loads `tokenizer.model` from a directory (or a .model file given directly). */
export async function loadTokenizerFrom(dirOrFile: string = DEFAULT_TOKENIZER_DIR): Promise<Tokenizer> {
  let path = dirOrFile;
  try {
    if (statSync(dirOrFile).isDirectory()) path = join(dirOrFile, 'tokenizer.model');
  } catch {
    throw new FinetuneError('bad-input', `--tokenizer: ${quote(dirOrFile)} does not exist`);
  }
  checkReadableFile(path, '--tokenizer'); // not a device such as /dev/zero, which would be read forever
  let bytes: Uint8Array;
  try {
    bytes = new Uint8Array(readFileSync(path));
  } catch (e) {
    throw new FinetuneError('bad-input', `--tokenizer: cannot read ${quote(path)}: ${thrownMessage(e)}`);
  }
  try {
    return await loadTokenizer(bytes, dirOrFile === DEFAULT_TOKENIZER_DIR ? `the default tokenizer (${path})` : dirOrFile);
  } catch (e) {
    // "not a SentencePiece model file" alone did not say which file: the default, or the one --tokenizer named.
    if (e instanceof FinetuneError && e.kind === 'bad-input') throw new FinetuneError('bad-input', `--tokenizer: ${quote(path)} is ${e.message}`);
    throw e;
  }
}

/**
 * The tokenizer a command reads this model with: `--tokenizer`'s, which must have the model's vocabulary; without the
 * flag the default one, or the model's own tokenizer.model where the model's vocabulary is another
 * (Mistral-7B-Instruct-v0.3), said on stderr (`note`). Refused, saying how to give one, when neither fits.
 */
export async function tokenizerForModelFlag(flag: string | undefined, files: FileSet, config: Pick<MistralConfig, 'vocabSize'>, note: (line: string) => void): Promise<Tokenizer> {
  const given = await loadTokenizerFrom(flag);
  if (flag !== undefined) {
    const mismatch = vocabularyMismatch(config.vocabSize, given.vocabSize, `the tokenizer (${flag})`, "give --tokenizer DIR, a folder with the model's own tokenizer.model");
    if (mismatch) throw mismatch;
    return given;
  }
  const own = await tokenizerForModel(files, config, given, "the project's tokenizer (public/tokenizer)");
  if (!own) return given;
  given.dispose();
  note(`note: the model's vocabulary has ${formatCount(config.vocabSize)} tokens, not the project's tokenizer's ${formatCount(given.vocabSize)}: reading it with ${own.identity?.name ?? `its own ${MODEL_TOKENIZER_FILE}`}`);
  return own;
}

const USAGE = `finetune tokenize --texts FILE.json [--tokenizer DIR]

Reads a JSON array of strings and prints a JSON array of id arrays, one per string: SentencePiece \`encode\` (with the
dummy-prefix space, without <s> or </s>).

options:
  --texts FILE.json   the strings to encode
  --tokenizer DIR     directory holding tokenizer.model (default: the project's public/tokenizer)`;

export const tokenizeCommand: Command = {
  name: 'tokenize',
  summary: 'encode a JSON array of strings with the SentencePiece tokenizer (prints a JSON array of id arrays)',
  usage: USAGE,
  async run(args, io) {
    const { values } = parseCommandArgs(args, { texts: { type: 'string' }, tokenizer: { type: 'string' } });
    if (!values.texts) throw new UsageError('--texts FILE.json is required');
    checkReadableFile(values.texts, '--texts');
    let texts: unknown;
    // A byte-order mark (Windows Notepad writes one) is skipped, as the JSONL reader skips it.
    const text = readFileSync(values.texts, 'utf8').replace(/^\uFEFF/, '');
    try {
      texts = JSON.parse(text);
    } catch (e) {
      // Where the error is, as validate says it of a JSONL line: the engine's "at position 134" is a count no editor shows.
      const at = findJsonSyntaxError(text);
      if (at) {
        const lineStart = text.lastIndexOf('\n', at.index - 1) + 1;
        const line = text.slice(0, lineStart).split('\n').length;
        throw new FinetuneError('bad-input', `--texts: ${quote(values.texts)} is not valid JSON: line ${line}, column ${columnOf(text.slice(lineStart), at.index - lineStart)}: ${at.message}`);
      }
      throw new FinetuneError('bad-input', `--texts: cannot read ${quote(values.texts)} as JSON: ${thrownMessage(e)}`);
    }
    if (!Array.isArray(texts)) throw new FinetuneError('bad-input', `--texts: ${quote(values.texts)} must hold a JSON array of strings`);
    const bad = texts.findIndex((t) => typeof t !== 'string');
    if (bad >= 0) throw new FinetuneError('bad-input', `--texts: element ${bad} of ${quote(values.texts)} is not a string`);
    const tok = await loadTokenizerFrom(values.tokenizer);
    try {
      io.out(JSON.stringify((texts as string[]).map((t) => tok.encode(t))));
    } finally {
      tok.dispose();
    }
    return 0;
  },
};
