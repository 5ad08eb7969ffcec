// Every WGSL source in shaders/, by file name. Vite (app, vitest) and the CLI's loader hook both import
// `?raw` as a string, so the engine sees the same text everywhere.
import matmul from '../../shaders/matmul.wgsl?raw';
import matmul_tiled from '../../shaders/matmul_tiled.wgsl?raw';
import matmul_skinny from '../../shaders/matmul_skinny.wgsl?raw';
import matvec from '../../shaders/matvec.wgsl?raw';
import nf4 from '../../shaders/nf4.wgsl?raw';
import nf4_matmul from '../../shaders/nf4_matmul.wgsl?raw';
import nf4_matvec from '../../shaders/nf4_matvec.wgsl?raw';
import norm from '../../shaders/norm.wgsl?raw';
import rope from '../../shaders/rope.wgsl?raw';
import attention from '../../shaders/attention.wgsl?raw';
import attention_flash from '../../shaders/attention_flash.wgsl?raw';
import decode_attention from '../../shaders/decode_attention.wgsl?raw';
import swiglu from '../../shaders/swiglu.wgsl?raw';
import embedding from '../../shaders/embedding.wgsl?raw';
import xent from '../../shaders/xent.wgsl?raw';
import adamw from '../../shaders/adamw.wgsl?raw';
import lora from '../../shaders/lora.wgsl?raw';
import elementwise from '../../shaders/elementwise.wgsl?raw';
import random from '../../shaders/random.wgsl?raw';
import dropout_hash from '../../shaders/dropout_hash.wgsl?raw';
import nf4_values from '../../shaders/nf4_values.wgsl?raw';
import half from '../../shaders/half.wgsl?raw';
import int8_quant from '../../shaders/int8_quant.wgsl?raw';
import int8_matmul from '../../shaders/int8_matmul.wgsl?raw';
import int8_matmul_sm from '../../shaders/int8_matmul_sm.wgsl?raw';
import int8_products from '../../shaders/int8_products.wgsl?raw';

export const shaderSources: Readonly<Record<string, string>> = {
  matmul,
  matmul_tiled,
  matmul_skinny,
  matvec,
  nf4,
  nf4_matmul,
  nf4_matvec,
  norm,
  rope,
  attention,
  attention_flash,
  decode_attention,
  swiglu,
  embedding,
  xent,
  adamw,
  lora,
  elementwise,
  random,
  // Partials (declarations only): the dropout hash (lora and the three GEMMs), the NF4 values (every NF4 decoder),
  // the 16-bit float decoders (kernels reading bf16 or f16 weights, the NF4 quantiser), what both int8 kernels share
  // (uniforms, bindings, the reading of NF4 codes and scales).
  dropout_hash,
  nf4_values,
  half,
  int8_products,
  int8_quant,
  int8_matmul,
  // Needs the subgroup-matrix feature: compiled only on a device that has it (GpuContext.hasInt8SubgroupMatrix).
  int8_matmul_sm,
};

/**
 * Shaders that compile only on a device with a feature WebGPU does not guarantee (the rest need none beyond core):
 * the tensor-core int8 kernel needs Dawn's experimental subgroup matrices (engine/subgroup-matrix.ts).
 */
export const shaderNeeds: Readonly<Record<string, string>> = {
  int8_matmul_sm: 'chromium-experimental-subgroup-matrix',
};
