// The model's chat template (tokenizer_config.json), rendered with @huggingface/jinja — the engine transformers.js
// uses. For display and export only: training uses the layouts of layout.ts, because the Hub template renders
// `[/INST]answer` as one string and so tokenises the answer without its leading "▁" (docs/tokenizer.md).

import { Template } from '@huggingface/jinja';
import { FinetuneError, thrownMessage } from '../core/errors.ts';
import type { DataRow } from './rows.ts';

export interface ChatMessage {
  role: 'system' | 'user' | 'assistant';
  content: string;
}

/** The fields of tokenizer_config.json the template needs (special tokens may be strings or AddedToken objects). */
export interface TokenizerConfig {
  chat_template?: string | { name: string; template: string }[];
  bos_token?: string | { content: string } | null;
  eos_token?: string | { content: string } | null;
  unk_token?: string | { content: string } | null;
  pad_token?: string | { content: string } | null;
}

function tokenText(t: TokenizerConfig['bos_token']): string {
  if (t === undefined || t === null) return '';
  return typeof t === 'string' ? t : t.content;
}

/** The default template of a config (the one named "default" when the config has several). */
export function chatTemplateOf(config: TokenizerConfig): string {
  const t = config.chat_template;
  if (typeof t === 'string') return t;
  if (Array.isArray(t)) {
    const d = t.find((x) => x.name === 'default') ?? t[0];
    if (d) return d.template;
  }
  throw new FinetuneError('bad-input', 'tokenizer_config.json has no chat_template');
}

const compiled = new Map<string, Template>();

/** The conversation as the model's chat template writes it (e.g. "<s>[INST] Hi [/INST]Hello</s>"). */
export function renderChatTemplate(config: TokenizerConfig, messages: readonly ChatMessage[], options: { addGenerationPrompt?: boolean } = {}): string {
  const source = chatTemplateOf(config);
  let template = compiled.get(source);
  if (!template) {
    try {
      template = new Template(source);
    } catch (e) {
      throw new FinetuneError('bad-input', `the chat template does not parse: ${thrownMessage(e)}`);
    }
    compiled.set(source, template);
  }
  try {
    return template.render({
      messages: messages.map((m) => ({ role: m.role, content: m.content })),
      bos_token: tokenText(config.bos_token),
      eos_token: tokenText(config.eos_token),
      unk_token: tokenText(config.unk_token),
      pad_token: tokenText(config.pad_token),
      add_generation_prompt: options.addGenerationPrompt ?? false,
    });
  } catch (e) {
    // raise_exception(...) in the template, e.g. "Conversation roles must alternate user/assistant/…".
    throw new FinetuneError('bad-input', `chat template: ${thrownMessage(e)}`);
  }
}

/** A prompt/completion row as a one-turn conversation; a text row has no turns to show. */
export function rowToMessages(row: DataRow): ChatMessage[] {
  if (row.shape === 'text') throw new FinetuneError('bad-input', 'a {"text"} row is not a conversation; only prompt/completion rows have turns');
  return [
    { role: 'user', content: row.prompt },
    { role: 'assistant', content: row.completion },
  ];
}
