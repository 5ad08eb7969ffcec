// Names and values from outside, quoted in messages: a bidirectional control in one (U+202E, the right-to-left
// override of the "txt.exe" spoof) is shown as an escape, so it can neither hide itself nor reorder the words after it.
import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { terminalLine } from '../../../src/cli/main.ts';
import { defaultHyperparams } from '../../../src/config/hyperparams.ts';
import { loadTokenizer } from '../../../src/data/tokenizer.ts';
import { loadRunData } from '../../../src/data/training-data.ts';
import { importAdapter } from '../../../src/model/adapter-import.ts';
import { INDEX_FILE, openBaseCheckpoint } from '../../../src/model/checkpoint.ts';
import { parseMistralConfig } from '../../../src/model/config.ts';
import { parseLoraConfig } from '../../../src/model/lora-adapter.ts';
import { parseSafetensorsHeaderBytes } from '../../../src/model/safetensors.ts';
import { bytesSource, checkFileName, memoryFileSet, readJson } from '../../../src/model/source.ts';
import { readTorchStateDict } from '../../../src/model/torch-pickle.ts';
import { listZip } from '../../../src/model/zip-archive.ts';
import { checkModelFiles, checkTokenizer } from '../../../src/run/saved-run-check.ts';
import type { SavedRun } from '../../../src/run/saved-run.ts';
import { torchZip } from '../../helpers/torch-save.ts';
import { MISTRAL_7B_V02 } from '../model/helpers.ts';
import { firstFew, quote, quoteCut, visibleText } from '../../../src/core/quote.ts';

const RLO = '\u202e';

/** The message of what `f` throws. */
function messageOf(f: () => unknown): string {
  try {
    f();
  } catch (e) {
    return (e as Error).message;
  }
  throw new Error('nothing was thrown');
}

/** A safetensors file whose header is `header` and whose data is `dataBytes` zero bytes. */
function safetensors(header: unknown, dataBytes: number): Uint8Array {
  const json = new TextEncoder().encode(JSON.stringify(header));
  const out = new Uint8Array(8 + json.byteLength + dataBytes);
  new DataView(out.buffer).setBigUint64(0, BigInt(json.byteLength), true);
  out.set(json, 8);
  return out;
}

describe('a name with a bidirectional control, quoted in a message', () => {
  it('a refused file name', () => {
    const m = messageOf(() => checkFileName(`../report${RLO}txt.exe`));
    expect(m).toContain('"../report\\u202etxt.exe"');
    expect(m).not.toContain(RLO);
  });

  it("a tensor's name from a safetensors header", () => {
    const m = messageOf(() => parseSafetensorsHeaderBytes(safetensors({ [`w${RLO}x`]: { dtype: 'Q9', shape: [1], data_offsets: [0, 4] } }, 4)));
    expect(m).toContain('tensor "w\\u202ex"');
    expect(m).not.toContain(RLO);
  });

  it("a value from an adapter's config", () => {
    const m = messageOf(() => parseLoraConfig({ peft_type: `LO${RLO}RA`, r: 8, lora_alpha: 16, target_modules: ['q_proj'] }));
    expect(m).toContain('"LO\\u202eRA"');
    expect(m).not.toContain(RLO);
  });

  it('every bidirectional control, the marks and isolates too', () => {
    const all = '\u061c\u200e\u200f\u202a\u202b\u202c\u202d\u202e\u2066\u2067\u2068\u2069';
    const m = messageOf(() => checkFileName(`/${all}`));
    expect(m).toContain('\\u061c\\u200e\\u200f\\u202a\\u202b\\u202c\\u202d\\u202e\\u2066\\u2067\\u2068\\u2069');
  });
});

describe('terminalLine', () => {
  it('escapes the bidirectional marks as well as the embeddings, overrides and isolates', () => {
    expect(terminalLine('a\u200fb\u200ec\u061cd')).toBe('a\\u200fb\\u200ec\\u061cd');
  });
});

