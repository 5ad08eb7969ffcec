// The keys of a row of tabs (src/ui/dom.ts tabKeyTarget), as the WAI-ARIA tabs pattern has them: ArrowRight and
// ArrowLeft move to the next and previous tab, wrapping at the ends, Home and End to the first and last; a disabled tab
// (the model source tabs while a model loads) is passed over, and any other key is the page's.
import { describe, expect, it } from 'vitest';
import { tabKeyTarget } from '../../../src/ui/dom.ts';

const all = [true, true, true];

describe('tabKeyTarget', () => {
  it('moves to the next and previous tab with the arrows, wrapping at the ends', () => {
    expect(tabKeyTarget('ArrowRight', 0, all)).toBe(1);
    expect(tabKeyTarget('ArrowRight', 2, all)).toBe(0);
    expect(tabKeyTarget('ArrowLeft', 1, all)).toBe(0);
    expect(tabKeyTarget('ArrowLeft', 0, all)).toBe(2);
  });

  it('moves to the first and the last tab with Home and End', () => {
    expect(tabKeyTarget('Home', 2, all)).toBe(0);
    expect(tabKeyTarget('End', 0, all)).toBe(2);
  });

  it('passes over disabled tabs', () => {
    expect(tabKeyTarget('ArrowRight', 0, [true, false, true])).toBe(2);
    expect(tabKeyTarget('ArrowLeft', 2, [true, false, true])).toBe(0);
    expect(tabKeyTarget('ArrowLeft', 1, [false, true, true])).toBe(2);
    expect(tabKeyTarget('Home', 2, [false, true, true])).toBe(1);
    expect(tabKeyTarget('End', 0, [true, true, false])).toBe(1);
  });

  it('leaves the key alone where it moves nowhere: no other tab to go to, or a key the tabs do not take', () => {
    expect(tabKeyTarget('ArrowRight', 0, [true, false, false])).toBeNull();
    expect(tabKeyTarget('Home', 0, all)).toBeNull();
    expect(tabKeyTarget('End', 2, all)).toBeNull();
    expect(tabKeyTarget('ArrowDown', 0, all)).toBeNull();
    expect(tabKeyTarget('Tab', 0, all)).toBeNull();
    expect(tabKeyTarget('Enter', 0, all)).toBeNull();
  });
});
