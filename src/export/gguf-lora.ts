// A LoRA adapter as the GGUF file llama.cpp's convert_lora_to_gguf.py makes for a Mistral (llama-architecture) base:
// adapter KVs, blk.N.<tensor>.weight.lora_a/lora_b, q/k lora_b rows permuted the way convert_hf_to_gguf.py permutes
// the base's q/k weights, rsLoRA's scale folded into the alpha. See docs/gguf.md.

import { PROJECTIONS, type Projection } from '../core/mistral.ts';
import { FinetuneError } from '../core/errors.ts';
import { formatCounted } from '../core/units.ts';
import { moduleShape } from '../model/checkpoint.ts';
import type { MistralConfig } from '../model/config.ts';
import { type LoraAdapter } from '../model/lora-adapter.ts';
import { fromFloat32 } from '../model/safetensors.ts';
import { GgmlType, internal, kvF32, kvString, kvU32, writeGguf, type GgufKv, type GgufTensorToWrite } from './gguf-format.ts';

/** llama.cpp's base tensor name of each projection (its LLM_TENSOR_* names for the llama architecture). */
export const GGUF_LORA_TENSOR: Readonly<Record<Projection, string>> = {
  q_proj: 'attn_q',
  k_proj: 'attn_k',
  v_proj: 'attn_v',
  o_proj: 'attn_output',
  gate_proj: 'ffn_gate',
  up_proj: 'ffn_up',
  down_proj: 'ffn_down',
};

/** `blk.N.<tensor>.weight.lora_a` / `.lora_b`. */
export function ggufLoraName(layer: number, module: Projection, factor: 'a' | 'b'): string {
  return `blk.${layer}.${GGUF_LORA_TENSOR[module]}.weight.lora_${factor}`;
}

/**
 * The row permutation convert_hf_to_gguf.py (LlamaModel.permute) applies to q_proj / k_proj weights:
 * reshape(nHead, 2, rows / nHead / 2, cols).swapaxes(1, 2).reshape(rows, cols). Within each head of hd = rows / nHead
 * rows, output row 2i + j is input row j·hd/2 + i: HF's rotate_half pairs (i, i + hd/2) become llama.cpp's adjacent
 * pairs (2i, 2i + 1). `m` is (rows, cols) row-major; returns a new array.
 */
export function permuteQkRows(m: Float32Array, rows: number, cols: number, nHead: number): Float32Array {
  if (m.length !== rows * cols) throw new FinetuneError('internal', `permuteQkRows: ${m.length} values for a ${rows}×${cols} matrix`);
  if (!Number.isSafeInteger(nHead) || nHead <= 0 || rows % (2 * nHead) !== 0) throw new FinetuneError('internal', `permuteQkRows: ${rows} rows do not split into ${nHead} heads of an even size`);
  const hd = rows / nHead;
  const half = hd / 2;
  const out = new Float32Array(m.length);
  for (let h = 0; h < nHead; h++) {
    for (let i = 0; i < half; i++) {
      for (let j = 0; j < 2; j++) {
        const src = (h * hd + j * half + i) * cols;
        const dst = (h * hd + 2 * i + j) * cols;
        out.set(m.subarray(src, src + cols), dst);
      }
    }
  }
  return out;
}

/**
 * The adapter.lora.alpha to write so that llama.cpp's scale (alpha / r, llama-adapter.h get_scale) equals PEFT's
 * scaling: alpha with classic LoRA, alpha·√r with rsLoRA (PEFT scales by alpha/√r; convert_lora_to_gguf.py itself
 * writes lora_alpha unchanged and so ignores use_rslora).
 */
export function ggufLoraAlpha(config: Pick<LoraAdapter['config'], 'r' | 'loraAlpha' | 'useRslora'>): number {
  return config.useRslora ? config.loraAlpha * Math.sqrt(config.r) : config.loraAlpha;
}

export interface LoraToGgufOptions {
  /** general.name (default "LoRA adapter for <base model>" or "LoRA adapter"). */
  name?: string;
  /** Tensor storage type: F32 (default, what convert_lora_to_gguf.py writes by default) or F16. */
  dtype?: 'F32' | 'F16';
}

function badAdapter(message: string): FinetuneError {
  return new FinetuneError('bad-input', `GGUF LoRA export: ${message}`);
}

/**
 * A LoRA adapter as llama.cpp loads it (`--lora file.gguf`, Ollama `ADAPTER file.gguf`): general.architecture =
 * "llama" (llama.cpp runs Mistral as llama), general.type = "adapter", adapter.type = "lora", adapter.lora.alpha;
 * per adapted projection blk.N.<t>.weight.lora_a = A (r, in) → ne [in, r] and lora_b = B (out, r) → ne [r, out],
 * with B's rows permuted for q_proj (nHead = heads) and k_proj (nHead = kvHeads) as the base GGUF's q/k weights are.
 * `base` is the config of the model the adapter was trained on; shapes are checked against it.
 */
export function loraToGguf(adapter: LoraAdapter, base: MistralConfig, opts: LoraToGgufOptions = {}): Uint8Array {
  const r = adapter.config.r;
  const dtype = opts.dtype ?? 'F32';
  const tensors: GgufTensorToWrite[] = [];
  const put = (name: string, shape: [number, number], values: Float32Array): void => {
    tensors.push(
      dtype === 'F32'
        ? { name, shape, type: GgmlType.F32, data: values }
        : { name, shape, type: GgmlType.F16, data: fromFloat32(values, 'F16') },
    );
  };
  adapter.tensors.forEach((layer, l) => {
    for (const m of PROJECTIONS) {
      const p = layer[m];
      if (!p) continue;
      if (l >= base.layers) throw badAdapter(`the adapter has layer ${l}, but the base model has ${formatCounted(base.layers, 'layer')}`);
      const [out, inn] = moduleShape(base, m);
      if (p.A.length !== r * inn || p.B.length !== out * r) {
        throw badAdapter(`${m} of layer ${l} has A of ${p.A.length} values and B of ${p.B.length}, but the base model's [${out}, ${inn}] weight needs A [${r}, ${inn}] and B [${out}, ${r}] (wrong base model?)`);
      }
      let B = p.B;
      if (m === 'q_proj') B = permuteQkRows(B, out, r, base.heads);
      else if (m === 'k_proj') B = permuteQkRows(B, out, r, base.kvHeads);
      put(ggufLoraName(l, m, 'a'), [r, inn], p.A);
      put(ggufLoraName(l, m, 'b'), [out, r], B);
    }
  });
  if (tensors.length === 0) throw badAdapter('the adapter holds no LoRA tensors');
  const name = opts.name ?? (adapter.config.baseModel ? `LoRA adapter for ${adapter.config.baseModel}` : 'LoRA adapter');
  const kvs: GgufKv[] = [
    kvString('general.architecture', 'llama'),
    kvString('general.type', 'adapter'),
    kvString('general.name', name),
    kvU32('general.file_type', dtype === 'F32' ? 0 : 1), // LLAMA_FTYPE_ALL_F32 / MOSTLY_F16
    kvString('adapter.type', 'lora'),
    kvF32('adapter.lora.alpha', ggufLoraAlpha(adapter.config)),
    kvU32('general.quantization_version', 2),
  ];
  return writeGguf(kvs, tensors);
}
