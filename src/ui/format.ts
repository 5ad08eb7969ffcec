// Number and time formatting for the page. Every figure is shown in tabular monospace (style.css .num).

import { validationLossWords as coreValidationLossWords } from '../core/run-words.ts';
import { isFinetuneError, thrownText } from '../core/errors.ts';
import { formatCount, formatCounted, formatPercent } from '../core/units.ts';

/** Thousands separated, and percentages (core/units.ts: messages from lower floors and the CLI use them too). */
export { formatCount, formatCounted, formatPercent };

/** 0:42, 3:05, 1:02:09 — a duration that grows while you look at it. */
export function formatDuration(seconds: number): string {
  if (!Number.isFinite(seconds) || seconds < 0) return '—';
  const s = Math.round(seconds);
  const h = Math.floor(s / 3600);
  const m = Math.floor((s % 3600) / 60);
  const r = s % 60;
  const mm = h > 0 ? String(m).padStart(2, '0') : String(m);
  return `${h > 0 ? `${h}:` : ''}${mm}:${String(r).padStart(2, '0')}`;
}

/** A loss: 4 significant digits (2.304, 10.37). */
export function formatLoss(x: number | null | undefined): string {
  if (x === null || x === undefined) return '—';
  if (!Number.isFinite(x)) return String(x);
  return x.toPrecision(4);
}

/** validationLossWords (src/core/run-words.ts) with the page's losses (formatLoss). */
export function validationLossWords(final: number | null | undefined, before: number | null | undefined): string {
  return coreValidationLossWords(final, before, formatLoss);
}

/** A learning rate or other small positive number: 1.00e-4. */
export function formatSci(x: number | null | undefined): string {
  if (x === null || x === undefined || !Number.isFinite(x)) return '—';
  if (x === 0) return '0';
  return x.toExponential(2);
}


/** "about 3 min", "about 2.5 hours": an estimate is not a promise, so it is rounded like one. */
export function roughDuration(seconds: number): string {
  if (!Number.isFinite(seconds)) return 'an unknown time';
  if (seconds < 90) return `about ${Math.max(1, Math.round(seconds))} s`;
  if (seconds < 90 * 60) return `about ${Math.round(seconds / 60)} min`;
  const hours = seconds / 3600;
  return hours < 48 ? `about ${hours < 10 ? hours.toFixed(1) : Math.round(hours)} hours` : `about ${Math.round(hours / 24)} days`;
}

/** Tokens per second: one decimal below 100. */
export function formatRate(x: number | null | undefined): string {
  if (x === null || x === undefined || !Number.isFinite(x)) return '—';
  return x < 100 ? x.toFixed(1) : formatCount(x);
}

/**
 * How the base weights are held, in words: "none" beside a model's name read like an error ("Loaded
 * mistral-nano-demo (none)"). The form and the CLI keep the values themselves (none, nf4, nf4-double).
 */
export function quantizationLabel(q: string): string {
  const words: Record<string, string> = { none: 'unquantised', nf4: 'NF4', 'nf4-double': 'NF4, double-quantised' };
  return words[q] ?? q;
}

/** Parameters: 39.6 M, 7.24 B. */
export function formatParams(n: number): string {
  if (n >= 1e9) return `${(n / 1e9).toFixed(2)} B`;
  if (n >= 1e6) return `${(n / 1e6).toFixed(1)} M`;
  if (n >= 1e3) return `${(n / 1e3).toFixed(1)} k`;
  return String(n);
}

/** "bad-input: lora_rank must be …" — an error's kind and message, for any thrown value. */
export function errorParts(e: unknown): { kind: string; message: string } {
  if (isFinetuneError(e)) return { kind: e.kind, message: e.message };
  if (e instanceof Error) return { kind: 'unexpected', message: e.message };
  // thrownText: String() throws for some values (an object with no prototype), and the page reports with this.
  return { kind: 'unexpected', message: thrownText(e) };
}

/** The separate messages of an error: a bad-input error from the schema lists them in details.errors. */
export function errorMessages(e: unknown): string[] {
  if (isFinetuneError(e)) {
    const list = e.details?.errors;
    if (Array.isArray(list) && list.length > 0 && list.every((m) => typeof m === 'string')) return list as string[];
  }
  return [errorParts(e).message];
}

/** 2025-01-15 09:30: a moment in local time, as a date and minutes (no locale guessing). */
export function formatDateTime(ms: number): string {
  if (!Number.isFinite(ms)) return '—';
  const d = new Date(ms);
  const p = (n: number): string => String(n).padStart(2, '0');
  return `${d.getFullYear()}-${p(d.getMonth() + 1)}-${p(d.getDate())} ${p(d.getHours())}:${p(d.getMinutes())}`;
}
