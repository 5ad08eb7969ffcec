// Per-dispatch GPU time from timestamp queries, for profiling a piece of work (`finetune bench profile`): while a
// profiler is attached to the context (GpuContext.profileDispatches), every dispatch gets a compute pass of its own with
// a timestamp written at its start and its end. The separate passes and the queries cost a little time of their own,
// so a caller compares the sum with an unprofiled wall-clock time of the same work. Needs the optional
// 'timestamp-query' feature; never on during training.

import { FinetuneError } from '../core/errors.ts';
import type { KernelSpec } from './registry.ts';

/** One profiled dispatch: its kernel and its GPU time. */
export interface ProfiledDispatch {
  spec: KernelSpec;
  ms: number;
}

export class DispatchProfiler {
  /** The kernel of each dispatch so far, in recording order (dispatch i owns queries 2i and 2i + 1). */
  readonly specs: KernelSpec[] = [];
  readonly querySet: GPUQuerySet;

  constructor(
    device: GPUDevice,
    readonly capacity: number,
  ) {
    this.querySet = device.createQuerySet({ label: 'dispatch profile', type: 'timestamp', count: 2 * capacity });
  }

  /** The timestamp writes of the pass that will hold the next dispatch, `spec`'s. */
  writesFor(spec: KernelSpec): GPUComputePassTimestampWrites {
    const i = this.specs.length;
    if (i >= this.capacity) throw new FinetuneError('internal', `dispatch profile: more than ${this.capacity} dispatches (raise its capacity)`);
    this.specs.push(spec);
    return { querySet: this.querySet, beginningOfPassWriteIndex: 2 * i, endOfPassWriteIndex: 2 * i + 1 };
  }

  /** Bytes the resolved timestamps take (8 per query; at least one pair, so a buffer can always be made). */
  get resolveBytes(): number {
    return 16 * Math.max(1, this.specs.length);
  }

  /** Each dispatch's time from the resolved timestamps (ns, two per dispatch); a pair out of order reads as 0. */
  times(stamps: BigUint64Array): ProfiledDispatch[] {
    return this.specs.map((spec, i) => {
      const [begin, end] = [stamps[2 * i], stamps[2 * i + 1]];
      return { spec, ms: end > begin ? Number(end - begin) / 1e6 : 0 };
    });
  }

  destroy(): void {
    this.querySet.destroy();
  }
}
