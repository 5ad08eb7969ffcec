// The training panel: a view of the run (run-state.ts) — the plan, the time it will take here, Train / Pause / Stop /
// Resume, live readouts, the loss chart, the validation prompt's sample and the run saved in this browser. Every
// change of phase goes through the run controller (run-controller.ts) and the reducer; this file only renders.

import { passPlace } from '../core/run-words.ts';
import { browserNotifierEnv, notifyControl } from './run-notifier.ts';
import type { DataStats, ExpectedForget, RunEstimate, SavedRun } from '../worker/api.ts';
import { h, replaceChildren } from './dom.ts';
import { estimateFailureView } from './estimate-view.ts';
import { lrChartView, markLrStep } from './lr-chart.ts';
import { errorParts, formatCount, formatDateTime, formatDuration, formatLoss, formatPercent, formatRate, formatSci, quantizationLabel, roughDuration, validationLossWords } from './format.ts';
import { visibleText } from '../core/quote.ts';
import { isFinetuneError } from '../core/errors.ts';
import { formatCounted } from '../core/units.ts';
import { isQuickPreset } from './hyperparams-panel.ts';
import { LossChart } from './loss-chart.ts';
import { FORGET_ELSEWHERE_TEXT, isRunElsewhere, runController, type ReplaceOffer, type RunControllerHooks } from './run-controller.ts';
import { forgetDamagedQuestion, forgetQuestion, forgetWithdrawnText, savedRunActions, type OfferedCheckpoint } from './saved-run-offer.ts';
import { afterStepText, deviceLostText, etaText, runLostDevice, stopLeft, stoppedResumable, validatingText, type RunPhase, type RunSample, type RunState } from './run-state.ts';
import { sampleListView } from './sample-list.ts';
import { runBusy, wantedQuantization, type Shared } from './state.ts';

/**
 * An estimate above this on a software adapter offers the quick preset: the demo preset takes 3–8 minutes on
 * Chromium's SwiftShader with padding-free batches (estimated 6–9 min padded on 2026-12-02, by machine and load; about
 * 3 min padding-free on 2026-12-04), longer than a first look should, and the quick preset about a minute. Well under
 * the demo preset's, so that a faster CPU still gets the offer (at 5 min a CI run's estimate once came in under it,
 * and padding-free batches brought the estimate down to 3 min, where this stood).
 */
const SLOW_RUN_SECONDS = 2 * 60;

/** Why Train is not possible right now (what the user can fix first), or null when it is. */
export function notReadyReason(shared: Shared): string | null {
  const m = shared.model.value;
  const form = shared.form.value;
  const d = shared.data.value;
  const plan = shared.plan.value;
  if (!form.hp) return 'Fix the hyperparameters marked in red.';
  if (!d.train) return 'Choose a training file (Dataset panel).';
  if (d.train.status === 'error') return 'The training file could not be read: see the Dataset panel.';
  if (d.train.report && !d.train.report.ok) {
    const n = d.train.report.summary.errors;
    return `The training file has ${n === 1 ? 'an error' : `${n.toLocaleString('en-US')} errors`}: see the Dataset panel.`;
  }
  if (d.validation?.status === 'error' || (d.validation?.report && !d.validation.report.ok)) return 'The validation file has errors: see the Dataset panel.';
  if (plan.status === 'error') return 'The run cannot be planned: see the message above.';
  if (m.status === 'loading') return 'The model is loading…';
  if (m.status !== 'ready' || !m.info) return 'Load a model first (Model panel).';
  const q = wantedQuantization(form);
  if (q && m.info.quantization !== q) {
    // The demo model follows the run's quantization by itself (main.ts followQuantization): asking for a load the
    // page is about to make flashed "Load it again" in the header.
    if (m.choice?.kind === 'demo' && !m.failure) return `The demo model is being reloaded as ${q}…`;
    return `The model is loaded as ${m.info.quantization}; this run needs ${q}. Load it again.`;
  }
  if (d.train.status === 'inspecting' || d.validation?.status === 'inspecting') return 'Reading the dataset…';
  if (plan.status !== 'ready') return 'Planning the run…';
  // Last: what else needs fixing is worth saying while the other tab trains. Train stayed enabled here and its click
  // did nothing visible.
  if (shared.runElsewhere.value) return 'A run is training in another tab of this page: this tab can train once it ends or its tab is closed.';
  return null;
}

/**
 * "30 (10 per epoch)"; a run that max_steps ends early says so: "5 (10 per epoch; max_steps ends it)". The plan's
 * stepsPerEpoch is the first epoch as the run trains it, already cut, which read "5 (5 per epoch)".
 */
export function stepsText(s: Pick<DataStats, 'totalSteps' | 'sequencesPerEpoch' | 'trainBatchSize' | 'stepsByEpoch'>): string {
  const perEpoch = Math.ceil(s.sequencesPerEpoch / s.trainBatchSize);
  const cut = (s.stepsByEpoch.at(-1) ?? perEpoch) < perEpoch;
  return `${formatCount(s.totalSteps)} (${formatCount(perEpoch)} per epoch${cut ? '; max_steps ends it' : ''})`;
}

/** "8 % (26 % without padding_free)": the padding left, and beside it what padding every row to its micro-batch's longest would be. */
export function paddingText(s: Pick<DataStats, 'paddingFraction' | 'paddingFractionPadded'>): string {
  const left = formatPercent(s.paddingFraction);
  return s.paddingFractionPadded > s.paddingFraction ? `${left} (${formatPercent(s.paddingFractionPadded)} without padding_free)` : left;
}

export function planView(s: DataStats): HTMLElement {
  const items: [string, string][] = [
    ['training rows', formatCount(s.trainExamples)],
    ['validation rows', formatCount(s.validationExamples)],
    ['epochs', formatCount(s.epochs)],
    ['steps', stepsText(s)],
    ['batch', `${s.trainBatchSize} = ${s.microBatchSize} × ${s.gradientAccumulationSteps}`],
    ['tokens per epoch', formatCount(s.tokensPerEpoch)],
    ['longest sequence', formatCounted(s.longestSequence, 'token')],
    ['padding', paddingText(s)],
  ];
  const titles: Record<string, string> = {
    batch: 'train_batch_size = micro_batch_size × gradient accumulation steps',
    padding: s.paddingFree
      ? "Tokens computed for nothing, after padding_free laid each micro-batch's rows end to end"
      : "Tokens computed for nothing: each micro-batch's rows padded to its longest (padding_free lays them end to end)",
  };
  const facts = h('dl', { class: 'plan-facts', 'data-testid': 'plan-facts' }, ...items.flatMap(([k, v]) => [h('div', { title: titles[k] }, h('dt', {}, k), h('dd', { class: 'num' }, v))]));
  // What the plan decided on its own (e.g. a validation share of a small file), and how to choose otherwise.
  const notices = (s.notices ?? []).map((n) => h('p', { class: 'hint warn', 'data-testid': 'plan-notice' }, n));
  const lr = s.learningRates ? lrChartView(s.learningRates, 'plan-lr') : null;
  return notices.length || lr ? h('div', {}, facts, ...notices, lr) : facts;
}

