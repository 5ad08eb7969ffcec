// Whether a model is loaded with its layers streamed from CPU memory (engine/mistral/layer-stream.ts): asked for
// outright, or chosen from the memory plan when the GPU's memory size is known. Streaming gives the same numbers, bit
// for bit, and is slower, so it is chosen only when the plan says the layers cannot all be on the GPU.

import type { Hyperparams } from '../config/hyperparams.ts';
import type { MistralConfig, ModelDtype } from '../model/config.ts';
import { formatBytes } from '../core/units.ts';
import { LIMITS_UNCHECKED, planMemory, type PlanGpu } from './planner.ts';

/** true / false: stream or not; a plan's inputs: stream when the plan says only streaming can fit. */
export type StreamLayersChoice = boolean | { hp: Hyperparams; gpu: PlanGpu };

export interface StreamingDecision {
  stream: boolean;
  /** What the user should hear about the choice (null when nothing was chosen for them). */
  notice: string | null;
}

/** `storedDtype`: the dtype the safetensors store the weight matrices in (the load has read their headers). */
export function chooseLayerStreaming(config: MistralConfig, choice: StreamLayersChoice | undefined, storedDtype?: ModelDtype | null): StreamingDecision {
  if (choice === undefined || typeof choice === 'boolean') return { stream: choice ?? false, notice: null };
  const plan = planMemory(config, choice.hp, { gpu: choice.gpu, storedDtype });
  const s = plan.streaming;
  if (plan.verdict === 'fits' || plan.verdict === 'tight') return { stream: false, notice: null };
  const memory = `${formatBytes(plan.gpu.memoryBytes)}${plan.gpu.memorySource === 'guessed' ? ' (guessed)' : ''}`;
  // An unquantised base that QLoRA would fit better (planner.ts, MemoryPlan.qlora): said, not chosen for the user.
  const q = plan.qlora;
  const qlora = q ? `; with --peft_method qlora (the base in 4-bit NF4) it would ${q.verdict === 'fits-with-streaming' ? 'need streaming too but' : 'fit:'} ${q.reason}` : '';
  if (plan.verdict === 'fits-with-streaming') {
    return {
      stream: true,
      notice: `the run needs ${formatBytes(plan.peakBytes)} with every layer on the GPU, over its ${memory}: the layers are streamed from CPU memory (${formatBytes(s.peakBytes)} on the GPU, ${formatBytes(s.hostBytes)} in CPU memory, ${formatBytes(s.bytesPerStep)} moved per step; same results, slower)${qlora}`,
    };
  }
  // Even streamed it does not fit by the plan: streaming still needs less, so it is the better try.
  const stream = s.savedBytes > 0;
  return {
    stream,
    notice: `the plan says this run does not fit the GPU's ${memory}${stream ? ', even with the layers streamed from CPU memory (trying that anyway)' : ''}: ${plan.reasons.filter((r) => !r.startsWith(LIMITS_UNCHECKED)).join('; ')}${qlora}`,
  };
}
