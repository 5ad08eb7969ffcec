// A desktop notification when a run ends while its tab is out of sight. A fine-tune takes minutes to hours, and the
// person has gone to another tab or window meanwhile; the tab's title says it too (header-status.ts), but only to
// someone looking at the tab strip. Shown only where the person allowed it (the browser's permission, asked for by a
// button of its own, never on its own), only while the page is hidden, and never for a run they stopped themselves.
// Notification text is plain text: nothing in it is rendered as HTML.

import { formatCounted } from '../core/units.ts';
import { formatDuration, formatLoss, validationLossWords } from './format.ts';
import { h } from './dom.ts';
import { runBusy, type RunState } from './run-state.ts';

export interface RunEndNotice {
  title: string;
  body: string;
}

/** Longest error message a notification carries: the panel has the whole of it. */
const MAX_MESSAGE = 200;

/** What to tell the person when `prev` → `next` ends a run (finished, or failed), else null. */
export function runEndNotice(prev: RunState, next: RunState): RunEndNotice | null {
  if (!runBusy(prev.phase)) return null;
  const o = next.outcome;
  if (next.phase === 'done' && o?.kind === 'finished') {
    const words = validationLossWords(o.finalValLoss, o.baselineValLoss);
    const validation = words ? ` · ${words}` : '';
    return { title: 'Training finished', body: `${formatCounted(o.steps, 'step')} in ${formatDuration(o.seconds)} · final loss ${formatLoss(o.finalLoss)}${validation}. The adapter is ready to export.` };
  }
  if (next.phase === 'error' && o?.kind === 'failed') {
    const message = o.message.length > MAX_MESSAGE ? `${o.message.slice(0, MAX_MESSAGE - 1)}…` : o.message;
    return { title: 'Training failed', body: `At step ${next.step}: ${message}` };
  }
  return null;
}

/** The part of the browser's Notification API this module uses (a fake in tests). */
export interface NotificationApi {
  readonly permission: NotificationPermission;
  requestPermission(): Promise<NotificationPermission>;
  new (title: string, options?: NotificationOptions): { onclick: ((this: unknown, ev: Event) => unknown) | null; close(): void };
}

export interface NotifierEnv {
  /** undefined where the browser has no notifications (or the page is not a secure context). */
  Notification: NotificationApi | undefined;
  /** The page is out of sight (another tab, a minimised window). */
  hidden(): boolean;
  /** Brings the page to the front (a click on the notification). */
  focus(): void;
}

/** The page's own: the API looked up at each use (as the permission is), not once at the page's start. */
export function browserNotifierEnv(): NotifierEnv {
  return {
    get Notification() {
      return typeof Notification === 'undefined' ? undefined : (Notification as unknown as NotificationApi);
    },
    hidden: () => document.hidden,
    focus: () => window.focus(),
  };
}

/** Watches the run and shows a notification when it ends while the page is hidden and notifications are allowed. */
export function installRunNotifier(run: { value: RunState; watch(fn: (value: RunState) => void): unknown }, env: NotifierEnv): void {
  let prev = run.value;
  run.watch((next) => {
    const notice = runEndNotice(prev, next);
    prev = next;
    const N = env.Notification;
    if (!notice || !N || N.permission !== 'granted' || !env.hidden()) return;
    // One tag: a second run's notice replaces the first's instead of piling up.
    const shown = new N(notice.title, { body: notice.body, tag: 'finetune-run' });
    shown.onclick = () => {
      env.focus();
      shown.close();
    };
  });
}

/** What the button beside Train says and whether it is offered, for a permission state. */
export function notifyOffer(N: NotificationApi | undefined): { button: boolean; hint: string } {
  if (!N) return { button: false, hint: '' };
  switch (N.permission) {
    case 'granted':
      return { button: false, hint: 'A notification will say when a run ends while this tab is hidden.' };
    case 'denied':
      return { button: false, hint: 'Notifications are blocked for this page: the site settings of the browser can allow them.' };
    default:
      return { button: true, hint: '' };
  }
}

/** "Notify me when it ends": asks the browser's permission on a click (a browser asks only after a gesture). */
export function notifyControl(env: NotifierEnv): HTMLElement {
  const button = h('button', { type: 'button', class: 'secondary', 'data-testid': 'train-notify' }, 'Notify me when it ends');
  const hint = h('span', { class: 'hint', 'data-testid': 'train-notify-hint' });
  const show = (): void => {
    const offer = notifyOffer(env.Notification);
    button.hidden = !offer.button;
    hint.textContent = offer.hint;
  };
  button.addEventListener('click', async () => {
    button.disabled = true;
    try {
      await env.Notification?.requestPermission();
    } finally {
      button.disabled = false;
      show();
    }
  });
  show();
  return h('span', { class: 'notify' }, button, hint);
}
