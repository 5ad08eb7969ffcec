// The Mistral vocabulary every floor shares: the seven projections PEFT can adapt and the ways the frozen base can be
// held on the GPU. One definition each, so the schema, the checkpoint reader, the LoRA adapter, the kernels and the
// exporters can never disagree on a name or an order.

/**
 * The seven linear projections of a Mistral decoder layer, in the order used everywhere: the dropout key's `module`
 * index, the order of tensors in exported files and the order of the form's checkboxes.
 */
export const PROJECTIONS = ['q_proj', 'k_proj', 'v_proj', 'o_proj', 'gate_proj', 'up_proj', 'down_proj'] as const;
export type Projection = (typeof PROJECTIONS)[number];

/** The attention projections come first in PROJECTIONS, the MLP's after. */
export const ATTENTION_PROJECTIONS = PROJECTIONS.slice(0, 4) as readonly Projection[];
export const MLP_PROJECTIONS = PROJECTIONS.slice(4) as readonly Projection[];

export function isProjection(name: string): name is Projection {
  return (PROJECTIONS as readonly string[]).includes(name);
}

/**
 * How the frozen base weights live on the GPU: `none` keeps the checkpoint's own dtype (bf16/f16/f32), `nf4` is
 * 4-bit NormalFloat with one f32 absmax per 64 weights, `nf4-double` also quantises those absmax values to 8 bits
 * (QLoRA's double quantisation; see docs/nf4.md).
 */
export const QUANTIZATIONS = ['none', 'nf4', 'nf4-double'] as const;
export type Quantization = (typeof QUANTIZATIONS)[number];
