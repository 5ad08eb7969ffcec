// A training run's progress for a person at the terminal, on stderr: the JSON lines on stdout are for programs, and a
// run of hours showed a person nothing but them. A step line at most every 2 s (and always the first and the last),
// a validation pass's progress as often as its JSON line, each validation loss, checkpoint, skipped step and sample.

import { passPlace, validationLossWords } from '../core/run-words.ts';
import { formatCount, formatCounted, formatPercent } from '../core/units.ts';
import type { TrainEvent } from '../run/session.ts';
import type { TrainResult } from '../run/trainer.ts';
import { LOAD_PROGRESS_EVERY_MS, timeLeft } from './load-progress.ts';
import { quote } from '../core/quote.ts';

/** Longest sample text printed (the whole one is in the JSON line). */
const SAMPLE_CHARS = 200;

const loss = (x: number): string => (Number.isFinite(x) ? x.toFixed(4) : String(x));

/** User text (a prompt, a generated sample) as a JSON string: a control character in it cannot move the cursor. */
function quoted(text: string, max = SAMPLE_CHARS): string {
  const chars = [...text];
  return quote(chars.length > max ? `${chars.slice(0, max).join('')}…` : text);
}

/** The line a person reads for an event, or null for those that say nothing new to them. */
export function trainEventLine(e: TrainEvent): string | null {
  switch (e.type) {
    case 'plan': {
      // What the run will do before its first step: the page's plan facts, in one line.
      const s = e.stats;
      const held = s.validationExamples > 0 ? `, ${formatCounted(s.validationExamples, 'row')} to validate on` : '';
      const padding = s.paddingFractionPadded > s.paddingFraction ? `${formatPercent(s.paddingFraction)} padding (${formatPercent(s.paddingFractionPadded)} without padding_free)` : `${formatPercent(s.paddingFraction)} padding`;
      const resumed = e.resumedAt > 0 ? ` · resuming after step ${formatCount(e.resumedAt)}` : '';
      return `plan: ${formatCounted(s.totalSteps, 'step')} over ${formatCounted(s.epochs, 'epoch')} of ${formatCounted(s.trainExamples, 'row')}${held} · batch ${s.trainBatchSize} = ${s.microBatchSize} × ${s.gradientAccumulationSteps} · ${formatCounted(s.tokensPerEpoch, 'token')} an epoch, ${padding}${resumed}`;
    }
    case 'step': {
      const parts = [`step ${formatCount(e.step)} / ${formatCount(e.totalSteps)} (epoch ${e.epoch + 1})`, `loss ${loss(e.loss)}`, `lr ${e.lr === 0 ? '0' : e.lr.toExponential(2)}`, `grad norm ${e.gradNorm.toPrecision(3)}`, `${e.tokensPerSecond.toFixed(1)} tokens/s`];
      if (e.step < e.totalSteps && Number.isFinite(e.etaSeconds)) parts.push(`${timeLeft(e.etaSeconds)} left`);
      return parts.join(' · ');
    }
    case 'validating':
      return `validating ${passPlace(e.step, `after step ${formatCount(e.step)}`)}: ${e.done} / ${formatCounted(e.passes, 'pass', 'passes')}${e.etaSeconds !== null && e.done < e.passes ? ` · ${timeLeft(e.etaSeconds)} left` : ''}`;
    case 'eval':
      return `${passPlace(e.step, `step ${formatCount(e.step)}`)}: validation loss ${loss(e.valLoss)} (${formatCount(e.valTokens)} tokens, ${timeLeft(e.seconds)})`;
    case 'checkpoint':
      return `checkpoint saved at step ${formatCount(e.step)}`;
    case 'skipped':
      return `step ${formatCount(e.step)} skipped: ${e.reason}${e.consecutive > 1 ? ` (${e.consecutive} in a row)` : ''}; its update was not applied`;
    case 'sample':
      return `sample ${passPlace(e.step, `at step ${formatCount(e.step)}`)}: ${quoted(e.prompt)} → ${quoted(e.text)}`;
    case 'paused':
      return `paused at step ${formatCount(e.step)}`;
    // A fact about the run (its numbers change from here, the model's files changed): it went to stdout alone, as JSON.
    case 'status':
      return e.note ? `note: ${e.text}` : null;
    default:
      return null;
  }
}

/**
 * An onEvent that prints through `print`: every event's line, but step lines at most every `everyMs` (the first and
 * the last step always), so a fast run on a small model does not flood the terminal.
 */
export function trainProgressPrinter(print: (line: string) => void, o: { now?: () => number; everyMs?: number } = {}): (e: TrainEvent) => void {
  const now = o.now ?? (() => performance.now());
  const every = o.everyMs ?? LOAD_PROGRESS_EVERY_MS;
  // -Infinity: the first step line is always due.
  let lastStep = -Infinity;
  return (e) => {
    if (e.type === 'step') {
      const t = now();
      if (e.step < e.totalSteps && t - lastStep < every) return;
      lastStep = t;
    }
    const line = trainEventLine(e);
    if (line !== null) print(line);
  };
}

/** The run's last line: how far it went, its losses, and where the adapter is. */
export function trainDoneLine(r: TrainResult, adapterDir: string | null): string {
  const what = `${r.stopped ? 'stopped after' : 'finished'} ${formatCounted(r.steps, 'step')}`;
  const parts = [`${what} in ${timeLeft(r.seconds)}`];
  if (r.finalLoss !== null && r.finalLoss !== undefined) parts.push(`loss ${loss(r.finalLoss)}`);
  const validation = validationLossWords(r.finalValLoss, r.baselineValLoss, loss);
  if (validation) parts.push(validation);
  if (r.skipped > 0) parts.push(`${formatCount(r.skipped)} skipped`);
  parts.push(adapterDir === null ? 'no adapter written' : `adapter in ${quote(adapterDir)}`);
  return parts.join(' · ');
}
