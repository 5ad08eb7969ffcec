// What the Training panel shows when the time estimate fails (src/ui/estimate-view.ts): the reason, and a button that
// measures again. It offered nothing but changing the form, so a measurement that failed once (the GPU busy with
// another tab, a lost device) stayed failed until a hyperparameter was touched.
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { estimateFailureView } from '../../../src/ui/estimate-view.ts';
import { asFake, installFakeDocument } from '../../helpers/fake-dom.ts';

let restore: () => void;
beforeEach(() => (restore = installFakeDocument()));
afterEach(() => restore());

describe('estimateFailureView', () => {
  it('says why there is no estimate and offers "Measure again", which measures again on each click', () => {
    let asked = 0;
    const nodes = estimateFailureView('the GPU device was lost (the driver reset it)', () => asked++).map(asFake);
    const message = nodes.map((n) => n.byTestId('train-estimate-failed')).find((n) => n !== null);
    expect(message?.textContent).toBe('No time estimate: the GPU device was lost (the driver reset it)');
    const again = nodes.map((n) => n.byTestId('train-estimate-again')).find((n) => n !== null);
    expect(again?.tagName).toBe('BUTTON');
    expect(again?.getAttribute('type')).toBe('button');
    expect(again?.textContent).toBe('Measure again');
    expect(asked).toBe(0);
    again?.click();
    expect(asked).toBe(1);
    again?.click();
    expect(asked).toBe(2);
  });
});
