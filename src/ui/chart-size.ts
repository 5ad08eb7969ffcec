// What the page's uPlot charts share: one palette (the page's accent and warning colours, the muted axes), and, for the
// small charts made inside panels that re-render, a size that follows their container once it is laid out and whenever
// its width changes, and letting go (canvas destroyed, observer disconnected) once a re-render has detached them.

import type uPlot from 'uplot';

export const CHART_ACCENT = '#7aa2ff';
export const CHART_WARN = '#f0b429';
export const CHART_AXIS = '#9aa3b2';
export const CHART_GRID = 'rgba(154, 163, 178, 0.12)';
/** The axes' figures, at `px` pixels (the loss chart 12, the small ones 11). */
export const chartFont = (px: number): string => `${px}px ui-monospace, SFMono-Regular, Menlo, monospace`;

/** Fits `plot` to `element`'s width (at least `minWidth`) at `height`, until `element` leaves the document. */
export function fitChartWidth(element: HTMLElement, plot: uPlot, height: number, minWidth = 200): void {
  const resize = new ResizeObserver(() => {
    if (!element.isConnected) {
      resize.disconnect();
      plot.destroy();
      return;
    }
    plot.setSize({ width: Math.max(minWidth, Math.floor(element.clientWidth)), height });
  });
  resize.observe(element);
}

/** The width to make a chart before it is laid out (clientWidth 0): what the panel usually gives it. */
export const FIRST_WIDTH = 320;

/**
 * Tick steps for an axis of whole numbers (optimizer steps, tokens, rows): 1, 2, 5 × 10^k. uPlot's own steps include
 * 2.5 and 0.1 ×, which put a tick at 2.5 tokens, labelled "3" once formatted as a count.
 */
export const WHOLE_INCRS: number[] = Array.from({ length: 10 }, (_, k) => [1, 2, 5].map((m) => m * 10 ** k)).flat();

/**
 * The cursor of every chart whose x axis is the run's optimizer steps (the loss curve, the learning rate): the pointer
 * on one puts the others' cursors, and their legends, at the same step (the learning rate at a bump in the loss).
 */
export function stepCursor(): uPlot.Cursor {
  // A new object per chart: uPlot keeps the options it is given.
  return { drag: { x: false, y: false }, sync: { key: 'optimizer-steps' } };
}

/**
 * An axis's labels, made from uPlot's splits by `label`, and written onto `element` as data-`name`-ticks
 * ("value=label" pairs, for automation: the canvas has no text to read).
 */
export function recordedTicks(element: HTMLElement, name: string, label: (v: number) => string): (u: uPlot, splits: number[]) => string[] {
  return (_u, splits) => {
    const labels = splits.map(label);
    element.setAttribute(`data-${name}-ticks`, splits.map((v, i) => `${v}=${labels[i]}`).join(' '));
    return labels;
  };
}

/** A dashed vertical line across the plot at x = `value` (max_seq_len on the length bars, the run's step on the rates). */
export function drawVerticalMark(u: uPlot, value: number, color: string): void {
  const x = Math.round(u.valToPos(value, 'x', true));
  const c = u.ctx;
  c.save();
  c.strokeStyle = color;
  c.setLineDash([4, 3]);
  c.lineWidth = 1.5 * devicePixelRatio;
  c.beginPath();
  c.moveTo(x, u.bbox.top);
  c.lineTo(x, u.bbox.top + u.bbox.height);
  c.stroke();
  c.restore();
}
