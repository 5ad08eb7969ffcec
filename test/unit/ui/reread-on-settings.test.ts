// When the dataset panel reads its files again (src/ui/reread-on-settings.ts): once the settings settle on a valid
// value other than the one the shown figures were read with.
import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest';
import { RereadOnSettings } from '../../../src/ui/reread-on-settings.ts';

describe('RereadOnSettings', () => {
  beforeEach(() => vi.useFakeTimers());
  afterEach(() => vi.useRealTimers());

  /** A panel whose files were read with `key`, and what its re-reads read with (the form's value when they run). */
  function panel(key: string) {
    let form: string | null = key;
    const reads: string[] = [];
    const r = new RereadOnSettings(() => {
      reads.push(form ?? 'INVALID');
      r.readWithKey(form ?? 'INVALID');
    });
    r.readWithKey(key);
    const type = (k: string | null) => {
      form = k;
      r.formChanged(k);
      vi.advanceTimersByTime(100); // a keystroke
    };
    return { reads, type };
  }

  it('typing 40960 over 256 (through a valid 4096) and back to 4096 reads once, with 4096: never with the invalid value', () => {
    const p = panel('replicate|256');
    for (const k of ['replicate|4', 'replicate|40', 'replicate|409', 'replicate|4096', null]) p.type(k);
    vi.advanceTimersByTime(1000);
    expect(p.reads).toEqual([]); // the pending re-read of 4096 was dropped when the value went invalid
    p.type('replicate|4096');
    vi.advanceTimersByTime(1000);
    expect(p.reads).toEqual(['replicate|4096']);
  });

  it('reads again after a pause in typing, not per keystroke, and not when the value comes back to what was read', () => {
    const p = panel('replicate|256');
    for (const k of ['replicate|2', 'replicate|25', 'replicate|256']) p.type(k);
    vi.advanceTimersByTime(1000);
    expect(p.reads).toEqual([]);
    p.type('instruct|256');
    expect(p.reads).toEqual([]);
    vi.advanceTimersByTime(400);
    expect(p.reads).toEqual(['instruct|256']);
  });

  it('reads nothing before the files were first read', () => {
    const reads: number[] = [];
    const r = new RereadOnSettings(() => reads.push(1));
    r.formChanged('replicate|512');
    vi.advanceTimersByTime(1000);
    expect(reads).toEqual([]);
  });
});
