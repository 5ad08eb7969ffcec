// How the remote panel's job list takes an answer about a job (src/ui/remote-panel.ts mergedJob): answers arrive from
// Follow's polls, Cancel's reply and Send, in any order, and a stale one must not undo what a later one recorded.
import { describe, expect, it } from 'vitest';
import type { TrainingView } from '../../../src/remote/flow.ts';
import { cancelMessage, endedMessage, jobRowTexts, mergedJob, type RemoteJob } from '../../../src/ui/remote-panel.ts';

const NOW = new Date('2025-05-01T10:00:00Z');

function view(status: TrainingView['status'], elapsedS: number, error: string | null = null): TrainingView {
  return { id: 'abc123', status, logs: '', elapsedS, costUsd: elapsedS * 0.0014, error, weights: null, version: null, done: ['succeeded', 'failed', 'canceled', 'aborted'].includes(status) };
}

function job(status: RemoteJob['status'], elapsedS: number): RemoteJob {
  return { id: 'abc123', destination: 'alice/bot', createdAt: '2025-05-01T09:00:00.000Z', status, error: null, elapsedS, costUsd: elapsedS * 0.0014 };
}

describe('mergedJob', () => {
  it('records a new job with its destination and the time it was first seen', () => {
    expect(mergedJob(undefined, view('starting', 0), 'alice/bot', NOW)).toEqual({ id: 'abc123', destination: 'alice/bot', createdAt: NOW.toISOString(), status: 'starting', error: null, elapsedS: 0, costUsd: 0 });
  });

  it('takes each newer answer, keeping the destination and creation time already recorded', () => {
    expect(mergedJob(job('starting', 0), view('processing', 30), undefined, NOW)).toEqual(job('processing', 30));
    expect(mergedJob(job('processing', 30), view('failed', 42, 'CUDA out of memory'), undefined, NOW)).toEqual({ ...job('failed', 42), error: 'CUDA out of memory' });
    // A finished answer after a finished one (the final numbers) is taken too.
    expect(mergedJob(job('canceled', 40), view('canceled', 41), undefined, NOW)).toEqual(job('canceled', 41));
  });

  it('never lets an unfinished answer replace a finished status (a Cancel reply of "processing" after Follow saw "canceled")', () => {
    // Replicate never restarts a training, and following has stopped: the row would stay wrong until a reload.
    for (const finished of ['succeeded', 'failed', 'canceled', 'aborted'] as const) {
      for (const stale of ['starting', 'processing'] as const) {
        expect(mergedJob(job(finished, 40), view(stale, 39), undefined, NOW), `${stale} after ${finished}`).toBeNull();
      }
    }
  });
});

describe('cancelMessage', () => {
  it('says what the row holds when a stale Cancel reply did not replace a finished status', () => {
    // Follow recorded "succeeded"; the Cancel reply, sent before that, says "processing" and changes nothing.
    for (const finished of ['succeeded', 'failed', 'canceled', 'aborted'] as const) {
      const row = job(finished, 40);
      const reply = view('processing', 39);
      expect(mergedJob(row, reply, undefined, NOW)).toBeNull();
      const m = cancelMessage('abc123', row, reply);
      expect(m).toBe(`Training abc123 had already ${finished === 'aborted' ? 'been aborted' : finished}: nothing to cancel.`);
      expect(m).not.toContain('processing');
    }
  });

  it('quotes the reply when the reply is what the row now holds', () => {
    const reply = view('canceled', 41);
    const row = mergedJob(job('processing', 30), reply, undefined, NOW);
    expect(row?.status).toBe('canceled');
    expect(cancelMessage('abc123', row ?? undefined, reply)).toBe('Training abc123 is canceled.');
    // A reply about a job not in the list yet (no row) says the reply's status.
    expect(cancelMessage('abc123', undefined, view('starting', 0))).toBe('Training abc123 is starting.');
  });
});

// A job's destination, status and error are shown as text (textContent), and Replicate's words in them with
// visibleText's escapes: a bidirectional control reordered the row or the status line, and a line break in an error
// made the status line read as two.
describe('the words of Replicate in the job list and the status line', () => {
  const forged = 'CUDA out of memory\nTraining abc succeeded\u202e';
  it('a row shows the destination, status and error with their line breaks and bidi controls escaped', () => {
    const row = { ...job('failed', 42), destination: 'alice/\u202ebot', error: forged };
    expect(jobRowTexts(row)).toEqual({ dest: ' alice/\\u202ebot · ', status: 'failed', numbers: ' · 42 s · $0.0588', error: ' · CUDA out of memory\\nTraining abc succeeded\\u202e' });
    expect(jobRowTexts({ ...row, status: 'odd\u2066' as RemoteJob['status'], error: null })).toMatchObject({ status: 'odd\\u2066', error: '' });
  });

  it("a training's end and a Cancel reply say Replicate's status and error escaped", () => {
    expect(endedMessage('abc123', view('failed', 42, forged))).toBe('Training abc123 failed: CUDA out of memory\\nTraining abc succeeded\\u202e');
    expect(endedMessage('abc123', view('canceled', 42))).toBe('Training abc123 canceled');
    expect(cancelMessage('abc123', undefined, view('odd\u202e' as TrainingView['status'], 0))).toBe('Training abc123 is odd\\u202e.');
  });
});
