// A model's own tokenizer: the `tokenizer.model` beside its weights (a Hub repository, a picked folder, a directory).
// The app's tokenizer is Mistral's v1 (Mistral-7B v0.1 and v0.2, 32000 pieces). A model of another vocabulary
// (Mistral-7B-Instruct-v0.3: 32768, its v3 tokenizer) is read, trained and sampled with its own, when its files hold
// one whose vocabulary is the model's; otherwise it is refused, as before, saying how to give one.

import { FinetuneError } from '../core/errors.ts';
import { formatBytes, formatCount } from '../core/units.ts';
import { loadTokenizer, vocabularyMismatch, type Tokenizer } from '../data/tokenizer.ts';
import type { MistralConfig } from '../model/config.ts';
import { isNotFound, type FileSet } from '../model/source.ts';

export const MODEL_TOKENIZER_FILE = 'tokenizer.model';

/**
 * Far above any SentencePiece model published (Mistral's v1 and v3 are 0.5–0.6 MB; Gemma's 4 MB) and far below what
 * would strain a tab's memory: the file is read whole.
 */
export const MAX_TOKENIZER_BYTES = 64 * 1024 * 1024;

/** What the refusal of a model of another vocabulary tells the user to do: the page's way, and the CLI's. */
const GIVE_ONE =
  "the model needs its own tokenizer: put its tokenizer.model beside its weights (on the page: pick the model's files or folder with it, or a Hub repository that has one), or give the command line --tokenizer DIR, a folder with it";

/**
 * The tokenizer to use with this model: `base` when its vocabulary is the model's (null: nothing to change), else the
 * model's own from its files. Throws the vocabulary mismatch, saying how to give a tokenizer, when the files hold none
 * or one of yet another vocabulary.
 */
export async function tokenizerForModel(files: FileSet, config: Pick<MistralConfig, 'vocabSize'>, base: Pick<Tokenizer, 'vocabSize'>, baseName = 'the tokenizer'): Promise<Tokenizer | null> {
  if (config.vocabSize === base.vocabSize) return null;
  let own;
  try {
    own = await files.open(MODEL_TOKENIZER_FILE);
  } catch (e) {
    if (!isNotFound(e)) throw e;
    throw new FinetuneError(
      'bad-input',
      `the model's vocabulary has ${config.vocabSize} tokens, ${baseName} ${base.vocabSize}, and the model's files hold no ${MODEL_TOKENIZER_FILE} of its own: ${GIVE_ONE}`,
      { modelVocab: config.vocabSize, tokenizerVocab: base.vocabSize },
    );
  }
  if (own.size > MAX_TOKENIZER_BYTES) {
    throw new FinetuneError('bad-input', `${own.name}: ${formatCount(own.size)} bytes, more than the ${formatBytes(MAX_TOKENIZER_BYTES)} a SentencePiece model could need: not a tokenizer`);
  }
  let tokenizer: Tokenizer;
  try {
    tokenizer = await loadTokenizer(await own.read(0, own.size), `the model's own tokenizer (${own.name})`);
  } catch (e) {
    if (e instanceof FinetuneError && e.kind === 'bad-input') throw new FinetuneError('bad-input', `${own.name} is ${e.message}`);
    throw e;
  }
  const mismatch = vocabularyMismatch(config.vocabSize, tokenizer.vocabSize, `its own ${MODEL_TOKENIZER_FILE} (${own.name})`, 'the two do not belong together');
  if (mismatch) {
    tokenizer.dispose();
    throw mismatch;
  }
  return tokenizer;
}
