// The loss chart (uPlot): training loss per optimizer step as a thin line with its smoothed trend over it, validation
// loss as points at the steps it was measured joined by a dashed line, on one linear y axis. The container carries data-train-points / data-val-points for automation, and is an
// image to assistive technology, labelled with what the curve shows (a canvas says nothing by itself).

import { passPlace } from '../core/run-words.ts';
import uPlot from 'uplot';
import 'uplot/dist/uPlot.min.css';
import { h } from './dom.ts';
import { formatCount, formatLoss } from './format.ts';
import { CHART_ACCENT, CHART_AXIS, CHART_GRID, CHART_WARN, chartFont, recordedTicks, stepCursor, WHOLE_INCRS } from './chart-size.ts';

export interface LossPoint {
  step: number;
  loss: number;
  valLoss?: number;
}

/** One step of the chart: its training loss, its validation loss, either null where none was measured. */
export interface ChartPoint {
  step: number;
  loss: number | null;
  valLoss: number | null;
}

/** The lowest finite value of `key` and its step; null when there is none (NaN is no minimum). */
function lowest(points: readonly ChartPoint[], key: 'loss' | 'valLoss'): ChartPoint | null {
  let best: ChartPoint | null = null;
  for (const p of points) {
    const v = p[key];
    if (v !== null && Number.isFinite(v) && (best === null || v < (best[key] as number))) best = p;
  }
  return best;
}

/**
 * The chart in words, for a screen reader: the first and last training loss, the lowest when it lies between them
 * (where the curve turned), and the latest validation loss with the lowest when that came earlier (overfitting shows
 * there). A loss that is not a number is said as it is: a diverged run must not read as its last good value.
 */
export function lossChartLabel(points: readonly ChartPoint[]): string {
  const byStep = [...points].sort((a, b) => a.step - b.step);
  const train = byStep.filter((p) => p.loss !== null);
  const val = byStep.filter((p) => p.valLoss !== null);
  if (train.length === 0 && val.length === 0) return 'No loss yet: the curve appears when training starts.';
  // Step 0 is the validation before the first step (eval_on_start).
  const at = (v: number | null, p: ChartPoint): string => `${formatLoss(v)} ${passPlace(p.step, `at step ${formatCount(p.step)}`)}`;
  let text: string;
  if (train.length === 0) text = 'No training loss yet';
  else if (train.length === 1) text = `Training loss ${at(train[0].loss, train[0])}`;
  else {
    const first = train[0];
    const last = train[train.length - 1];
    const low = lowest(train, 'loss');
    const turn = low && low !== first && low !== last ? ` (lowest ${at(low.loss, low)})` : '';
    text = `Training loss over ${formatCount(train.length)} steps: ${at(first.loss, first)}, ${at(last.loss, last)}${turn}`;
  }
  if (val.length > 0) {
    const latest = val[val.length - 1];
    const low = lowest(val, 'valLoss');
    const earlier = low && low !== latest ? ` (lowest ${at(low.valLoss, low)})` : '';
    // The baseline first, where there is one and a later pass: the curve is read against it.
    const first = val[0].step === 0 && val[0] !== latest ? `${at(val[0].valLoss, val[0])}, ` : '';
    text += `; validation loss ${first}${at(latest.valLoss, latest)}${earlier}`;
  }
  return `${text}.`;
}

/**
 * The smoothing weight for a run of `totalSteps` steps: TensorBoard's default 0.6 for short runs, more for long ones
 * (about ten steps' memory at 100 steps and beyond), never past 0.95 so that a turn in the curve still shows.
 */
export function smoothingWeight(totalSteps: number): number {
  return Math.min(0.95, Math.max(0.6, 1 - 10 / Math.max(1, totalSteps)));
}

/**
 * The training losses smoothed as TensorBoard smooths them: an exponential moving average with weight `weight` on
 * the past, debiased (divided by 1 − weight^n after n values) so that the first steps are not pulled towards 0. A
 * missing or non-finite loss (a skipped or diverged step) gets no smoothed value and leaves the average as it was:
 * a NaN would poison every later point, and the raw line shows it as it is.
 */
