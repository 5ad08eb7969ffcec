// The desktop notification at a run's end: what it says, when it is shown, and what the button beside Train offers.
import { describe, expect, it } from 'vitest';
import { installRunNotifier, notifyOffer, runEndNotice, type NotificationApi, type NotifierEnv } from '../../../src/ui/run-notifier.ts';
import { IDLE_RUN, runReducer, type RunState } from '../../../src/ui/run-state.ts';
import { Cell } from '../../../src/ui/state.ts';

const at = (s: Partial<RunState>): RunState => ({ ...IDLE_RUN, ...s });
const running = at({ phase: 'running', step: 7, totalSteps: 8 });
const finishedFrom = (s: RunState, finalValLoss: number | null = 3.7231): RunState =>
  runReducer(s, { type: 'finished', result: { steps: 8, skipped: 0, seconds: 48.2, finalLoss: 4.00812, finalValLoss, stopped: false } });

/** A fake Notification class recording what was shown; requestPermission answers `answer`. */
function fakeNotifications(permission: NotificationPermission, answer: NotificationPermission = 'granted') {
  const shown: { title: string; options?: NotificationOptions; closed: boolean; onclick: ((ev: Event) => unknown) | null }[] = [];
  const api = class {
    static permission: NotificationPermission = permission;
    static async requestPermission(): Promise<NotificationPermission> {
      api.permission = answer;
      return answer;
    }
    onclick: ((ev: Event) => unknown) | null = null;
    private readonly record: (typeof shown)[number];
    constructor(title: string, options?: NotificationOptions) {
      this.record = { title, options, closed: false, onclick: null };
      shown.push(this.record);
    }
    close(): void {
      this.record.closed = true;
    }
  };
  return { api: api as unknown as NotificationApi, shown };
}

describe('runEndNotice', () => {
  it('says a finished run in steps, time and losses', () => {
    expect(runEndNotice(running, finishedFrom(running))).toEqual({
      title: 'Training finished',
      body: '8 steps in 0:48 · final loss 4.008 · validation loss 3.723. The adapter is ready to export.',
    });
    expect(runEndNotice(running, finishedFrom(running, null))!.body).toBe('8 steps in 0:48 · final loss 4.008. The adapter is ready to export.');
  });

  it('puts the validation loss before training beside the final one where the run made that pass (eval_on_start)', () => {
    const done = runReducer(running, { type: 'finished', result: { steps: 8, skipped: 0, seconds: 48.2, finalLoss: 4.00812, finalValLoss: 3.7231, baselineValLoss: 3.9512, stopped: false } });
    expect(runEndNotice(running, done)!.body).toBe('8 steps in 0:48 · final loss 4.008 · validation loss 3.723 (3.951 before training). The adapter is ready to export.');
  });

  it('says a failed run with its step and message, cut short when long', () => {
    const failed = runReducer(running, { type: 'failed', kind: 'gpu', message: 'The GPU device was lost.' });
    expect(runEndNotice(running, failed)).toEqual({ title: 'Training failed', body: 'At step 7: The GPU device was lost.' });
    const long = runEndNotice(running, runReducer(running, { type: 'failed', kind: 'gpu', message: 'x'.repeat(500) }))!;
    expect(long.body.length).toBe('At step 7: '.length + 200);
    expect(long.body.endsWith('…')).toBe(true);
  });

  it('says nothing for a run the person stopped, a paused one, or a change that ends no run', () => {
    const stopped = runReducer(at({ ...running, phase: 'stopping' }), { type: 'finished', result: { steps: 7, skipped: 0, seconds: 40, finalLoss: 4, finalValLoss: null, stopped: true } });
    expect(stopped.phase).toBe('stopped');
    expect(runEndNotice(at({ ...running, phase: 'stopping' }), stopped)).toBeNull();
    expect(runEndNotice(running, at({ ...running, phase: 'paused' }))).toBeNull();
    expect(runEndNotice(running, at({ ...running, step: 8 }))).toBeNull();
    // A restored run shown as done at page load was never under way here.
    const done = finishedFrom(running);
    expect(runEndNotice(IDLE_RUN, done)).toBeNull();
    expect(runEndNotice(done, done)).toBeNull();
  });
});

describe('installRunNotifier', () => {
  const env = (api: NotificationApi | undefined, hidden: boolean, focused: string[]): NotifierEnv => ({ Notification: api, hidden: () => hidden, focus: () => focused.push('focus') });

  it('shows one notification when a run ends while the page is hidden and notifications are allowed; a click brings the page back', () => {
    const n = fakeNotifications('granted');
    const focused: string[] = [];
    const run = new Cell<RunState>(IDLE_RUN);
    installRunNotifier(run, env(n.api, true, focused));
    run.set(running);
    expect(n.shown).toEqual([]);
    run.set(finishedFrom(running));
    expect(n.shown).toHaveLength(1);
    expect(n.shown[0].title).toBe('Training finished');
    expect(n.shown[0].options).toMatchObject({ tag: 'finetune-run', body: expect.stringContaining('final loss 4.008') });
    // The finished run changing again (an inputs change, a re-render) ends nothing more.
    run.set(finishedFrom(running));
    expect(n.shown).toHaveLength(1);
  });

  it('focuses the page and closes the notification on a click', () => {
    const focused: string[] = [];
    let instance: { onclick: ((ev: Event) => unknown) | null; close(): void } | null = null;
    let closed = false;
    const api = class {
      static permission: NotificationPermission = 'granted';
      static requestPermission = async (): Promise<NotificationPermission> => 'granted';
      onclick: ((ev: Event) => unknown) | null = null;
      constructor() {
        instance = this;
      }
      close(): void {
        closed = true;
      }
    } as unknown as NotificationApi;
    const run = new Cell<RunState>(running);
    installRunNotifier(run, env(api, true, focused));
    run.set(finishedFrom(running));
    expect(instance).not.toBeNull();
    instance!.onclick!(new Event('click'));
    expect(focused).toEqual(['focus']);
    expect(closed).toBe(true);
  });

  it('shows nothing while the page is in sight, without permission, or without the API', () => {
    for (const [permission, hidden] of [
      ['granted', false],
      ['default', true],
      ['denied', true],
    ] as const) {
      const n = fakeNotifications(permission);
      const run = new Cell<RunState>(running);
      installRunNotifier(run, env(n.api, hidden, []));
      run.set(finishedFrom(running));
      expect(n.shown, `${permission}, hidden ${hidden}`).toEqual([]);
    }
    const run = new Cell<RunState>(running);
    installRunNotifier(run, env(undefined, true, []));
    expect(() => run.set(finishedFrom(running))).not.toThrow();
  });
});

describe('notifyOffer', () => {
  it('offers the button only while the browser has not been asked, and says where things stand otherwise', () => {
    expect(notifyOffer(undefined)).toEqual({ button: false, hint: '' });
    expect(notifyOffer(fakeNotifications('default').api)).toEqual({ button: true, hint: '' });
    expect(notifyOffer(fakeNotifications('granted').api)).toEqual({ button: false, hint: 'A notification will say when a run ends while this tab is hidden.' });
    expect(notifyOffer(fakeNotifications('denied').api).hint).toMatch(/blocked for this page/);
  });
});
