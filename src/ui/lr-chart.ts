// The planned learning rate by optimizer step (uPlot): what warmup_ratio, lr_scheduler and the run's length make of
// learning_rate, before a run starts — a 3 % warmup of 14 steps is one step at rate 0, which a line shows and a number
// does not. An image to assistive technology, labelled with the curve's turning points in words.

import uPlot from 'uplot';
import 'uplot/dist/uPlot.min.css';
import { h } from './dom.ts';
import { formatCount } from './format.ts';
import { CHART_ACCENT, CHART_AXIS, CHART_GRID, CHART_WARN, chartFont, drawVerticalMark, FIRST_WIDTH, fitChartWidth, recordedTicks, stepCursor, WHOLE_INCRS } from './chart-size.ts';

const LINE = CHART_ACCENT;
const MARK = CHART_WARN;
const AXIS = CHART_AXIS;
const GRID = CHART_GRID;
const FONT = chartFont(11);
const HEIGHT = 120;

const rate = (v: number): string => (v === 0 ? '0' : v.toExponential(2));

/** Where the rates peak: the first index of the highest (a loop: a spread of a long run's rates overflows the stack). */
function peakIndex(rates: readonly number[]): number {
  let peak = 0;
  rates.forEach((r, i) => {
    if (r > rates[peak]) peak = i;
  });
  return peak;
}

/** The curve in words: where it starts, peaks and ends. */
export function lrCurveLabel(curve: { steps: number[]; rates: number[] }): string {
  const { steps, rates } = curve;
  if (steps.length === 0) return 'No learning rate: the run has no steps.';
  const peak = peakIndex(rates);
  const last = steps.length - 1;
  const peakText = peak === 0 || peak === last ? '' : `, reaches ${rate(rates[peak])} at step ${formatCount(steps[peak])}`;
  return `Learning rate by step: ${rate(rates[0])} at step ${formatCount(steps[0])}${peakText}, ${rate(rates[last])} at step ${formatCount(steps[last])}.`;
}

/**
 * What the legend says while the pointer is off the chart (uPlot shows "—" for every series then), [step, learning
 * rate]: the run's current step and its rate while a run marks one (markLrStep), else the steps' range and the peak.
 */
export function lrRestingLegend(curve: { steps: number[]; rates: number[] }, currentStep: number | null): string[] {
  const { steps, rates } = curve;
  if (steps.length === 0) return ['—', '—'];
  const at = currentStep === null ? -1 : steps.indexOf(currentStep);
  if (at >= 0) return [`${formatCount(steps[at])} (now)`, rate(rates[at])];
  const first = steps[0];
  const last = steps[steps.length - 1];
  return [first === last ? formatCount(first) : `${formatCount(first)}–${formatCount(last)}`, `peak ${rate(rates[peakIndex(rates)])}`];
}

/** The step markLrStep last set on a chart's element, or null. */
function markedStep(element: HTMLElement): number | null {
  const step = Number(element.dataset.currentStep);
  return element.dataset.currentStep && Number.isFinite(step) ? step : null;
}

/** Each chart's plot, for markLrStep (the element is what the panel holds). */
const plots = new WeakMap<HTMLElement, uPlot>();

/**
 * Marks the run's current optimizer step on a chart made by lrChartView (a vertical line; null: none), and says it in
 * data-current-step. The panel calls it at each step: the curve itself is drawn once per plan.
 */
export function markLrStep(element: HTMLElement, step: number | null): void {
  const now = step === null ? undefined : String(step);
  if (element.dataset.currentStep === now) return;
  if (now === undefined) delete element.dataset.currentStep;
  else element.dataset.currentStep = now;
  const plot = plots.get(element);
  if (!plot) return;
  plot.redraw(false, false);
  // The legend as it stands (a pointer over the chart keeps its step; off it, the resting text now names this step).
  plot.setLegend({});
}

export function lrChartView(curve: { steps: number[]; rates: number[] }, testid: string): HTMLElement | null {
  if (curve.steps.length === 0) return null;
  const host = h('div', { class: 'plot' });
  const element = h(
    'figure',
    { class: 'lr-chart', 'data-testid': testid, 'data-points': curve.steps.length, role: 'img', 'aria-label': lrCurveLabel(curve) },
    host,
    h('figcaption', { class: 'hint' }, 'Learning rate by optimizer step, as learning_rate, warmup_ratio and lr_scheduler set it.'),
  );
  const last = curve.steps[curve.steps.length - 1];
  const resting = (s: number): string => lrRestingLegend(curve, markedStep(element))[s];
  const opts: uPlot.Options = {
    width: FIRST_WIDTH,
    height: HEIGHT,
    cursor: stepCursor(),
    legend: { show: true, live: true },
    // Half a step beyond the first and the last, as on the loss chart: both ends are inside the plot, where a pointer
    // (or the loss chart's, through the shared cursor) can rest on them.
    scales: { x: { time: false, range: () => [0.5, Math.max(1, last) + 0.5] }, y: { range: (_u, _min, max) => [0, Math.max(max, 1e-12) * 1.1] } },
    axes: [
      // Optimizer steps are whole numbers: ticks only there.
      { stroke: AXIS, font: FONT, grid: { show: false }, ticks: { stroke: GRID, width: 1 }, incrs: WHOLE_INCRS, values: recordedTicks(element, 'x', formatCount) },
      { stroke: AXIS, font: FONT, size: 64, grid: { stroke: GRID, width: 1 }, ticks: { stroke: GRID, width: 1 }, values: (_u, splits) => splits.map((v) => rate(v)) },
    ],
    series: [
      { label: 'step', value: (_u, v, s, i) => (i === null ? resting(s) : v === null || v === undefined ? '—' : formatCount(v)) },
      { label: 'learning rate', stroke: LINE, width: 2, fill: 'rgba(122, 162, 255, 0.08)', points: { show: (u) => u.data[0].length <= 30, size: 4 }, value: (_u, v, s, i) => (i === null ? resting(s) : v === null || v === undefined ? '—' : rate(v)) },
    ],
    hooks: {
      draw: [
        (u) => {
          // Where the run is (markLrStep): a line at its current step.
          const step = markedStep(element);
          if (step !== null) drawVerticalMark(u, step, MARK);
        },
      ],
    },
  };
  const plot = new uPlot(opts, [curve.steps, curve.rates], host);
  plots.set(element, plot);
  fitChartWidth(element, plot, HEIGHT);
  return element;
}
