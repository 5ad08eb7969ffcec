// The README's "Training" section: how the adapter was trained (data, hyperparameters, losses, the last
// validation_prompt sample), as a model card on the Hub has it, so an adapter published from here says what it is
// without its run record. Everything in it is the run's own; user text (file names, the prompt, a sample) is written
// in code spans and fenced blocks that it cannot close.

import type { RemoteTrainingSummary } from '../core/remote-training.ts';

/** What the README says of the run that trained the adapter (session.ts builds it from the run as it stands). */
export interface TrainingSummary {
  trainName: string;
  validationName: string | null;
  /** Optimizer steps done, and the plan's. */
  step: number;
  totalSteps: number;
  /**
   * Rows of the training and validation sets, as the run's plan split them; null where not known (a run's checkpoint
   * exported from its record, which keeps the data but not its split): validationRows 0 means no validation.
   */
  trainRows: number | null;
  validationRows: number | null;
  /** Every hyperparameter the run used, in the form's order: its value, and whether it is the default's. */
  hyperparameters: readonly { name: string; value: string | number | boolean; isDefault: boolean }[];
  /** Each step's training loss, its validation loss and validation_prompt sample where it had them. */
  history: readonly { step: number; loss: number; valLoss?: number; sample?: string }[];
  validationPrompt: string | null;
  /** The validation before the first step (eval_on_start), where the run made one: the untrained adapter's. */
  baseline?: { valLoss: number; sample?: string };
  /** The run started from an imported adapter, not PEFT's fresh initialisation. */
  fromImported?: boolean;
  /** The run is paused, not ended: the adapter is read while it waits (an export while paused), and goes on after. */
  paused?: boolean;
}

/**
 * Where an adapter's README "Training" section comes from: the run that trained it here, the Replicate training whose
 * output it is (imported, not trained further), or the section of the README it was imported with, kept as it was.
 */
export type TrainingCard =
  | { kind: 'local'; run: TrainingSummary }
  | { kind: 'remote'; training: RemoteTrainingSummary }
  | { kind: 'carried'; section: string };

/** The README lines of a card's "Training" section. */
export function trainingCardSection(card: TrainingCard): string[] {
  switch (card.kind) {
    case 'local':
      return trainingCardLines(card.run);
    case 'remote':
      return remoteTrainingCardLines(card.training);
    case 'carried':
      return [card.section];
  }
}

/** Validation rows listed at most; a longer run lists the first, then evenly spaced ones, and always the last. */
export const MAX_RESULT_ROWS = 40;

/**
 * `text` in a code span no backtick run in it can close (CommonMark: a longer fence, spaced when it starts or ends with
 * one), on one line: every CommonMark line ending (\n, \r\n and a lone \r) becomes a space, since one would end a
 * table row inside the span and two a paragraph, and the rest of the text would be read as Markdown and HTML.
 */
