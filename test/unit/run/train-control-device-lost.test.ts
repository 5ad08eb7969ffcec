// A run's GPU device dropped under it (the worker's dropGpu, after another call met the loss): the run's TrainControl is
// told (lose), and the run ends at its pause point with that error instead of waiting there for a Resume that can never
// reach it (the worker has forgotten its session). The loop runs here on a stand-in runner and plan: what is tested is
// where the run stops, not the GPU work.
import { describe, expect, it } from 'vitest';
import { FinetuneError } from '../../../src/core/errors.ts';
import type { TrainingData } from '../../../src/data/batches.ts';
import type { GpuContext } from '../../../src/engine/gpu.ts';
import type { MistralRunner } from '../../../src/engine/mistral/model.ts';
import { train, TrainControl, type TrainerSettings } from '../../../src/run/trainer.ts';

const loss = (): FinetuneError => new FinetuneError('device-lost', 'the GPU device was lost (unknown): test');

/** Whether `p` has settled after the pending callbacks ran, and how: a wait that never ends reads 'pending'. */
async function outcome(p: Promise<unknown>): Promise<unknown> {
  const pending = new Promise((r) => setTimeout(() => r('pending'), 20));
  return Promise.race([p.then(() => 'resolved', (e: unknown) => e), pending]);
}

describe('TrainControl told that the device is lost', () => {
  it('ends a wait at a pause point with the loss', async () => {
    let t = 0;
    const control = new TrainControl(() => t);
    let held = 0;
    control.onPaused = () => held++;
    control.pause();
    const waiting = control.pausePoint();
    expect(await outcome(waiting)).toBe('pending');
    expect(held).toBe(1);
    expect(control.holding).toBe(true);
    t = 5000;
    const e = loss();
    control.lose(e);
    expect(await outcome(waiting)).toBe(e);
    // The wait was a pause: it counts as one, and the run no longer holds its adapter still.
    expect(control.holding).toBe(false);
    expect(control.pausedMs).toBe(5000);
  });

  it('ends a run that is not paused at its next pause point', async () => {
    const control = new TrainControl();
    const e = loss();
    control.lose(e);
    expect(await outcome(control.pausePoint())).toBe(e);
    // A Pause or a Stop asked afterwards does not hide it: the run cannot go on, nor save what it has.
    control.pause();
    expect(await outcome(control.pausePoint())).toBe(e);
    control.stop();
    expect(await outcome(control.pausePoint())).toBe(e);
  });

  it('keeps the first loss it was told', async () => {
    const control = new TrainControl();
    const first = loss();
    control.lose(first);
    control.lose(new FinetuneError('device-lost', 'the GPU device was replaced'));
    expect(await outcome(control.pausePoint())).toBe(first);
  });
});

describe('a training run whose device is dropped between steps', () => {
  /** Three one-micro-batch steps, no validation: the runner records the steps it computed. */
  function run(onReadLoss: (step: number) => void): { done: Promise<unknown>; computed: number[]; control: TrainControl } {
    const computed: number[] = [];
    const control = new TrainControl();
    const data = {
      stats: { totalSteps: 3, stepsByEpoch: [3], microBatchSize: 1, validation: { lossTokens: 0, paddedTokens: 0 } },
      accumulation: 1,
      step: (index: number) => ({ index, epoch: 0, stepInEpoch: index, tokens: 4, microBatches: [{ B: 1, T: 4, lossTokens: 4 }] }),
    } as unknown as TrainingData;
    let step = 0;
    const runner = {
      steps: 0,
      lora: null,
      zeroGrads: () => undefined,
      resetLoss: () => undefined,
      setBatch: () => undefined,
      forwardBackward: () => void computed.push(step + 1),
      measureGradients: () => undefined,
      readLoss: async () => {
        onReadLoss(++step);
        return 1;
      },
      readClip: async () => ({ norm: 1 }),
      applyUpdate: () => undefined,
    } as unknown as MistralRunner;
    const s: TrainerSettings = { learning_rate: 1e-4, lr_scheduler: 'constant', warmup_ratio: 0, weight_decay: 0, max_grad_norm: 1, eval_steps: 0, save_steps: 0, run_validation: false };
    const done = train({} as GpuContext, runner, data, s, {}, control);
    return { done, computed, control };
  }

  it('computes no further step and ends with the loss', async () => {
    const e = loss();
    // Told during step 1's read-back (a Try it call met the loss meanwhile): step 1 finishes, step 2 never begins.
    const r = run((step) => {
      if (step === 1) r.control.lose(e);
    });
    expect(await outcome(r.done)).toBe(e);
    expect(r.computed).toEqual([1]);
  });

  it('paused, ends with the loss', async () => {
    let paused = 0;
    const r = run((step) => {
      if (step === 1) r.control.pause();
    });
    r.control.onPaused = () => paused++;
    expect(await outcome(r.done)).toBe('pending');
    expect(paused).toBe(1);
    const e = loss();
    r.control.lose(e);
    expect(await outcome(r.done)).toBe(e);
    expect(r.computed).toEqual([1]);
  });
});