describe('quote', () => {
  it('is JSON.stringify for ordinary text, non-ASCII letters included', () => {
    for (const v of ['model.safetensors', 'ünïcödé 日本語 ✓', 'a "b" \\ c', 'tab\tand\nnewline', '\u001b[2J']) expect(quote(v)).toBe(JSON.stringify(v));
  });

  it('escapes DEL, the C1 controls and the line and paragraph separators, which JSON.stringify leaves', () => {
    expect(quote('a\u007fb\u0085c\u009bd\u2028e\u2029f')).toBe('"a\\u007fb\\u0085c\\u009bd\\u2028e\\u2029f"');
  });

  // A name with a zero-width character looks like the name without it: "model\u200b.safetensors" and
  // "model.safetensors" read the same in a message, so a message about one reads as about the other.
  it('escapes the zero-width and other invisible characters: U+200B, U+FEFF, U+2060, U+00AD, U+180E', () => {
    expect(quote('a\u200bb\ufeffc\u2060d\u00ade\u180ef')).toBe('"a\\u200bb\\ufeffc\\u2060d\\u00ade\\u180ef"');
    expect(visibleText('model\u200b.safetensors')).toBe('model\\u200b.safetensors');
    expect(visibleText('\ufeffdata.jsonl')).toBe('\\ufeffdata.jsonl');
  });

  // ZWNJ and ZWJ are part of how words are written (Persian, the Indic scripts) and of emoji sequences: escaped, a
  // Persian file name or a family emoji would be shown broken.
  it('leaves U+200C (ZWNJ) and U+200D (ZWJ) as they are: scripts and emoji sequences need them', () => {
    for (const v of ['می\u200cخواهم.jsonl', 'क्\u200dष', '\u{1F468}\u200d\u{1F469}\u200d\u{1F467}']) {
      expect(quote(v)).toBe(JSON.stringify(v));
      expect(visibleText(v)).toBe(v);
    }
  });

  it('quotes the strings inside a value, and writes what JSON cannot', () => {
    expect(quote([`q${RLO}`, 1, null])).toBe('["q\\u202e",1,null]');
    expect(quote(undefined)).toBe('undefined');
  });
});

