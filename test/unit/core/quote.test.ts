// Names and values from outside, quoted in messages: a bidirectional control in one (U+202E, the right-to-left
// override of the "txt.exe" spoof) is shown as an escape, so it can neither hide itself nor reorder the words after it.
import { describe, expect, it } from 'vitest';
import { terminalLine } from '../../../src/cli/main.ts';
import { parseLoraConfig } from '../../../src/model/lora-adapter.ts';
import { parseSafetensorsHeaderBytes } from '../../../src/model/safetensors.ts';
import { checkFileName } from '../../../src/model/source.ts';
import { quote } from '../../../src/core/quote.ts';

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

  it('quotes the strings inside a value, and writes what JSON cannot', () => {
    expect(quote([`q${RLO}`, 1, null])).toBe('["q\\u202e",1,null]');
    expect(quote(undefined)).toBe('undefined');
  });
});
