import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { renderChatTemplate, rowToMessages, type TokenizerConfig } from '../../../src/data/chat-template.ts';
import { isFinetuneError } from '../../../src/core/errors.ts';
import { loadTokenizer } from '../../../src/data/tokenizer.ts';
import { FIXTURES, golden, mistralTokenizer } from './helpers.ts';

describe('SentencePiece tokenizer loaded from bytes', () => {
  it('reproduces every canonical id list of tokenizer_golden.json', async () => {
    const tok = await mistralTokenizer();
    const g = golden();
    expect(g.texts.length).toBe(39);
    for (const { text, ids } of g.texts) expect(tok.encode(text), JSON.stringify(text)).toEqual(ids);
  });

  it('reads the vocabulary and special ids from the model file', async () => {
    const tok = await mistralTokenizer();
    expect([tok.vocabSize, tok.unkId, tok.bosId, tok.eosId, tok.padId]).toEqual([32000, 0, 1, 2, -1]);
    expect([tok.idToPiece(0), tok.idToPiece(1), tok.idToPiece(2), tok.idToPiece(13)]).toEqual(['<unk>', '<s>', '</s>', '<0x0A>']);
    expect(tok.idToPiece(22557)).toBe('▁Hello');
  });

  it('decodes back to the text (byte fallback included)', async () => {
    const tok = await mistralTokenizer();
    for (const text of ['Hello world', 'naïve café 東京 🤗 ∑x²', 'def f(x):\n    return x**2', 'emoji 👩‍💻 and ZWJ']) {
      expect(tok.decode(tok.encode(text))).toBe(text);
    }
    expect(() => tok.decode([32000])).toThrow(/outside the vocabulary/);
    expect(() => tok.decode([-1])).toThrow(/outside the vocabulary/);
  });

  it('encodes a lone surrogate (possible via a JSON \\ud800 escape) as U+FFFD would be', async () => {
    const tok = await mistralTokenizer();
    expect(tok.encode('a\ud800b')).toEqual(tok.encode('a\ufffdb'));
    expect(tok.encode('')).toEqual([]);
  });

  it('refuses bytes that are not a SentencePiece model with bad-input', async () => {
    for (const bytes of [new Uint8Array([1, 2, 3]), new TextEncoder().encode('{"model": "no"}'), new Uint8Array(0), new Uint8Array([0x0a, 0x02, 0x0a, 0x00])]) {
      const err = await loadTokenizer(bytes).then(
        () => null,
        (e: unknown) => e,
      );
      expect(isFinetuneError(err, 'bad-input'), String(err)).toBe(true);
    }
  });

  it('loads several models side by side and disposes them', async () => {
    const bytes = new Uint8Array(readFileSync(`${FIXTURES}/mistral-tokenizer/tokenizer.model`));
    const a = await loadTokenizer(bytes);
    const b = await loadTokenizer(bytes);
    expect(a.encode('side by side')).toEqual(b.encode('side by side'));
    a.dispose();
    expect(() => a.encode('x')).toThrow(/after dispose/);
    expect(b.encode('Hello world')).toEqual([22557, 1526]);
    b.dispose();
  });
});

describe('chat template from tokenizer_config.json (@huggingface/jinja)', () => {
  const config = JSON.parse(readFileSync(`${FIXTURES}/mistral-tokenizer/tokenizer_config.json`, 'utf8')) as TokenizerConfig;

  it('renders Mistral-7B-Instruct-v0.2 conversations as the Hub template does', () => {
    const row = { line: 1, shape: 'prompt_completion' as const, prompt: 'What is 2+2?', completion: '4' };
    expect(renderChatTemplate(config, rowToMessages(row))).toBe('<s>[INST] What is 2+2? [/INST]4</s>');
    expect(
      renderChatTemplate(config, [
        { role: 'user', content: 'a' },
        { role: 'assistant', content: 'b' },
        { role: 'user', content: 'c' },
      ]),
    ).toBe('<s>[INST] a [/INST]b</s>[INST] c [/INST]');
  });

  it("turns the template's raise_exception into a bad-input error", () => {
    expect(() => renderChatTemplate(config, [{ role: 'assistant', content: 'first' }])).toThrow(/roles must alternate/);
    try {
      renderChatTemplate(config, [{ role: 'system', content: 's' }]);
      expect.unreachable();
    } catch (e) {
      expect(isFinetuneError(e, 'bad-input')).toBe(true);
    }
  });

  it('says so when a config has no template, and text rows have no turns', () => {
    expect(() => renderChatTemplate({}, [])).toThrow(/no chat_template/);
    expect(() => rowToMessages({ line: 1, shape: 'text', text: 'x' })).toThrow(/not a conversation/);
  });
});