export function smoothedLosses(losses: readonly (number | null)[], weight: number): (number | null)[] {
  let ema = 0;
  let n = 0;
  return losses.map((v) => {
    if (v === null || !Number.isFinite(v)) return null;
    ema = weight * ema + (1 - weight) * v;
    n++;
    return ema / (1 - weight ** n);
  });
}

/**
 * What the legend says while the pointer is off the chart (uPlot shows "—" for every series then): the latest step and
 * each series' latest value, with its step where that is an earlier one (validation runs every eval_steps, a step's
 * loss can be missing). `series` are the chart's y series in legend order; a loss that is not a number is said as it is.
 */
export function restingLegend(steps: readonly number[], series: readonly (readonly (number | null)[])[]): string[] {
  const lastStep = steps[steps.length - 1];
  const stepText = lastStep === undefined ? '—' : formatCount(lastStep);
  return [
    stepText,
    ...series.map((values) => {
      for (let i = values.length - 1; i >= 0; i--) {
        const v = values[i];
        if (v === null) continue;
        return steps[i] === lastStep ? formatLoss(v) : `${formatLoss(v)} (${passPlace(steps[i], `step ${formatCount(steps[i])}`)})`;
      }
      return '—';
    }),
  ];
}

const TRAIN = CHART_ACCENT;
const TRAIN_RAW = 'rgba(122, 162, 255, 0.55)';
const VAL = CHART_WARN;
const AXIS = CHART_AXIS;
const GRID = CHART_GRID;
const FONT = chartFont(12);

export class LossChart {
  readonly element: HTMLElement;
  private readonly plotHost: HTMLElement;
  private readonly empty: HTMLElement;
  private plot: uPlot | null = null;
  private steps: number[] = [];
  private losses: (number | null)[] = [];
  private valLosses: (number | null)[] = [];
  private totalSteps = 0;
  private resize: ResizeObserver | null = null;
  /** The legend's text per series while the pointer is off the chart (restingLegend of the data last drawn). */
  private resting: string[] = [];

  constructor(private readonly height = 320) {
    this.plotHost = h('div', { class: 'plot' });
    this.empty = h('p', { class: 'chart-empty hint' }, 'The loss curve appears here when training starts.');
    this.element = h(
      'div',
      { class: 'loss-chart', 'data-testid': 'loss-chart', 'data-train-points': 0, 'data-val-points': 0, role: 'img', 'aria-label': lossChartLabel([]) },
      this.empty,
      this.plotHost,
    );
  }

  /**
   * Starts over with these points (a resumed run brings its history), and `baseline` (the validation loss before the
   * first step, eval_on_start) as a validation point at step 0 where there is one.
   */
  reset(points: readonly LossPoint[] = [], totalSteps = 0, baseline: number | null = null): void {
    this.steps = [];
    this.losses = [];
    this.valLosses = [];
    this.totalSteps = totalSteps;
    if (baseline !== null) this.put(0, null, baseline);
    for (const p of points) this.put(p.step, p.loss, p.valLoss);
    this.redraw();
  }

  setTotal(totalSteps: number): void {
    this.totalSteps = totalSteps;
    this.redraw();
  }

  addStep(step: number, loss: number): void {
    this.put(step, loss, undefined);
    this.redraw();
  }

  addValidation(step: number, valLoss: number): void {
    const i = this.steps.indexOf(step);
    if (i >= 0) this.valLosses[i] = valLoss;
    else this.put(step, null, valLoss);
    this.redraw();
  }

  private put(step: number, loss: number | null, valLoss: number | undefined): void {
    const i = this.steps.indexOf(step);
    if (i >= 0) {
      // A step seen again (a resume from an earlier checkpoint): the new value wins.
      this.losses[i] = loss;
      if (valLoss !== undefined) this.valLosses[i] = valLoss;
      return;
    }
    let at = this.steps.length;
    while (at > 0 && this.steps[at - 1] > step) at--;
    this.steps.splice(at, 0, step);
    this.losses.splice(at, 0, loss);
    this.valLosses.splice(at, 0, valLoss ?? null);
  }

