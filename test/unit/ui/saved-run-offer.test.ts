// What the saved-run box asks before "Forget it" deletes the run (src/ui/saved-run-offer.ts): which run, at which
// step, and that its checkpoint goes with it, so nothing is deleted on a single click.
import { describe, expect, it } from 'vitest';
import { damagedRunProblem, forgetDamagedQuestion, forgetQuestion, offerGoneText, savedRunActions } from '../../../src/ui/saved-run-offer.ts';
import { FinetuneError } from '../../../src/core/errors.ts';

const RUN = { trainName: 'short.jsonl', validationName: null, step: 3, totalSteps: 4 };

describe('forgetQuestion', () => {
  it('names the unfinished run, its step and its checkpoint, and says it can no longer be resumed', () => {
    expect(forgetQuestion(RUN)).toBe(
      'Forget the run saved in this browser (short.jsonl, step 3 of 4)? Its checkpoint at step 3 is deleted with it: the run can no longer be resumed, nor its adapter restored.',
    );
  });

  it('says of a finished run that its adapter can no longer be restored', () => {
    expect(forgetQuestion({ ...RUN, validationName: 'val.jsonl', step: 4 })).toBe(
      'Forget the run saved in this browser (short.jsonl + val.jsonl, step 4 of 4)? Its checkpoint at step 4 is deleted with it: its adapter can no longer be restored.',
    );
  });

  it('shows a bidirectional override in a file name as an escape, so it cannot turn the question around', () => {
    expect(forgetQuestion({ ...RUN, trainName: 'rows\u202Elnosj.jsonl' })).toMatch(/^Forget the run saved in this browser \(rows\\u202elnosj\.jsonl, step 3 of 4\)\? /);
    expect(offerGoneText(2, { ...RUN, trainName: 'a\u2066b.jsonl' })).toContain('It now holds a\\u2066b.jsonl at step 3 of 4');
  });
});

describe('savedRunActions', () => {
  it("offers an unfinished run's adapter at its step beside Resume (it was offered only Resume, so a reload lost its export)", () => {
    expect(savedRunActions(RUN)).toEqual([
      { kind: 'resume', label: 'Resume from step 3' },
      { kind: 'restore', label: 'Restore the adapter at step 3' },
    ]);
  });

  it('offers a finished run its adapter alone (resuming it trains nothing)', () => {
    expect(savedRunActions({ ...RUN, step: 4 })).toEqual([{ kind: 'resume', label: 'Restore the adapter' }]);
  });
});

describe('a damaged saved run', () => {
  it('is told apart from other errors by the flag the worker sends with it', () => {
    const damaged = new FinetuneError('bad-input', 'the saved run is unreadable (run.json: its record holds no hyperparameters)', { damagedRun: true });
    expect(damagedRunProblem(damaged)).toBe('the saved run is unreadable (run.json: its record holds no hyperparameters)');
    expect(damagedRunProblem(new FinetuneError('bad-input', 'no OPFS here'))).toBeNull();
    expect(damagedRunProblem(new Error('x'))).toBeNull();
  });

  it('is offered to be forgotten, saying what is lost, rather than replaced by a new run without a word', () => {
    expect(forgetDamagedQuestion()).toBe('Forget the unreadable run saved in this browser? Its files are deleted: whatever checkpoint they hold is lost. A new run can be trained here afterwards.');
  });
});
