// Small uPlot charts made inside panels that re-render: sized to their container once it is laid out and whenever its
// width changes, and let go (canvas destroyed, observer disconnected) once a re-render has detached them.

import type uPlot from 'uplot';

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
