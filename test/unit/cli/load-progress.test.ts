// The CLI's model-load progress on stderr: the fields the page's Model panel shows (phase, tensors, bytes, MB/s, time
// left), one line at most every 2 s, and always at a change of phase and at the end of one.
import { describe, expect, it } from 'vitest';
import { formatLoadProgress, loadProgressPrinter } from '../../../src/cli/load-progress.ts';
import type { LoadProgress } from '../../../src/engine/mistral/weights.ts';

const p = (o: Partial<LoadProgress>): LoadProgress => ({ tensor: 'model.layers.0.mlp.up_proj.weight', done: 3, total: 291, bytesDone: 1.5 * 1024 ** 3, bytesTotal: 14.5 * 1024 ** 3, ...o });

describe('formatLoadProgress', () => {
  it('says the phase, tensors, bytes, MB/s and the time left', () => {
    expect(formatLoadProgress(p({ phase: 'downloading', bytesPerSecond: 35.2e6, etaSeconds: 396.4 }), 'mistralai/Mistral-7B-v0.1')).toBe(
      'loading mistralai/Mistral-7B-v0.1: downloading · 3 / 291 tensors · 1.5 GiB / 14.5 GiB · 35.2 MB/s · 6 min 37 s left',
    );
    // No rate or time yet: neither is invented.
    expect(formatLoadProgress(p({ phase: 'quantising', etaSeconds: null }), 'm')).toBe('loading m: quantising · 3 / 291 tensors · 1.5 GiB / 14.5 GiB');
    expect(formatLoadProgress(p({ phase: 'caching', done: 291, bytesDone: 14.5 * 1024 ** 3, bytesPerSecond: 0, etaSeconds: 0 }), 'm')).toBe('loading m: caching · 291 / 291 tensors · 14.5 GiB / 14.5 GiB · 0 s left');
  });

  it('calls a local folder read "reading", as the page does, and a phase-less report just loading', () => {
    expect(formatLoadProgress(p({ phase: 'downloading', etaSeconds: 12.1 }), 'tiny', { local: true })).toBe('loading tiny: reading · 3 / 291 tensors · 1.5 GiB / 14.5 GiB · 13 s left');
    expect(formatLoadProgress(p({}), 'tiny')).toBe('loading tiny: 3 / 291 tensors · 1.5 GiB / 14.5 GiB');
  });
});

describe('loadProgressPrinter', () => {
  it('prints at most every 2 s, and always at a change of stage (loading, caching, from the cache) and at the end of one', () => {
    const lines: string[] = [];
    let now = 0;
    const report = loadProgressPrinter((l) => lines.push(l), 'm', { now: () => now });
    const at = (ms: number, o: Partial<LoadProgress>): void => {
      now = ms;
      report(p(o));
    };
    at(0, { phase: 'downloading', done: 1 }); // the first: printed
    at(500, { phase: 'quantising', done: 1 }); // too soon: downloading and quantising alternate tensor by tensor
    at(1999, { phase: 'downloading', done: 3 }); // too soon
    at(2000, { phase: 'quantising', done: 4 }); // 2 s on: printed
    at(2100, { phase: 'downloading', done: 5 }); // too soon
    at(2200, { phase: 'quantising', done: 291 }); // the last tensor: printed
    at(2300, { phase: 'caching', done: 1 }); // a new stage: printed at once
    at(2400, { phase: 'caching', done: 2 }); // too soon
    expect(lines.map((l) => / (\d+) \/ 291 tensors/.exec(l)?.[1])).toEqual(['1', '4', '291', '1']);
    expect(lines[1]).toMatch(/^loading m: quantising · /);
    expect(lines[3]).toMatch(/^loading m: caching · /);
  });
});