/** " and 26 % padding": the padded tokens are computed (and priced) but not counted in tokens/s. */
function paddingClause(e: RunEstimate): string {
  const extra = e.paddedTokens - e.trainTokens;
  return extra > 0 ? ` and ${formatPercent(extra / e.paddedTokens)} padding` : '';
}

/** The estimate's validation passes: how many, and (when there are any) how long they take together. */
export function validationClause(e: Pick<RunEstimate, 'evaluations' | 'validationSeconds'>): string {
  const passes = `${formatCount(e.evaluations)} validation pass${e.evaluations === 1 ? '' : 'es'}`;
  return e.evaluations > 0 ? `${passes}, ${roughDuration(e.validationSeconds)}${e.evaluations > 1 ? ' in all' : ''}` : passes;
}

/** The estimate's validation_prompt samples: how many and how long together; '' when the run writes none. */
export function sampleClause(e: Pick<RunEstimate, 'samples' | 'sampleSeconds'>): string {
  if (e.samples === 0) return '';
  return `, ${formatCount(e.samples)} sample${e.samples === 1 ? '' : 's'} of the validation prompt, ${roughDuration(e.sampleSeconds)}${e.samples > 1 ? ' in all' : ''}`;
}

/** How long a re-estimate may take before the last estimate gives way to "Measuring…". */
const ESTIMATE_PENDING_AFTER_MS = 500;

/** How often a tab that sees a run in another tab looks whether it has ended. */
const ELSEWHERE_POLL_MS = 3000;

/**
 * A saved run in one line: its files, model, step and when it was saved. The names (the record's) with visibleText's
 * escapes: a bidirectional control in one would reorder the line.
 */
export function savedSummary(run: SavedRun): string {
  const when = new Date(run.savedAt);
  return `${visibleText(`${run.trainName}${run.validationName ? ` + ${run.validationName}` : ''}`)} · ${visibleText(run.modelSource)} (${quantizationLabel(run.quantization)}) · step ${run.step} / ${run.totalSteps} · saved ${Number.isNaN(when.getTime()) ? run.savedAt : formatDateTime(when.getTime())}`;
}

function readout(label: string, testid: string): { el: HTMLElement; value: HTMLElement; sub: HTMLElement } {
  const value = h('span', { class: 'value num', 'data-testid': testid }, '—');
  const sub = h('span', { class: 'sub num', 'data-testid': `${testid}-sub` });
  return { el: h('div', { class: 'readout' }, h('span', { class: 'label' }, label), value, sub), value, sub };
}

const PHASE_TEXT: Record<RunPhase, string> = {
  idle: 'Ready when you are.',
  starting: 'Preparing the data and the adapter…',
  running: 'Training…',
  validating: 'Validating…',
  pausing: 'Pausing after the current step…',
  paused: 'Paused. Resume continues; export works while paused.',
  resuming: 'Resuming once the export (or other reading of the adapter) under way has finished…',
  stopping: 'Stopping after the current step…',
  done: 'Training finished.',
  stopped: 'Stopped. Resume continues from the last step.',
  error: 'Training failed.',
};

/** The line beside the buttons: the phase, and during a validation pass which one and how far it has come. */
export function phaseLine(run: RunState, why: string | null | undefined): string {
  if (run.phase === 'idle' && why) return 'Not ready yet.';
  const v = run.validating;
  if (run.phase === 'validating' && v) return validatingText(v);
  if (run.phase === 'paused' && v) return `Paused in the validation after step ${v.step} (${v.done} / ${formatCounted(v.passes, 'pass', 'passes')}). Resume continues it; export works while paused.`;
  if (run.phase === 'pausing' && v) return `Pausing in the validation after step ${v.step}, after its forward pass under way…`;
  if (run.phase === 'stopping' && v) return `Stopping: the validation after step ${v.step} is left unfinished…`;
  // Once paused, the step it paused after ("after the current step" was said of a step long done).
  if (run.phase === 'paused') return `Paused ${run.step === 0 ? 'before the first step' : `after step ${run.step}`}. Resume continues; export works while paused.`;
  // Resume asked: the worker lets the run go once what reads its adapter has ended (an export takes seconds).
  if (run.phase === 'resuming') return `Resuming ${v ? 'the validation ' : ''}after step ${v?.step ?? run.step} once the export (or other reading of the adapter) under way has finished…`;
  // Stopped with nothing saved, or after the last step: no Resume to speak of.
  if (run.phase === 'stopped' && stopLeft(run) === 'nothing') return 'Stopped. Nothing was saved: Train again starts the run.';
  if (run.phase === 'stopped' && stopLeft(run) === 'trained') return 'Stopped after the last step: the adapter is trained.';
  return PHASE_TEXT[run.phase];
}

/**
 * What the time estimate is of: the run about to start (or going), or, once a run has ended, the next one Train would
 * start ("This run should take about 5 s" once stood beside a run shown as finished).
 */
export function estimateSubject(phase: RunPhase): string {
  return phase === 'done' || phase === 'stopped' || phase === 'error' ? 'A new run of these settings' : 'This run';
}

export interface TrainingPanelHooks extends RunControllerHooks {
  /** Puts the quick preset into the form. */
  applyQuickPreset(): void;
}

/** Asked before a new run replaces the saved one; its file's name with visibleText's escapes, as in savedSummary. */
export function replacesSavedText(existing: Pick<SavedRun, 'trainName' | 'step' | 'totalSteps'>): string {
  return `A new run replaces the run saved in this browser (${visibleText(existing.trainName)}, step ${existing.step} of ${existing.totalSteps}); its checkpoint is kept until the new run saves its first one.`;
}

