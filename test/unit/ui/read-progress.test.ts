import { describe, expect, it } from 'vitest';
import { readProgressText } from '../../../src/ui/dataset-panel.ts';
import { everyFewMs } from '../../../src/run/session.ts';

describe("a data file's reading, as the dataset panel shows it", () => {
  it('says bytes and the share read, then the rate and the time left once a second has passed', () => {
    const MiB = 1024 * 1024;
    expect(readProgressText(10 * MiB, 150 * MiB, 0.5)).toBe('10.0 MiB of 150.0 MiB (6 %)');
    expect(readProgressText(41 * MiB, 150 * MiB, 8)).toBe('41.0 MiB of 150.0 MiB (27 %) · 5.4 MB/s · about 21 s left');
    expect(readProgressText(150 * MiB, 150 * MiB, 30)).toBe('150.0 MiB of 150.0 MiB (100 %) · 5.2 MB/s');
    expect(readProgressText(0, 0, 2)).toBe('0 B of 0 B (0 %)');
  });

  it('is reported to the page at most every 250 ms, and always at its end', () => {
    let t = 0;
    const seen: number[] = [];
    const report = everyFewMs((b) => seen.push(b), 1000, 250, () => t);
    for (const [ms, bytes] of [[100, 100], [200, 200], [260, 300], [300, 400], [520, 500], [530, 1000]]) {
      t = ms;
      report(bytes);
    }
    expect(seen).toEqual([300, 500, 1000]);
  });
});
