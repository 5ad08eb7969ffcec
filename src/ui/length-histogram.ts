// The dataset's rows by length in tokens (before truncation) as bars (uPlot), with max_seq_len marked: whether
// max_seq_len cuts a long tail or half the data is seen at a glance, where the summary's min / median / max does not
// say it. Rows longer than max_seq_len are drawn in the warning colour, stacked on those that fit in a bin across it.
// The container is an image to assistive technology, labelled with the same facts in words, and carries data-* counts
// for automation.

import uPlot from 'uplot';
import 'uplot/dist/uPlot.min.css';
import type { LengthHistogram } from '../worker/api.ts';
import { h } from './dom.ts';
import { formatCount } from './format.ts';
import { CHART_ACCENT, CHART_AXIS, CHART_GRID, CHART_WARN, chartFont, drawVerticalMark, FIRST_WIDTH, fitChartWidth, recordedTicks, WHOLE_INCRS } from './chart-size.ts';

const FITS = CHART_ACCENT;
const TRUNCATED = CHART_WARN;
const MARK = CHART_WARN;
const AXIS = CHART_AXIS;
const GRID = CHART_GRID;
const FONT = chartFont(11);
const HEIGHT = 150;

/** The bars in words: how many rows, over what range of lengths, and what max_seq_len truncates. */
export function histogramLabel(hist: LengthHistogram, maxSeqLen: number): string {
  const rows = hist.fits.reduce((a, b) => a + b, 0) + hist.truncated.reduce((a, b) => a + b, 0);
  const cut = hist.truncated.reduce((a, b) => a + b, 0);
  let fullest = 0;
  hist.fits.forEach((_, i) => {
    if (hist.fits[i] + hist.truncated[i] > hist.fits[fullest] + hist.truncated[fullest]) fullest = i;
  });
  // A row has a token at least (its <s>): bin 0 holds 1 … binWidth.
  const lo = fullest * hist.binWidth + 1;
  const hi = (fullest + 1) * hist.binWidth;
  const most = `most rows (${formatCount(hist.fits[fullest] + hist.truncated[fullest])}) have ${lo === hi ? formatCount(hi) : `${formatCount(lo)}–${formatCount(hi)}`} tokens`;
  const tail = cut > 0 ? `${formatCount(cut)} of ${formatCount(rows)} rows are longer than max_seq_len ${formatCount(maxSeqLen)} and are truncated` : `every row fits max_seq_len ${formatCount(maxSeqLen)}`;
  return `Rows by length in tokens: ${most}; ${tail}.`;
}

/**
 * What the legend says while the pointer is off the bars (uPlot shows "—" for every series then): the totals over all
 * lengths, [tokens, truncated, fit]. Over a bar it says that bin's lengths and rows.
 */
export function histogramRestingLegend(hist: LengthHistogram): string[] {
  const sum = (xs: readonly number[]): number => xs.reduce((a, b) => a + b, 0);
  return ['all lengths', formatCount(sum(hist.truncated)), formatCount(sum(hist.fits))];
}

/** The chart, or null when there are no rows to draw. */
export function lengthHistogramView(hist: LengthHistogram, maxSeqLen: number, testid: string): HTMLElement | null {
  const bins = hist.fits.length;
  const total = hist.fits.map((f, i) => f + hist.truncated[i]);
  if (total.every((n) => n === 0)) return null;
  const cut = hist.truncated.reduce((a, b) => a + b, 0);
  const host = h('div', { class: 'plot' });
  const element = h(
    'figure',
    {
      class: 'length-histogram',
      'data-testid': testid,
      'data-bins': bins,
      'data-bin-width': hist.binWidth,
      'data-truncated-rows': cut,
      role: 'img',
      'aria-label': histogramLabel(hist, maxSeqLen),
    },
    host,
    h('figcaption', { class: 'hint' }, `Rows by length in tokens before truncation (bins of ${formatCount(hist.binWidth)})${cut > 0 ? `; the line is max_seq_len ${formatCount(maxSeqLen)}` : ''}.`),
  );
  // Bars at the middle of each bin: 1 … binWidth is drawn around binWidth / 2.
  const xs = total.map((_, i) => (i + 0.5) * hist.binWidth);
  const xMax = bins * hist.binWidth;
  const bars = uPlot.paths.bars!({ size: [0.92, Infinity], gap: 1 });
  const resting = histogramRestingLegend(hist);
  const opts: uPlot.Options = {
    width: FIRST_WIDTH,
    height: HEIGHT,
    cursor: { drag: { x: false, y: false }, points: { show: false } },
    legend: { show: true, live: true },
    scales: { x: { time: false, range: () => [0, xMax] }, y: { range: (_u, _min, max) => [0, Math.max(1, max) * 1.08] } },
    axes: [
      // Lengths and row counts are whole numbers: ticks only there.
      { stroke: AXIS, font: FONT, grid: { show: false }, ticks: { stroke: GRID, width: 1 }, incrs: WHOLE_INCRS, values: recordedTicks(element, 'x', formatCount) },
      { stroke: AXIS, font: FONT, size: 44, grid: { stroke: GRID, width: 1 }, ticks: { stroke: GRID, width: 1 }, incrs: WHOLE_INCRS, values: recordedTicks(element, 'y', formatCount) },
    ],
    series: [
      {
        label: 'tokens',
        value: (_u, v, _s, idx) => {
          if (idx === null) return resting[0];
          if (v === null || v === undefined) return '—';
          const i = Math.round(v / hist.binWidth - 0.5);
          return hist.binWidth === 1 ? formatCount(i + 1) : `${formatCount(i * hist.binWidth + 1)}–${formatCount((i + 1) * hist.binWidth)}`;
        },
      },
      // Drawn first and as tall as the bin's rows: what the next series leaves visible is the truncated part.
      { label: 'truncated', fill: TRUNCATED, stroke: TRUNCATED, paths: bars, points: { show: false }, value: (_u, _v, _s, i) => (i === null ? resting[1] : formatCount(hist.truncated[i])) },
      { label: 'fit', fill: FITS, stroke: FITS, paths: bars, points: { show: false }, value: (_u, _v, _s, i) => (i === null ? resting[2] : formatCount(hist.fits[i])) },
    ],
    hooks: {
      draw: [
        (u) => {
          // max_seq_len, where it falls inside the drawn lengths.
          if (maxSeqLen < xMax) drawVerticalMark(u, maxSeqLen, MARK);
        },
      ],
    },
  };
  // An empty bin is no bar at all (a zero would still draw its outline on the axis).
  const bar = (n: number): number | null => (n > 0 ? n : null);
  const plot = new uPlot(opts, [xs, total.map(bar), hist.fits.map(bar)], host);
  // Sized to the panel once it is laid out, and again when the panel's width changes.
  // A file read again replaces the chart: the detached one lets go of its canvas.
  fitChartWidth(element, plot, HEIGHT);
  return element;
}