// The file or folder a message is about, named at its start as a path label (`Mistral-7B/config.json: …`): shown with
// visibleText's escapes, without quotes, so a plain name reads as before. The names found inside it (a zip's entries,
// an index's shards) are quoted.
describe('the name a message about a file or folder begins with', () => {
  const named = `report${RLO}txt`;
  const escaped = 'report\\u202etxt';

  /** The message of what `f` throws or rejects with. */
  async function messageOfAsync(f: () => unknown): Promise<string> {
    try {
      await f();
    } catch (e) {
      return (e as Error).message;
    }
    throw new Error('nothing was thrown');
  }

  /** `m` begins with the escaped name and holds no bidirectional control. */
  function expectLabel(m: string, start = escaped): void {
    expect(m.startsWith(start), m).toBe(true);
    expect(m).not.toContain(RLO);
  }

  it('a model folder without config.json, a shard its index names, a tensor read', async () => {
    expectLabel(await messageOfAsync(() => openBaseCheckpoint(memoryFileSet({}, named))), `${escaped}: no config.json`);
    const config = JSON.stringify(MISTRAL_7B_V02);
    const index = JSON.stringify({ weight_map: { 'model.embed_tokens.weight': `model-0${RLO}1.safetensors` } });
    const m = await messageOfAsync(() => openBaseCheckpoint(memoryFileSet({ 'config.json': config, [INDEX_FILE]: index }, named)));
    expect(m).toBe(`${escaped}: shard "model-0\\u202e1.safetensors" named by ${INDEX_FILE} is missing`);
  });

  it("a config's, an adapter config's, a safetensors file's, a zip's and a torch.save file's name", async () => {
    expectLabel(messageOf(() => parseMistralConfig({}, `${named}/config.json`)));
    expectLabel(messageOf(() => parseLoraConfig({}, `${named}/adapter_config.json`)));
    expectLabel(messageOf(() => parseSafetensorsHeaderBytes(new Uint8Array(4), 4, named)));
    expectLabel(messageOf(() => listZip(new Uint8Array(30), named)));
    expectLabel(messageOf(() => readTorchStateDict(new Uint8Array(30), named)));
    expectLabel(await messageOfAsync(() => importAdapter(new Uint8Array(30), { where: named })));
    expectLabel(await messageOfAsync(() => importAdapter(memoryFileSet({}, named))));
  });

  it("the folder of a torch.save archive's pickle is quoted, a name from inside the file", () => {
    // An unknown opcode (0xff) after the protocol header: the unpickler's refusal names where the pickle is. (The test's
    // zip does not mark its names as UTF-8, so they are read as CP437 and a U+202E would not survive: an escape code does.)
    const bin = torchZip(new Uint8Array([0x80, 2, 0xff]), new Map(), { archive: 'ar\u001b]0;x\u0007c' });
    const m = messageOf(() => readTorchStateDict(bin, 'adapter_model.bin'));
    expect(m.startsWith('adapter_model.bin: "ar\\u001b]0;x\\u0007c/data.pkl": '), m).toBe(true);
  });

  it("a file set's name, and the JSON file read from it", async () => {
    expectLabel(messageOf(() => checkFileName('../x', named)));
    expectLabel(await messageOfAsync(() => memoryFileSet({}, named).open('config.json')), `${escaped}: no file "config.json"`);
    expectLabel(await messageOfAsync(() => readJson(bytesSource(new TextEncoder().encode('{'), named))), `${escaped} is not valid JSON`);
    expectLabel(await messageOfAsync(() => readJson(bytesSource(new Uint8Array([0xff]), named))), `${escaped} is not UTF-8 text`);
  });

  it('a dataset file with errors', async () => {
    const tokenizer = await loadTokenizer(new Uint8Array(readFileSync('public/tokenizer/tokenizer.model')));
    const file = new TextEncoder().encode('not json\n');
    const m = await messageOfAsync(() => loadRunData({ train: file, trainName: named }, tokenizer, defaultHyperparams()));
    expectLabel(m, `${escaped} has 1 error`);
  });

  // Written to a terminal, a line break in a name started a line of the name's choosing: a dataset named
  // "a.jsonl\nfinetune train: done" made "finetune train: done" a line of its own under the error. A name shown without
  // quotes has its control characters escaped as quote() writes them.
  it('a line break, a tab or an escape sequence in the name is shown as an escape, as quote() shows it', async () => {
    expect(visibleText('a.jsonl\nfinetune train: done\t\r\u001b[2J')).toBe('a.jsonl\\nfinetune train: done\\t\\r\\u001b[2J');
    const tokenizer = await loadTokenizer(new Uint8Array(readFileSync('public/tokenizer/tokenizer.model')));
    const m = await messageOfAsync(() => loadRunData({ train: new TextEncoder().encode('not json\n'), trainName: 'a.jsonl\nfinetune train: done' }, tokenizer, defaultHyperparams()));
    expect(m.split('\n')[0]).toBe('a.jsonl\\nfinetune train: done has 1 error:');
  });

  it("a resume's tokenizers, and the model it was trained on", () => {
    const run = { modelSource: `owner/m"${RLO}`, tokenizer: { checksum: `sha256:${'0'.repeat(64)}`, name: `other/${named}` } } as unknown as SavedRun;
    const m = messageOf(() => checkTokenizer(run, { checksum: `sha256:${'1'.repeat(64)}`, name: named }, 'Load it.'));
    expect(m).toContain(`with the tokenizer other/${escaped} (sha256:`);
    expect(m).toContain(`this resume has ${escaped} (sha256:`);
    expect(m).not.toContain(RLO);
    const withFiles = { ...run, modelFiles: [{ name: `a${RLO}.safetensors`, size: 1, version: null }] } as unknown as SavedRun;
    const other = messageOf(() => checkModelFiles(withFiles, [{ name: 'b.safetensors', size: 1, version: null }]));
    expect(other).toBe('the loaded model "owner/m\\"\\u202e" is not the one the saved run was trained on: its files are b.safetensors (1 bytes); the run\'s were a\\u202e.safetensors (1 bytes). Load the run\'s model to resume it');
  });
});

describe('quoteCut', () => {
  it('quotes a short value whole, and a long one as its first characters and "…"', () => {
    expect(quoteCut('abc')).toBe('"abc"');
    expect(quoteCut('x'.repeat(1_000_000))).toBe(`"${'x'.repeat(199)}…`);
    expect(quoteCut(['a', 'b'], 5)).toBe('["a",…');
    expect(quoteCut(42, 80)).toBe('42');
  });

  it('escapes what quote escapes before cutting, so a cut never leaves a control character bare', () => {
    expect(quoteCut(`ab\u202e${'y'.repeat(300)}`, 12)).toBe('"ab\\u202eyyy…');
  });
});

describe('firstFew', () => {
  it('lists a short list whole, and a long one as its first items and the count', () => {
    expect(firstFew(['a', 'b'], 8, '; ', 'problems')).toBe('a; b');
    expect(firstFew(['a', 'b', 'c'], 2, '; ', 'problems')).toBe('a; b; … (3 problems)');
    expect(firstFew(['x', 'y', 'z'], 2, ', ', 'in all', quote)).toBe('"x", "y", … (3 in all)');
    expect(firstFew([], 5, ', ', 'in all')).toBe('');
  });
});