export function codeSpan(text: string): string {
  const longest = Math.max(0, ...[...text.matchAll(/`+/g)].map((m) => m[0].length));
  const fence = '`'.repeat(longest + 1);
  const pad = text.startsWith('`') || text.endsWith('`') || text === '' ? ' ' : '';
  return `${fence}${pad}${text.replace(/\r\n?|\n/g, ' ')}${pad}${fence}`;
}

/** `text` as a fenced block that no line of it can close (a fence longer than any run of backticks in it). */
export function fencedBlock(text: string): string[] {
  const longest = Math.max(0, ...[...text.matchAll(/`+/g)].map((m) => m[0].length));
  const fence = '`'.repeat(Math.max(3, longest + 1));
  return [fence, ...text.split(/\r?\n/), fence];
}

const loss = (v: number): string => (Number.isFinite(v) ? v.toFixed(4) : String(v));

/** The rows of the results table: every validation when few, else a spread of them (the first and the last kept). */
function resultRows(history: TrainingSummary['history']): TrainingSummary['history'] {
  const validated = history.filter((h) => h.valLoss !== undefined);
  if (validated.length <= MAX_RESULT_ROWS) return validated;
  const picked = new Set<number>();
  for (let i = 0; i < MAX_RESULT_ROWS; i++) picked.add(Math.round((i * (validated.length - 1)) / (MAX_RESULT_ROWS - 1)));
  return [...picked].sort((a, b) => a - b).map((i) => validated[i]);
}

/** The section's markdown lines (starting with its heading). */
export function trainingCardLines(t: TrainingSummary): string[] {
  const lines: string[] = ['## Training', ''];
  // An export while paused is of a run that goes on: "stopped" said it had ended.
  const stopped = t.step < t.totalSteps ? ` (${t.paused ? 'exported while paused' : 'stopped'} at step ${t.step} of the ${t.totalSteps} planned)` : '';
  const rows = (n: number, what = ''): string => `${n} ${what}row${n === 1 ? '' : 's'}`;
  const v = t.validationRows;
  lines.push(
    `Trained with finetune (WebGPU) for ${t.step} optimizer step${t.step === 1 ? '' : 's'}${stopped}` +
      ` on ${codeSpan(t.trainName)}${t.trainRows === null ? '' : ` (${rows(t.trainRows, 'training ')})`}, ` +
      (v === 0
        ? 'without validation.'
        : t.validationName
          ? `validated on ${codeSpan(t.validationName)}${v === null ? '' : ` (${rows(v)})`}.`
          : `validated on ${v === null ? 'rows' : rows(v)} held out from it.`),
  );
  if (t.fromImported) lines.push('It started from an imported adapter, not from a fresh initialisation.');
  lines.push('', '### Hyperparameters', '', "Replicate's names (its trainer for mistral-7b-instruct-v0.2), then finetune's; * marks a value changed from the default.", '');
  lines.push('| name | value |', '| --- | --- |');
  for (const h of t.hyperparameters) lines.push(`| ${h.name}${h.isDefault ? '' : ' *'} | ${codeSpan(String(h.value)).replace(/\|/g, '\\|')} |`);
  const last = t.history.at(-1);
  const results = resultRows(t.history);
  const baseline = t.baseline;
  if (last || results.length > 0 || baseline) {
    lines.push('', '### Results', '');
    if (last) lines.push(`Training loss at step ${last.step}: ${loss(last.loss)} (as the run reported it).`);
    if (results.length > 0 || baseline) {
      const all = t.history.filter((h) => h.valLoss !== undefined).length;
      lines.push('', `Validation loss${all > results.length ? ` (${results.length} of the ${all} validations)` : ''}:`, '', '| step | training loss | validation loss |', '| --- | --- | --- |');
      // The untrained adapter's, before any step: what the rows below are read against.
      if (baseline) lines.push(`| 0 (before training) | — | ${loss(baseline.valLoss)} |`);
      for (const r of results) lines.push(`| ${r.step} | ${loss(r.loss)} | ${loss(r.valLoss as number)} |`);
    }
  }
  const sampled = [...t.history].reverse().find((h) => h.sample !== undefined);
  if (t.validationPrompt !== null && (sampled || baseline?.sample !== undefined)) {
    lines.push('', '### Sample', '');
    if (sampled) lines.push(`The adapter's greedy continuation of the validation prompt after step ${sampled.step}:`, '', ...fencedBlock(t.validationPrompt + (sampled.sample ?? '')));
    if (baseline?.sample !== undefined) {
      if (sampled) lines.push('');
      lines.push('Before training (the base model with the untrained adapter):', '', ...fencedBlock(t.validationPrompt + baseline.sample));
    }
  }
  return lines;
}

/** The section for an adapter a Replicate training made (src/remote/provenance.ts builds what it says). */
export function remoteTrainingCardLines(r: RemoteTrainingSummary): string[] {
  const by = r.trainer ? ` by ${codeSpan(r.trainer)}${r.version ? ` (version ${codeSpan(r.version)})` : ''}` : r.version ? ` by trainer version ${codeSpan(r.version)}` : '';
  const ran = r.seconds !== null ? `, which ran ${Math.round(r.seconds)} s` : '';
  const done = r.completedAt ? ` and finished ${codeSpan(r.completedAt)}` : '';
  const lines = ['## Training', '', `Trained on Replicate${by} as training ${codeSpan(r.id)}${ran}${done}; these files are its output, read back by finetune.`];
  if (r.inputs.length > 0) {
    lines.push('', '### Inputs', '', "The training's inputs in the trainer's names (the data files went as URLs, not written here); * marks a value other than the default, and an input not sent is listed at its default.", '');
    lines.push('| name | value |', '| --- | --- |');
    for (const i of r.inputs) lines.push(`| ${codeSpan(i.name).replace(/\|/g, '\\|')}${i.isDefault ? '' : ' *'} | ${codeSpan(String(i.value)).replace(/\|/g, '\\|')} |`);
  }
  return lines;
}

/**
 * The "Training" section of an adapter's README (from its `## Training` heading to the next heading of level 1 or 2
 * outside a code fence, or the end), so that an adapter exported again (renamed, converted, loaded into the page)
 * keeps its model card; null when it has none. A section the person added after it (a licence, a citation) stays out:
 * the new README would otherwise carry it inside its Training section. A `## ` line inside a fence (a sample of model
 * output) is text, not a heading.
 */
export function trainingSectionOf(readme: string | undefined | null): string | null {
  if (!readme) return null;
  const at = /^## Training[ \t]*$/m.exec(readme);
  if (!at) return null;
  const lines = readme.slice(at.index).split('\n');
  let end = lines.length;
  let fence: string | null = null;
  for (let i = 1; i < lines.length; i++) {
    const line = lines[i];
    // CommonMark: a fence is 3+ backticks or tildes; it closes with a run of the same character at least as long.
    const run = /^ {0,3}(`{3,}|~{3,})/.exec(line)?.[1];
    if (fence === null) {
      if (run) fence = run;
      else if (/^#{1,2}[ \t]/.test(line) || /^#{1,2}$/.test(line)) {
        end = i;
        break;
      }
    } else if (run && run[0] === fence[0] && run.length >= fence.length && line.trim() === run) {
      fence = null;
    }
  }
  const section = lines.slice(0, end).join('\n').replace(/\s+$/, '');
  return section === '' ? null : section;
}

/**
 * What an imported adapter's README will say of its training: the Replicate training whose output it is, else the
 * Training section of the README it came with, else nothing.
 */
export function importedTrainingCard(readme: string | undefined | null, remote: RemoteTrainingSummary | null = null): TrainingCard | null {
  if (remote) return { kind: 'remote', training: remote };
  const section = trainingSectionOf(readme);
  return section ? { kind: 'carried', section } : null;
}