/** What a look at the store found for the saved-run box: the run saved, one that cannot be read, or another tab's run. */
type LookedUp = { kind: 'saved'; run: SavedRun } | { kind: 'damaged'; problem: string } | { kind: 'elsewhere'; run: SavedRun | null };

/** What the saved-run box holds: a run (saved or unreadable) with its buttons, another tab's run, or its note alone. */
type BoxHolds = 'run' | 'elsewhere' | 'note';

export function trainingPanel(shared: Shared, hooks: TrainingPanelHooks): HTMLElement {
  // A resume refused because the store no longer holds the checkpoint offered shows what it holds now instead; a new run
  // refused because the store no longer holds the run Train named (or now holds one) asks again about that one; either,
  // refused because another tab holds the saved run (the confirm box's buttons included), shows that tab's run; a resume
  // refused because the saved run cannot be read (or not resumed as it is) offers to forget it.
  const control = runController(shared, {
    ...hooks,
    offerSaved: (run) => offerNow(run),
    offerReplace: (offer) => askAgain(offer),
    offerElsewhere: (run) => showElsewhere(run),
    offerDamaged: (problem, why, record) => showDamaged(problem, why, record),
  });
  const chart = new LossChart(340);
  const startButton = h('button', { type: 'button', 'data-testid': 'train-start', class: 'primary' }, 'Train');
  const pauseButton = h('button', { type: 'button', 'data-testid': 'train-pause', class: 'secondary', disabled: true }, 'Pause');
  const stopButton = h('button', { type: 'button', 'data-testid': 'train-stop', class: 'secondary danger', disabled: true }, 'Stop');
  const resumeHere = h('button', { type: 'button', 'data-testid': 'train-resume-here', class: 'secondary', hidden: true }, 'Resume');
  const recoverButton = h('button', { type: 'button', 'data-testid': 'train-recover', class: 'secondary', hidden: true }, 'Get the GPU back and resume');
  const confirmBox = h('div', { class: 'confirm', 'data-testid': 'train-confirm', hidden: true, role: 'alertdialog', 'aria-live': 'polite' });
  const reason = h('p', { class: 'hint', 'data-testid': 'train-reason' });
  const estimateBox = h('div', { class: 'estimate', 'data-testid': 'train-estimate-box' });
  const planBox = h('div', { class: 'plan', 'data-testid': 'plan' });
  const bar = h('progress', { max: 1, value: 0, 'data-testid': 'train-progress', 'aria-label': 'training progress' });
  const phaseText = h('p', { class: 'status', 'data-testid': 'train-status', role: 'status' }, PHASE_TEXT.idle);
  const note = h('p', { class: 'hint event', 'data-testid': 'train-event' });
  const kernelsLine = h('p', { class: 'hint', 'data-testid': 'train-kernels', hidden: true });
  const result = h('div', { 'data-testid': 'train-result' });
  const sample = h('div', { class: 'sample', 'data-testid': 'sample', hidden: true });
  let shownSamples: readonly RunSample[] | null = null;
  const saved = h('div', { class: 'saved-run', 'data-testid': 'saved-run', hidden: true });

  const r = {
    step: readout('step', 'step-counter'),
    loss: readout('train loss', 'train-loss'),
    val: readout('validation loss', 'val-loss'),
    rate: readout('tokens / s', 'tokens-per-second'),
    eta: readout('ETA', 'eta'),
    lr: readout('learning rate', 'lr'),
    grad: readout('grad norm', 'grad-norm'),
    epoch: readout('epoch', 'epoch'),
  };

  // ---- actions ----------------------------------------------------------------------------------------------------
  /** Starts a new run over `replaces`, the run saved here as the person was told of it (null: none was saved). */
  const startNow = (replaces: SavedRun | null): void => {
    confirmBox.hidden = true;
    hideBox();
    control.start(replaces);
  };
  startButton.addEventListener('click', async () => {
    if (notReadyReason(shared) || runBusy(shared.run.value.phase)) return;
    acting();
    // A new run replaces the one saved in this browser: say which, and let the person keep it. The worker may be busy
    // for a moment (measuring the time estimate), so the click is acknowledged at once.
    startButton.disabled = true;
    note.textContent = 'Checking the run saved in this browser…';
    const [elsewhere, existing] = await Promise.all([control.runElsewhere(), control.savedRun()]).finally(() => {
      startButton.disabled = false;
      note.textContent = shared.run.value.note;
    });
    // The worker would refuse it too; saying so here keeps the click from reading as a failed run.
    if (elsewhere) return showElsewhere(existing);
    if (!existing) {
      // A saved run that cannot be read is not "no run": offered to be forgotten, never replaced without a word.
      const problem = await control.savedRunProblem();
      // "None saved" goes to the worker too: a run another tab saves meanwhile is refused there, not replaced.
      return problem ? showDamaged(problem) : startNow(null);
    }
    askToReplace(existing);
  });
  /**
   * Asks before a new run replaces `existing`, the run saved in this browser, naming it; `why` says why it is asked again
   * (the worker refused a start the person had agreed to, the store holding another run by then). The worker is told
   * which run the person agreed to lose, and refuses the start if another tab saved over it meanwhile.
   */
  const askToReplace = (existing: SavedRun, why?: string): void => {
    const replace = h('button', { type: 'button', class: 'danger', 'data-testid': 'train-confirm-replace' }, 'Replace it and train');
    const keep = h('button', { type: 'button', class: 'secondary', 'data-testid': 'train-cancel-replace', 'data-escape': true }, 'Keep it');
    replace.addEventListener('click', () => startNow(existing));
    keep.addEventListener('click', () => {
      confirmBox.hidden = true;
      // Back on the button that asked: the box's going left the focus on the page's body.
      startButton.focus();
    });
    replaceChildren(
      confirmBox,
      ...(why ? [h('p', { class: 'warn', 'data-testid': 'train-confirm-why' }, why)] : []),
      h('p', {}, replacesSavedText(existing)),
      h('div', { class: 'actions' }, replace, keep),
    );
    confirmBox.hidden = false;
    // The safe answer has the focus, as the other questions give it: an Enter pressed on loses no run.
    keep.focus();
  };
  /**
   * A new run the worker refused: the run saved now is asked about as Train asks (or offered to be forgotten when it
   * cannot be read), with why nothing started. When nothing is saved any more, the box says so and offers the start
   * again: the person agreed to lose a run that is gone, which is not agreeing to lose whatever comes next.
   */
  const askAgain = ({ now, problem, why }: ReplaceOffer): void => {
    if (now) return askToReplace(now, why);
    if (problem) return showDamaged(problem, why);
    const train = h('button', { type: 'button', 'data-testid': 'train-confirm-start' }, 'Train');
    const cancel = h('button', { type: 'button', class: 'secondary', 'data-testid': 'train-cancel-replace', 'data-escape': true }, 'Cancel');
    train.addEventListener('click', () => startNow(null));
    cancel.addEventListener('click', () => {
      confirmBox.hidden = true;
      startButton.focus();
    });
    replaceChildren(confirmBox, h('p', { class: 'warn', 'data-testid': 'train-confirm-why' }, why), h('div', { class: 'actions' }, train, cancel));
    confirmBox.hidden = false;
    train.focus();
  };
  // While pausing, the button already says Resume: a second click takes the pause back before it took effect.
  pauseButton.addEventListener('click', () => (shared.run.value.phase === 'paused' || shared.run.value.phase === 'pausing' ? control.unpause() : control.pause()));
  // Stop disables itself (and every run button until the run has stopped): the focus waits for the run to end, then
  // goes to what comes next (Resume, or Train again), not to the page's body.
  let focusAfterStop = false;
  stopButton.addEventListener('click', () => {
    focusAfterStop = document.activeElement === stopButton;
    control.stop();
  });
  resumeHere.addEventListener('click', async () => {
    acting();
    resumeHere.disabled = true;
    // Another tab may have resumed this run since it stopped here: that tab's run is shown, and looked at again until it
    // ends (the controller would refuse the resume too). Once it has ended, its later checkpoint (or another run it
    // saved) is not this button's step: the controller refuses it and offers it in the saved-run box instead.
    if (!(await shownElsewhere())) await control.resumeCheckpoint((text) => (note.textContent = text));
    resumeHere.disabled = false;
  });

  recoverButton.addEventListener('click', async () => {
    acting();
    recoverButton.disabled = true;
    await control.recoverAndResume((text) => (note.textContent = text));
    recoverButton.disabled = false;
  });

  // ---- the run saved in this browser ---------------------------------------------------------------------------
  // The box's note outlives the box: a Resume refused from it rebuilds the box for the run saved now (or for the run
  // another tab holds, or one that cannot be read), then says why.
  const savedNote = h('p', { class: 'hint', 'data-testid': 'saved-run-note' });
  /**
   * What the note says in answer to the person's own action in the box (what came of a Resume, Restore or Forget), or
   * null. It stays until their next action: a look at the store they did not ask for (when the page opened, after a
   * Resume refused because its run was gone) may end after it was said, and used to rebuild the box with its own
   * words in the note, so that the answer vanished before it could be read.
   */
  let answer: string | null = null;
  const sayAnswer = (text: string): void => {
    savedNote.textContent = text;
    answer = text;
  };
  /**
   * How many times the person has acted in the panel (Train, Resume, Restore, Forget, …). A look at the store they did
   * not ask for notes it when it begins (lookBegins) and is not shown if they acted since: their action read the store
   * later, and a slow look ending after it showed the run as it was before (Resume and Forget for a run another tab had
   * replaced while Train asked about replacing the new one).
   */
  let actionsTaken = 0;
  /** The person acts: what the box said in answer to their last action gives way to what this one brings. */
  const acting = (): void => {
    answer = null;
    actionsTaken++;
  };
  /** Marks where a look the person did not ask for begins: showLookedUp shows its finding only if they have not acted since. */
  const lookBegins = (): number => actionsTaken;
  /** What the box holds while shown (showBox). */
  let holds: BoxHolds = 'note';
  /**
   * Shows the box for what a look at the store the person did not ask for found (when the page opened, after a refused
   * Resume, when another tab's run ended), unless the person acted after it began (`begun`: lookBegins): their action
   * read the store later. Each of today's looks begins with the box hidden or showing only its note (a whole browser
   * tier run, 2026-12-06, saw no other), and the box it builds keeps the answer said to the person in its note. Should a
   * look ever end over a whole box (a run, its buttons and perhaps the "Forget it?" the person is reading), that box
   * stays: rebuilding it would take the question away without a word, and every button in it names what it shows, so
   * the worker refuses it, saying what the store holds now, if another tab changed the store since.
   */
  const showLookedUp = (found: LookedUp, begun: number): void => {
    if (begun !== actionsTaken) return;
    if (!saved.hidden && holds !== 'note') return;
    if (found.kind === 'elsewhere') showElsewhere(found.run);
    else if (found.kind === 'saved') showSaved(found.run);
    else showDamaged(found.problem);
    if (answer !== null) savedNote.textContent = answer;
  };
  /** Takes the box off the page, and with it any answer its note held: said to no one, it has nothing to keep. */
  const hideBox = (): void => {
    saved.hidden = true;
    answer = null;
    shared.savedRunOffered.set(null);
  };
  /**
   * Shows the box with `children` in it, holding `what`. Its marker, set or cleared here on every showing so that no
   * showing keeps a former one's ('elsewhere': another tab's run; showElsewhere reads it to tell a box newly shown from
   * one looked at again).
   */
  const showBox = (children: readonly Node[], what: BoxHolds): void => {
    if (what === 'elsewhere') saved.dataset.state = 'elsewhere';
    else delete saved.dataset.state;
    // The header's chip offers the run only while this box does (showSaved sets it after this).
    if (what !== 'run') shared.savedRunOffered.set(null);
    holds = what;
    saved.hidden = false;
    replaceChildren(saved, ...children);
  };
  /**
   * Says `text` in the saved-run box's note, where a Resume pressed in the box says what came of it. A refusal that left
   * no box to show (the run was forgotten by another tab meanwhile) keeps the box, with the note alone: hidden, the note
   * said nothing to anyone.
   */
  const sayInBox = (text: string): void => {
    if (saved.hidden || savedNote.parentNode !== saved) showBox([savedNote], 'note');
    sayAnswer(text);
  };
  const showSaved = (run: SavedRun): void => {
    const finished = run.step >= run.totalSteps;
    const actions = savedRunActions(run).map((a) => ({
      ...a,
      button: h('button', { type: 'button', class: a.kind === 'restore' ? 'secondary' : undefined, 'data-testid': `saved-run-${a.kind}` }, a.label),
    }));
    const buttons = actions.map((a) => a.button);
    const setDisabled = (disabled: boolean): void => {
      for (const b of [...buttons, forget]) b.disabled = disabled;
    };
    const forget = h('button', { type: 'button', class: 'secondary', 'data-testid': 'saved-run-forget' }, 'Forget it');
    const say = savedNote;
    say.textContent = '';
    showBox(
      [
        h('h3', {}, finished ? 'A finished run is saved in this browser' : 'A run is saved in this browser'),
        h('p', { class: 'num', 'data-testid': 'saved-run-summary' }, savedSummary(run)),
        h('div', { class: 'actions' }, ...buttons, forget),
        say,
      ],
      'run',
    );
    shared.savedRunOffered.set(finished ? null : { step: run.step, totalSteps: run.totalSteps });
    // Forgetting deletes the run and its checkpoint for good: asked first, as Train asks before replacing it and the
    // cache panel before deleting weights.
    const confirmForget = h('div', { class: 'confirm', role: 'alertdialog', 'data-testid': 'saved-run-confirm-forget', hidden: true });
    saved.insertBefore(confirmForget, say);
    forget.addEventListener('click', () => {
      const yes = h('button', { type: 'button', class: 'danger', 'data-testid': 'saved-run-confirm-forget-yes' }, 'Forget it');
      const no = h('button', { type: 'button', class: 'secondary', 'data-testid': 'saved-run-keep', 'data-escape': true }, 'Keep it');
      yes.addEventListener('click', () => {
        acting();
        void forgetNow();
      });
      no.addEventListener('click', () => {
        confirmForget.hidden = true;
        forget.disabled = false;
        forget.focus();
      });
      replaceChildren(confirmForget, h('p', {}, forgetQuestion(run)), h('div', { class: 'actions' }, yes, no));
      confirmForget.hidden = false;
      forget.disabled = true;
      // The safe answer has the focus: an Enter pressed on from "Forget it" deletes nothing.
      no.focus();
    });
    const forgetNow = async (): Promise<void> => {
      confirmForget.hidden = true;
      setDisabled(true);
      if (!(await forgetConfirmed({ step: run.step, savedAt: run.savedAt }))) setDisabled(false);
      // The box is gone with the run: the focus to Train, which starts a new one, not to the page's body.
      else startButton.focus();
    };
    for (const a of actions) {
      a.button.addEventListener('click', async () => {
        acting();
        confirmForget.hidden = true;
        setDisabled(true);
        if (await shownElsewhere()) return;
        const tell = (text: string): void => sayInBox(text);
        if (await (a.kind === 'restore' ? control.restoreSaved(run, tell) : control.resumeSaved(run, tell))) hideBox();
        else setDisabled(false);
      });
    }
  };
  /**
   * Forgets the run saved in this browser, as the person agreed in the box; false when nothing was forgotten, said in
   * the box's note as the answer to their Forget. Another tab may have begun on the run since the box was shown: found
   * by the page's own check or by the worker's run lock, its run is shown, and the "another tab" box's general note
   * gives way to what came of the Forget (that note alone never said that nothing was forgotten). `expected`: the run
   * the box showed, which the worker deletes only while the store still holds it; another tab may have saved over it,
   * forgotten it, or left it unreadable since, and the box then shows what the store holds now (forgetRefused).
   */
  const forgetConfirmed = async (expected: ExpectedForget): Promise<boolean> => {
    if (await shownElsewhere()) {
      sayAnswer(FORGET_ELSEWHERE_TEXT);
      return false;
    }
    try {
      await shared.engine.forgetSavedRun(expected);
      hideBox();
      return true;
    } catch (e) {
      if (isRunElsewhere(e)) {
        showElsewhere(await control.savedRun());
        sayAnswer(FORGET_ELSEWHERE_TEXT);
      } else if (isFinetuneError(e) && e.details?.savedRunChanged === true) await forgetRefused();
      else sayAnswer(`Could not forget it: ${errorParts(e).message}`);
      return false;
    }
  };
  /**
   * After a Forget the worker refused because the store no longer holds the run the box showed: the box shows the run
   * saved now (or one that cannot be read), or, with none, its note alone, and says why nothing was forgotten.
   */
  const forgetRefused = async (): Promise<void> => {
    const now = await control.savedRun();
    const problem = now ? null : await control.savedRunProblem();
    if (now) showSaved(now);
    else if (problem) showDamaged(problem);
    else hideBox();
    sayInBox(forgetWithdrawnText(now ?? (problem ? 'unreadable' : null)));
  };
  /** Offers the run saved in this browser now (after a refused resume): its box, or why it cannot be read, or none. */
  const offerNow = (run: SavedRun | null): void => {
    if (run) return showSaved(run);
    hideBox();
    // Ends after the refusal was said (in the box, when the Resume was pressed there).
    const begun = lookBegins();
    void control.savedRunProblem().then((problem) => problem && showLookedUp({ kind: 'damaged', problem }, begun));
  };
  // ---- a saved run that cannot be read ----------------------------------------------------------------------------
  /**
   * `why`: why it is shown after Train or Resume was clicked (another tab wrote it after this tab found none, or the
   * resume was refused for it), or nothing. `record`: the checkpoint a resume was refused for because its files cannot
   * be read though its record can; its Forget names it (checkForgets), as the store's record is not unreadable.
   */
  const showDamaged = (problem: string, why?: string, record?: OfferedCheckpoint): void => {
    confirmBox.hidden = true;
    const forget = h('button', { type: 'button', class: 'secondary', 'data-testid': 'saved-run-forget' }, 'Forget it');
    // The note the saved run's box has: a Resume refused for a damaged run shows this box in place of that one, then
    // says why into that note ("Nothing was resumed: …"), which a note of this box's own would take off the page.
    const say = savedNote;
    // With `why`, in answer to the person's Train or Resume: kept as the answer to it.
    const own = 'Training a new run here needs it forgotten first.';
    if (why) sayAnswer(`${why} ${own}`);
    else say.textContent = own;
    const confirmForget = h('div', { class: 'confirm', role: 'alertdialog', 'data-testid': 'saved-run-confirm-forget', hidden: true });
    showBox(
      [h('h3', {}, 'The run saved in this browser cannot be read'), h('p', { 'data-testid': 'saved-run-summary' }, `${problem}.`), h('div', { class: 'actions' }, forget), confirmForget, say],
      'run',
    );
    shared.savedRunOffered.set(null); // nothing to resume
    forget.addEventListener('click', () => {
      const yes = h('button', { type: 'button', class: 'danger', 'data-testid': 'saved-run-confirm-forget-yes' }, 'Forget it');
      const no = h('button', { type: 'button', class: 'secondary', 'data-testid': 'saved-run-keep', 'data-escape': true }, 'Keep it');
      no.addEventListener('click', () => {
        confirmForget.hidden = true;
        forget.disabled = false;
        forget.focus();
      });
      yes.addEventListener('click', async () => {
        acting();
        confirmForget.hidden = true;
        if (!(await forgetConfirmed(record ? { damaged: true, record } : { damaged: true }))) forget.disabled = false;
      });
      replaceChildren(confirmForget, h('p', {}, forgetDamagedQuestion()), h('div', { class: 'actions' }, yes, no));
      confirmForget.hidden = false;
      forget.disabled = true;
      no.focus();
    });
  };
  // ---- a run in another tab ----------------------------------------------------------------------------------------
  // Every tab shares the saved run's folder; the worker lets one tab at a time train, resume or forget it. While another
  // tab holds it, this one says so (instead of offering Resume, Forget and Replace for a run that is live elsewhere) and
  // looks again every few seconds, so that the usual offer appears once that run ends or its tab closes.
  let elsewhereTimer: ReturnType<typeof setTimeout> | null = null;
  const showElsewhere = (run: SavedRun | null): void => {
    // Set once: every change redraws the panel, the line under the chart included, where "Resume from step N" says why
    // it was refused (after this), and this runs again every few seconds while the other tab trains.
    if (!shared.runElsewhere.value) shared.runElsewhere.set(true);
    confirmBox.hidden = true;
    // The box's note, as showDamaged's: a Resume refused from the saved-run box says why into it once this box stands in
    // that one's place. Its own words only when the box is newly shown, so that looking again keeps what was said.
    if (saved.hidden || saved.dataset.state !== 'elsewhere') {
      savedNote.textContent =
        'Follow it in its own tab. This tab can resume it, or train a new run, once that run ends or its tab is closed: two runs at once would overwrite each other’s checkpoints in this browser.';
    }
    showBox(
      [
        h('h3', {}, 'A run is training in another tab of this page'),
        run
          ? h('p', { class: 'num', 'data-testid': 'saved-run-summary' }, `Last checkpoint: ${savedSummary(run)}`)
          : h('p', { class: 'hint' }, 'It has saved no checkpoint yet.'),
        savedNote,
      ],
      'elsewhere',
    );
    if (elsewhereTimer === null) elsewhereTimer = setTimeout(lookAgain, ELSEWHERE_POLL_MS);
  };
  /** Shows the run held by another tab and returns true when one is; false when none is. */
  const shownElsewhere = async (): Promise<boolean> => {
    if (!(await control.runElsewhere())) return false;
    showElsewhere(await control.savedRun());
    return true;
  };
  const lookAgain = async (): Promise<void> => {
    elsewhereTimer = null;
    const begun = lookBegins();
    if (await shownElsewhere()) return;
    shared.runElsewhere.set(false);
    delete saved.dataset.state;
    hideBox();
    // What that tab left: its run, offered as the page offers it on open, or one it left unreadable (killed mid-write),
    // offered to be forgotten; hidden, nothing said it was there until Train found it. A look the person did not ask
    // for, as the page's on open: not shown if they acted since it began.
    const run = await control.savedRun();
    const problem = run ? null : await control.savedRunProblem();
    if (shared.run.value.phase === 'idle') {
      if (run) showLookedUp({ kind: 'saved', run }, begun);
      else if (problem) showLookedUp({ kind: 'damaged', problem }, begun);
    }
    // The estimate was measured while the other run shared the GPU: measure it again alone.
    await shared.engine.forgetEstimate().catch(() => undefined);
    estimateFor = '';
    refreshEstimate();
  };
  void shared.gpuReady.then(async (ok) => {
    if (!ok) return;
    const begun = lookBegins();
    const [elsewhere, run] = await Promise.all([control.runElsewhere(), control.savedRun()]);
    if (shared.run.value.phase !== 'idle') return;
    // The page's own look, which may end after the person acted (Train shows a box): then it is not shown.
    if (elsewhere) showLookedUp({ kind: 'elsewhere', run }, begun);
    else if (run) showLookedUp({ kind: 'saved', run }, begun);
    else {
      const problem = await control.savedRunProblem();
      if (problem && shared.run.value.phase === 'idle') showLookedUp({ kind: 'damaged', problem }, begun);
    }
  });

  // ---- the estimate: measured once per model and adapter shape, rescaled for every plan ------------------------------
  let estimateFor = '';
  let estimateId = 0;
  // The estimate shown and what it was said of: a run that ends changes "This run" to the next one's (render).
  let shown: { estimate: RunEstimate; subject: string } | null = null;
  const showEstimate = (e: RunEstimate): void => {
    shown = { estimate: e, subject: estimateSubject(shared.run.value.phase) };
    const slow = e.seconds > SLOW_RUN_SECONDS;
    // On a CPU slow enough that even the quick preset takes longer, offering it again would do nothing.
    const offerQuick = e.softwareAdapter && slow && !isQuickPreset(shared.form.value.hp);
    const uploads = e.uploadSeconds > 0 ? `; ${roughDuration(e.uploadSeconds)} of it moving the streamed layers to the GPU` : '';
    // The first run of a shape on a GPU measures its kernels before its first step (remembered afterwards).
    const tuning = e.tuningSeconds > 0 ? `; ${roughDuration(e.tuningSeconds)} of it measuring which kernels are fastest here, once for this shape` : '';
    // Measured while another tab trained on the same GPU (or CPU): slower than this run will be alone.
    const alongside = shared.runElsewhere.value ? ', while another tab of this page trains on it' : '';
    const rate = `${formatRate(e.tokensPerSecond)} tokens/s measured on this ${e.softwareAdapter ? 'software adapter' : 'GPU'}${alongside}${uploads}${tuning}`;
    const quick = h('button', { type: 'button', class: 'secondary', 'data-testid': 'preset-quick' }, 'Use the quick preset');
    quick.addEventListener('click', () => hooks.applyQuickPreset());
    replaceChildren(
      estimateBox,
      h(
        'p',
        { class: slow ? 'warn' : 'hint', 'data-testid': 'train-estimate' },
        `${shown.subject} should take ${roughDuration(e.seconds)} here (${formatCount(e.trainTokens)} training tokens${paddingClause(e)}, ${validationClause(e)}${sampleClause(e)}; ${rate}).`,
      ),
      offerQuick
        ? h(
            'p',
            { class: 'hint' },
            `This browser gives WebGPU through a software adapter (the CPU): correct, but slow. The quick preset trains eight short steps, a minute or two here; a real GPU trains this run far faster.`,
          )
        : null,
      offerQuick ? h('div', { class: 'actions' }, quick) : null,
    );
  };
  const refreshEstimate = (): void => {
    const plan = shared.plan.value;
    const m = shared.model.value;
    if (runBusy(shared.run.value.phase) || plan.status !== 'ready' || !plan.stats || m.status !== 'ready' || notReadyReason(shared)) return;
    const key = JSON.stringify([m.info?.source, m.info?.quantization, m.info?.streamedLayers, shared.form.value.hp, plan.stats]);
    if (key === estimateFor) return;
    estimateFor = key;
    const id = ++estimateId;
    const pending = (): void => replaceChildren(estimateBox, h('p', { class: 'hint', 'data-testid': 'train-estimate-pending' }, 'Measuring a training step on this GPU to estimate the time…'));
    // The worker keeps its measurement per model and adapter shape, so most changes (a learning rate, another file) are
    // answered at once from it: the last estimate stays, dimmed, rather than a "Measuring…" flash per keystroke, and
    // the pending line comes only if the answer takes a while (a new shape is measured, seconds on a software adapter).
    const shown = estimateBox.querySelector<HTMLElement>('[data-testid="train-estimate"], [data-testid="train-estimate-stale"]');
    let wait: ReturnType<typeof setTimeout> | null = null;
    if (shown) {
      shown.dataset.testid = 'train-estimate-stale';
      shown.classList.add('stale');
      wait = setTimeout(() => id === estimateId && pending(), ESTIMATE_PENDING_AFTER_MS);
    } else pending();
    const settle = (): void => {
      if (wait !== null) clearTimeout(wait);
    };
    control.estimate().then(
      (e) => {
        settle();
        if (id === estimateId) showEstimate(e);
      },
      (e: unknown) => {
        settle();
        if (id !== estimateId) return;
        estimateFor = '';
        // Measured again on request, the form unchanged (a failure is not kept: the worker measures anew).
        const again = (): void => {
          estimateFor = '';
          refreshEstimate();
        };
        replaceChildren(estimateBox, ...estimateFailureView(errorParts(e).message, again));
      },
    );
  };

  // ---- state → view -------------------------------------------------------------------------------------------------
  let chartRun: RunState | null = null;
  const renderChart = (run: RunState): void => {
    const prev = chartRun;
    chartRun = run;
    // The chart follows the run's history: appended points are drawn, anything else redraws from scratch.
    const grown = prev !== null && run.history.length >= prev.history.length && prev.history.every((p, i) => p.step === run.history[i]?.step);
    if (!grown || run.totalSteps !== prev?.totalSteps || (prev.baseline !== null && run.baseline !== prev.baseline)) {
      chart.reset(run.history, run.totalSteps || (shared.plan.value.stats?.totalSteps ?? 0), run.baseline);
      return;
    }
    // The pass before the first step: its point at step 0.
    if (run.baseline !== null && prev.baseline === null) chart.addValidation(0, run.baseline);
    for (let i = 0; i < run.history.length; i++) {
      const p = run.history[i];
      const q = prev.history[i];
      if (!q) chart.addStep(p.step, p.loss);
      if (p.valLoss !== undefined && q?.valLoss !== p.valLoss) chart.addValidation(p.step, p.valLoss);
    }
  };

  const renderReadouts = (run: RunState): void => {
    const x = run.readouts;
    r.step.value.textContent = run.totalSteps ? `${run.step} / ${run.totalSteps}` : '—';
    r.step.sub.textContent = run.totalSteps ? formatPercent(run.step / Math.max(1, run.totalSteps)) : '';
    r.epoch.value.textContent = x ? String(x.epoch + 1) : '—';
    const last = run.history[run.history.length - 1];
    r.loss.value.textContent = x ? formatLoss(x.loss) : last ? formatLoss(last.loss) : '—';
    r.lr.value.textContent = x ? formatSci(x.lr) : '—';
    r.grad.value.textContent = x ? x.gradNorm.toPrecision(3) : '—';
    r.rate.value.textContent = x ? formatRate(x.tokensPerSecond) : '—';
    r.rate.sub.textContent = x ? `${formatCount(x.tokensPerStep)} tokens / step` : '';
    r.eta.value.textContent = etaText(run);
    r.eta.sub.textContent = x ? `${runBusy(run.phase) ? 'elapsed' : 'took'} ${formatDuration(x.elapsedSeconds)}` : '';
    const v = run.validation;
    r.val.value.textContent = v ? formatLoss(v.valLoss) : '—';
    if (v) r.val.value.dataset.value = String(v.valLoss);
    else delete r.val.value.dataset.value;
    const pass = run.validating;
    // Once the run has validated after a step, the loss before training stays beside it: what it is read against.
    const before = v && v.step > 0 && run.baseline !== null ? `${formatLoss(run.baseline)} before training` : '';
    r.val.sub.textContent = pass
      ? `validating ${afterStepText(pass.step)}: ${pass.done} / ${formatCounted(pass.passes, 'pass', 'passes')}`
      : v
        ? [passPlace(v.step, `at step ${v.step}`), v.valTokens !== null ? `${formatCount(v.valTokens)} tokens` : '', v.seconds !== null ? `${v.seconds.toFixed(1)} s` : '', before].filter(Boolean).join(' · ')
        : '';
    bar.max = Math.max(1, run.totalSteps);
    bar.value = run.step;
  };

  const renderOutcome = (run: RunState): void => {
    const o = run.outcome;
    if (!o || runBusy(run.phase)) return replaceChildren(result);
    if (o.kind === 'failed' && o.errorKind === 'device-lost') {
      // Said in words a person can act on; the browser's own reason stays available as the details.
      return replaceChildren(
        result,
        h('p', { class: 'bad', 'data-testid': 'train-error' }, deviceLostText(o, run.checkpointStep)),
        h('details', {}, h('summary', {}, 'What the browser said'), h('p', {}, o.message)),
      );
    }
    if (o.kind === 'failed') return replaceChildren(result, h('p', { class: 'bad', 'data-testid': 'train-error' }, `Training failed: ${o.message}`));
    if (o.kind === 'stopped') {
      // A device lost since (under Try it, an export…) took the adapter: only the checkpoint remains to resume.
      const exported = run.hasAdapter ? 'The adapter so far can be exported; ' : '';
      const words = {
        nothing: `Stopped ${o.steps === 0 ? 'before the first step' : `at step ${o.steps} of ${o.totalSteps}`}: nothing was saved in this browser, so there is nothing to resume; Train again starts the run.`,
        trained: `Stopped in the validation after the last step (${o.steps} of ${o.totalSteps}): the adapter is trained and saved, and can be exported; its final validation was left out.`,
        resumable: `Stopped at step ${o.steps} of ${o.totalSteps}. ${exported}Resume continues the run from here (after a reload too).`,
      }[stopLeft(run)];
      return replaceChildren(result, h('p', { class: 'warn' }, words));
    }
    const validation = validationLossWords(o.finalValLoss, o.baselineValLoss);
    replaceChildren(
      result,
      h(
        'p',
        { class: 'ok' },
        `Finished: ${o.steps} steps in ${formatDuration(o.seconds)}` +
          (o.finalLoss !== null ? ` · final loss ${formatLoss(o.finalLoss)}` : '') +
          (validation ? ` · ${validation}` : ''),
      ),
    );
  };

  // The plan drawn last, so that a render (one a step while training) rebuilds it, and its chart, only when it changed.
  let shownPlan: { stats: DataStats; stale: boolean } | null = null;
  const showPlan = (stats: DataStats, stale = false): void => {
    if (shownPlan && shownPlan.stats === stats && shownPlan.stale === stale) return;
    shownPlan = { stats, stale };
    const view = planView(stats);
    replaceChildren(planBox, stale ? h('div', { class: 'stale' }, view) : view);
  };
  const render = (): void => {
    const run = shared.run.value;
    const busy = runBusy(run.phase);
    const why = busy ? null : notReadyReason(shared);
    startButton.disabled = busy || why !== null;
    startButton.textContent = run.phase === 'done' || run.phase === 'stopped' || run.phase === 'error' ? 'Train again' : 'Train';
    reason.textContent = why ?? '';
    reason.hidden = why === null;
    // While resuming, neither: the worker already has the Resume, and a Pause then would be undone by it.
    pauseButton.disabled = !(run.phase === 'running' || run.phase === 'validating' || run.phase === 'pausing' || run.phase === 'paused');
    pauseButton.textContent = run.phase === 'paused' || run.phase === 'pausing' || run.phase === 'resuming' ? 'Resume' : 'Pause';
    stopButton.disabled = !busy || run.phase === 'stopping';
    // After Stop, or after a failure with a checkpoint, the run continues from where it was saved: no reload needed.
    resumeHere.hidden = !((run.phase === 'stopped' || run.phase === 'error') && stoppedResumable(run));
    resumeHere.textContent = `Resume from step ${run.checkpointStep ?? 0}`;
    // A lost GPU device: the worker makes a new one and reloads the model, then the run continues from its checkpoint.
    const deviceLost = runLostDevice(run);
    recoverButton.hidden = !deviceLost;
    if (deviceLost) resumeHere.hidden = true;
    if (busy) confirmBox.hidden = true;
    if (focusAfterStop && !busy) {
      focusAfterStop = false;
      (resumeHere.hidden ? startButton : resumeHere).focus();
    }
    phaseText.className = `status phase-${run.phase}`;
    phaseText.dataset.phase = run.phase;
    phaseText.textContent = phaseLine(run, why);
    note.textContent = run.note;
    kernelsLine.hidden = run.kernels === null;
    kernelsLine.textContent = run.kernels ?? '';
    renderReadouts(run);
    renderOutcome(run);
    // Rebuilt only when a sample comes (the list is a new array then), keeping the earlier ones unfolded if they were.
    if (run.samples !== shownSamples) {
      shownSamples = run.samples;
      const open = sample.querySelector('details')?.open ?? false;
      sample.hidden = run.samples.length === 0;
      sample.dataset.count = String(run.samples.length);
      replaceChildren(sample, ...sampleListView(run.samples, open));
    }
    if (run.plan) {
      showPlan(run.plan);
    } else if (!busy) {
      const plan = shared.plan.value;
      if (plan.status === 'ready' && plan.stats) showPlan(plan.stats);
      else if (plan.status === 'planning' && plan.stats) showPlan(plan.stats, true);
      else {
        shownPlan = null;
        if (plan.status === 'error' && plan.error) replaceChildren(planBox, h('p', { class: 'bad', 'data-testid': 'plan-error' }, plan.error.message));
        else if (plan.status === 'planning') replaceChildren(planBox, h('p', { class: 'hint' }, 'Planning…'));
        else replaceChildren(planBox);
      }
    }
    // The run's step on the learning-rate chart, while the plan shown is the run's own.
    const lrChart = planBox.querySelector<HTMLElement>('[data-testid="plan-lr"]');
    if (lrChart) markLrStep(lrChart, run.plan && run.step > 0 ? run.step : null);
    estimateBox.hidden = busy || why !== null;
    if (!busy && shown && shown.subject !== estimateSubject(run.phase) && estimateBox.querySelector('[data-testid="train-estimate"]')) showEstimate(shown.estimate);
    renderChart(run);
    const planned = shared.plan.value.stats;
    if (!busy && run.history.length === 0 && planned) chart.setTotal(planned.totalSteps);
  };
  shared.run.watch(render);
  for (const c of [shared.model, shared.form, shared.data, shared.plan, shared.runElsewhere] as const) (c as { watch(fn: () => void): unknown }).watch(render);
  shared.plan.watch(refreshEstimate);
  shared.model.watch(refreshEstimate);
  shared.run.watch(refreshEstimate);
  // A change of the form or the files after a run shows the plan for them instead of the run's.
  const inputsChanged = (): void => shared.run.dispatch({ type: 'inputs-changed' });
  shared.form.watch(inputsChanged);
  shared.data.watch(inputsChanged);

  return h(
    'section',
    { class: 'panel wide', id: 'panel-training' },
    h('h2', {}, 'Training'),
    saved,
    planBox,
    estimateBox,
    h('div', { class: 'controls' }, startButton, pauseButton, stopButton, resumeHere, recoverButton, phaseText),
    notifyControl(browserNotifierEnv()),
    confirmBox,
    reason,
    bar,
    h('div', { class: 'readouts' }, ...Object.values(r).map((x) => x.el)),
    kernelsLine,
    chart.element,
    note,
    result,
    sample,
  );
}
