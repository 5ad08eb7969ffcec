// A Replicate training object → what the adapter's README says of how it was trained (core/remote-training.ts). The
// page and `finetune remote fetch` both build it from the training they import.

import type { Training } from 'replicate';
import { FIELDS } from '../config/hyperparams.ts';
import type { RemoteTrainingSummary } from '../core/remote-training.ts';
import { predictSeconds } from './answers.ts';

/** Longest value written for an input this app does not know (an object, a long string). */
const MAX_UNKNOWN_VALUE = 200;

/** Longest string input written (a validation_prompt can be any length; the README is for reading). */
const MAX_STRING_VALUE = 1000;

function primitive(value: unknown): string | number | boolean | null {
  if (typeof value === 'string') return value.length > MAX_STRING_VALUE ? `${value.slice(0, MAX_STRING_VALUE)}…` : value;
  if (typeof value === 'number' || typeof value === 'boolean') return value;
  if (value === null || value === undefined) return null;
  const json = JSON.stringify(value) ?? String(value);
  return json.length > MAX_UNKNOWN_VALUE ? `${json.slice(0, MAX_UNKNOWN_VALUE)}…` : json;
}

/** A value that is a URL, written as such without it: a file's URL on Replicate can carry a signature or a token. */
function withoutUrl(value: string | number | boolean): string | number | boolean {
  return typeof value === 'string' && /^[a-z][a-z0-9+.-]*:\/\//i.test(value.trim()) ? '(a URL, not written here)' : value;
}

/** The README's account of a Replicate training: its trainer, version, time, and every hyperparameter it trained with. */
export function remoteTrainingSummary(t: Training): RemoteTrainingSummary {
  const input: Record<string, unknown> = t.input && typeof t.input === 'object' ? (t.input as Record<string, unknown>) : {};
  const inputs: RemoteTrainingSummary['inputs'][number][] = [];
  const known = new Set<string>();
  for (const f of FIELDS) {
    if (f.group !== 'replicate') continue;
    known.add(f.name);
    if (f.type === 'file') continue;
    const sent = primitive(input[f.name]);
    const value = sent ?? f.default;
    if (value === undefined) continue;
    inputs.push({ name: f.name, value: withoutUrl(value), isDefault: sent === null || sent === f.default });
  }
  // Inputs of another trainer (a training started elsewhere): listed as they were, never a URL.
  for (const [name, raw] of Object.entries(input)) {
    if (known.has(name) || /_data$/.test(name)) continue;
    const value = primitive(raw);
    if (value !== null) inputs.push({ name: name.length > 100 ? `${name.slice(0, 100)}…` : name, value: withoutUrl(value), isDefault: false });
  }
  return {
    id: t.id,
    trainer: typeof t.model === 'string' && t.model !== '' ? t.model : null,
    version: typeof t.version === 'string' && t.version !== '' ? t.version : null,
    completedAt: typeof t.completed_at === 'string' ? t.completed_at : null,
    seconds: predictSeconds(t),
    inputs,
  };
}
