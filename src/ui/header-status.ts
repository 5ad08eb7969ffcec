// The header's chip: where things stand in a few words, and where a click takes you. Pure (the run's state and what
// the page knows in, text out), so that every phase is unit-tested (test/unit/ui/header-status.test.ts).

import { passPlace } from '../core/run-words.ts';
import { formatCounted, formatPercent } from '../core/units.ts';
import { formatCount, formatDuration } from './format.ts';
import { stoppedResumable, type RunState } from './run-state.ts';

export interface HeaderStatus {
  text: string;
  /** The chip's colour (style.css `.top .jump[data-state]`). */
  state: 'busy' | 'paused' | 'done' | 'stopped' | 'error' | 'waiting' | 'ready';
  href: string;
}

export interface HeaderContext {
  /** A usable WebGPU adapter was found. */
  gpuOk: boolean;
  /** Why Train cannot start yet (notReadyReason), or null. */
  notReady: string | null;
  /** The steps the form's plan makes, or null while it is being made. */
  planSteps: number | null;
  /** Another tab of this page is training the run saved in this browser: this one cannot train until it ends. */
  elsewhere?: boolean;
  /** An unfinished run saved in this browser, offered for resuming in the training panel (after a reload, say). */
  savedRun?: { step: number; totalSteps: number } | null;
}

const steps = (n: number): string => formatCounted(n, 'step');

/** " · 12:34 left" while the run's estimate says time is left, else ''. */
function timeLeftSuffix(r: RunState): string {
  const eta = r.readouts?.etaSeconds;
  return eta !== null && eta !== undefined && eta > 0 && Number.isFinite(eta) ? ` · ${formatDuration(eta)} left` : '';
}

export function headerStatus(r: RunState, c: HeaderContext): HeaderStatus {
  const training = '#panel-training';
  const of = `${formatCount(r.step)} / ${r.totalSteps ? formatCount(r.totalSteps) : '…'}`;
  if (!c.gpuOk) return { text: 'No usable GPU: see the GPU panel', state: 'waiting', href: '#gpu' };
  switch (r.phase) {
    case 'validating':
      // Step 0: the pass before the first step (eval_on_start).
      if (r.validating) return { text: `Validating · ${passPlace(r.validating.step, `step ${formatCount(r.validating.step)}`)} · ${r.validating.done} / ${r.validating.passes}`, state: 'busy', href: training };
      return { text: `Training · step ${of}`, state: 'busy', href: training };
    case 'running':
      // The time left too: the chip is what shows from the other panels of a long page.
      return { text: `Training · step ${of}${timeLeftSuffix(r)}`, state: 'busy', href: training };
    case 'starting':
      return { text: `Training · step ${of}`, state: 'busy', href: training };
    case 'stopping':
      return { text: `Stopping · step ${of}`, state: 'busy', href: training };
    case 'pausing':
      return { text: `Pausing · step ${of}`, state: 'busy', href: training };
    case 'paused':
      return { text: `Paused · step ${of}`, state: 'paused', href: training };
    // Still held: the run goes on once the export (or other reading of its adapter) under way ends.
    case 'resuming':
      return { text: `Resuming · step ${of}`, state: 'paused', href: training };
    case 'done':
      return { text: `Finished · ${steps(r.step)} · export ↓`, state: 'done', href: '#panel-export' };
    // A stopped or failed run is still the news: its checkpoint can be resumed, or its error read, in the panel.
    case 'stopped':
      return { text: `Stopped at step ${of}${stoppedResumable(r) ? ' · resume ↓' : ''}`, state: 'stopped', href: training };
    case 'error':
      return { text: `Training failed at step ${of} · see why ↓`, state: 'error', href: training };
    case 'idle':
      if (c.elsewhere) return { text: 'Training in another tab ↓', state: 'waiting', href: training };
      // After a reload the saved run is the news (the chip said "Ready to train", and Train starts a new run over it).
      if (c.savedRun) return { text: `Saved run at step ${formatCount(c.savedRun.step)} / ${formatCount(c.savedRun.totalSteps)} · resume ↓`, state: 'stopped', href: training };
      if (c.notReady) return { text: c.notReady, state: 'waiting', href: training };
      return { text: c.planSteps === null ? 'Ready to train ↓' : `Ready to train · ${steps(c.planSteps)} ↓`, state: 'ready', href: training };
  }
}

/**
 * The tab's title while a run is under way or has news: a long run is watched from another tab, where the title is all
 * that shows (the percentage first, since a tab strip cuts titles short), ending in the app's name. `idleTitle` (the
 * page's own title) when there is no run to speak of.
 */
export function documentTitle(r: RunState, idleTitle: string): string {
  const app = 'finetune';
  // As the panel's step readout writes it (it said 13 % where the title said 12% at step 1 of 8).
  const pct = r.totalSteps ? formatPercent(r.step / r.totalSteps) : null;
  const left = timeLeftSuffix(r);
  const of = `step ${formatCount(r.step)}${r.totalSteps ? ` / ${formatCount(r.totalSteps)}` : ''}`;
  switch (r.phase) {
    case 'starting':
      return `Starting · ${app}`;
    case 'running':
    case 'validating':
    case 'pausing':
      return `${pct ?? of}${left} · ${pct ? `${of} · ` : ''}${app}`;
    case 'stopping':
      return `Stopping at ${pct ?? of} · ${app}`;
    case 'paused':
      return `Paused at ${pct ?? of} · ${app}`;
    case 'resuming':
      return `Resuming at ${pct ?? of} · ${app}`;
    case 'done':
      return `Finished · ${steps(r.step)} · ${app}`;
    case 'stopped':
      return `Stopped at ${of} · ${app}`;
    case 'error':
      return `Training failed · ${app}`;
    case 'idle':
      return idleTitle;
  }
}
