// A LossChart that draws nothing, for tests of the Training panel on the fake DOM (test/helpers/panel-on-fake-dom.ts).
export class LossChart {
  readonly element = document.createElement('div');
  addStep(): void {}
  addValidation(): void {}
  reset(): void {}
  setTotal(): void {}
}