  private redraw(): void {
    const trainPoints = this.losses.filter((x) => x !== null).length;
    const valPoints = this.valLosses.filter((x) => x !== null).length;
    this.element.dataset.trainPoints = String(trainPoints);
    this.element.dataset.valPoints = String(valPoints);
    this.empty.hidden = this.steps.length > 0;
    this.element.setAttribute('aria-label', lossChartLabel(this.steps.map((step, i) => ({ step, loss: this.losses[i], valLoss: this.valLosses[i] }))));
    const weight = smoothingWeight(Math.max(this.totalSteps, this.steps.length));
    this.element.dataset.smoothing = String(weight);
    const smoothed = smoothedLosses(this.losses, weight);
    const data: uPlot.AlignedData = [this.steps, this.losses, this.valLosses, smoothed];
    // Before setData: it rewrites the legend, which reads these while the pointer is off the chart.
    this.resting = restingLegend(this.steps, [this.losses, this.valLosses, smoothed]);
    if (!this.plot) {
      if (this.steps.length === 0) return;
      this.create(data);
    } else this.plot.setData(data);
  }

  private width(): number {
    return Math.max(240, Math.floor(this.element.clientWidth || 640));
  }

  private create(data: uPlot.AlignedData): void {
    const axis = (label: string): uPlot.Axis => ({
      label,
      stroke: AXIS,
      font: FONT,
      labelFont: '12px ui-sans-serif, system-ui, sans-serif',
      grid: { stroke: GRID, width: 1 },
      ticks: { stroke: GRID, width: 1 },
    });
    const opts: uPlot.Options = {
      width: this.width(),
      height: this.height,
      cursor: stepCursor(),
      legend: { show: true, live: true },
      scales: {
        x: {
          time: false,
          // Step 1 to the planned last step, so the curve fills the chart as the run goes. From the steps themselves,
          // not uPlot's min and max: for a single point it pads them on both sides, which drew a step 0.
          range: () => [Math.min(this.steps[0] ?? 1, 1) - 0.5, Math.max(this.steps[this.steps.length - 1] ?? 1, this.totalSteps, 1) + 0.5],
        },
        y: {
          range: (_u, min, max) => {
            if (!Number.isFinite(min) || !Number.isFinite(max)) return [0, 1];
            const pad = Math.max((max - min) * 0.08, Math.abs(max) * 0.02, 1e-3);
            return [Math.max(0, min - pad), max + pad];
          },
        },
      },
      axes: [
        // Steps are whole numbers: ticks and grid lines only there.
        { ...axis('step'), incrs: WHOLE_INCRS, values: recordedTicks(this.element, 'x', String) },
        { ...axis('loss'), size: 56 },
      ],
      series: [
        // Off the chart (idx null) the legend reads the latest values (restingLegend), on it the step under the pointer.
        { label: 'step', value: (_u, v, s, i) => (i === null ? this.resting[s] : v === null || v === undefined ? '—' : String(v)) },
        {
          // Each step's own loss, thin and faint: the smoothed line below carries the trend (a micro-batch's loss
          // varies with its rows far more than the adapter changes from one step to the next).
          label: 'train loss',
          stroke: TRAIN_RAW,
          width: 1,
          fill: 'rgba(122, 162, 255, 0.06)',
          spanGaps: true,
          points: { show: (u) => u.data[0].length <= 60, size: 4, fill: TRAIN_RAW, stroke: TRAIN_RAW },
          value: (_u, v, s, i) => (i === null ? this.resting[s] : formatLoss(v)),
        },
        {
          // Its points joined by a dashed line across the steps between them: the validation's trend, from the pass
          // before training (step 0, eval_on_start) on, reads at a glance beside the training curve's noise.
          label: 'validation loss',
          stroke: VAL,
          width: 1.5,
          dash: [6, 4],
          spanGaps: true,
          points: { show: true, size: 9, fill: VAL, stroke: '#0f1115', width: 1.5 },
          value: (_u, v, s, i) => (i === null ? this.resting[s] : formatLoss(v)),
        },
        {
          label: 'smoothed',
          stroke: TRAIN,
          width: 2.5,
          spanGaps: true,
          points: { show: false },
          value: (_u, v, s, i) => (i === null ? this.resting[s] : formatLoss(v)),
        },
      ],
    };
    this.plot = new uPlot(opts, data, this.plotHost);
    this.resize = new ResizeObserver(() => {
      if (this.plot) this.plot.setSize({ width: this.width(), height: this.height });
    });
    this.resize.observe(this.element);
  }
}
