// A large data file is read and tokenised with lines on stderr (an 81 MB file once took 16 s in silence).
import { describe, expect, it } from 'vitest';
import { dataProgressPrinter, formatDataProgress } from '../../../src/cli/data-progress.ts';

describe('the data files\' progress on stderr', () => {
  it('says bytes, share, rate and time left', () => {
    expect(formatDataProgress('--data "big.jsonl"', 40 * 2 ** 20, 80 * 2 ** 20, 4)).toBe('reading --data "big.jsonl": 40.0 MiB / 80.0 MiB (50 %) · 10.5 MB/s · 4 s left');
    expect(formatDataProgress('--data "big.jsonl"', 80 * 2 ** 20, 80 * 2 ** 20, 8)).toBe('reading --data "big.jsonl": 80.0 MiB / 80.0 MiB (100 %) · 10.5 MB/s');
  });

  it('is silent for a quick read, then prints at most every 2 s, and the end once it has spoken', () => {
    let t = 0;
    const lines: string[] = [];
    const quick = dataProgressPrinter((l) => lines.push(l), 'q', 100, { now: () => t });
    t = 500;
    quick(50);
    t = 1000;
    quick(100);
    expect(lines).toEqual([]);

    t = 0;
    const slow = dataProgressPrinter((l) => lines.push(l), 's', 1000, { now: () => t });
    for (t = 100; t <= 5000; t += 100) slow(Math.min(999, t / 5));
    expect(lines.map((l) => l.split(':')[1].split(' / ')[0].trim())).toEqual(['400 B', '800 B']); // at 2 s and 4 s
    t = 5100;
    slow(1000);
    expect(lines.at(-1)).toMatch(/^reading s: 1000 B \/ 1000 B \(100 %\)/);
  });
});
