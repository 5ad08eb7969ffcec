// Time-based checkpoints: besides every `save_steps` steps (or each epoch's end), a run saves once enough minutes have
// passed since its last save, so that a killed job loses minutes, not an epoch. The clock is passed in, so that tests
// can drive it.

export type Clock = () => number;

/** Monotonic, sub-millisecond where the platform has it: it also times steps of a few milliseconds (src/run/trainer.ts). */
export const systemClock: Clock = () => (typeof performance !== 'undefined' ? performance.now() : Date.now());

export class SaveTimer {
  private last: number;

  /** `minutes` 0 turns time-based saves off. */
  constructor(
    private readonly minutes: number,
    private readonly clock: Clock = systemClock,
  ) {
    this.last = clock();
  }

  /** Whether a checkpoint is due by time now. */
  get due(): boolean {
    return this.minutes > 0 && this.clock() - this.last >= this.minutes * 60_000;
  }

  /** A checkpoint was just saved (by time or by steps): the next one is due `minutes` from now. */
  saved(): void {
    this.last = this.clock();
  }
}
