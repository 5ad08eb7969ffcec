// The LoRA dropout hash is one text, shaders/dropout_hash.wgsl, included by lora.wgsl (the standalone mask) and the
// three GEMMs (the mask fused into the products); test/gpu/lora.test.ts and the GEMM dropout tests check the GPU's values
// against the CPU copy in kernels/lora.ts.
import { describe, expect, it } from 'vitest';
import { preprocessWgsl } from '../../../src/engine/preprocess.ts';
import { shaderSources } from '../../../src/engine/shaders.ts';

const USERS = { lora: {}, matmul: { DROPOUT: true, DROP_A: true }, matmul_tiled: { DROPOUT: true, DROP_A: true }, matmul_skinny: { DROPOUT: true, DROP_A: true } };

describe('the dropout hash in the shaders', () => {
  it('lives once, in dropout_hash.wgsl, and each user compiles with exactly that text', () => {
    const partial = shaderSources.dropout_hash;
    for (const name of ['rotl', 'murmurBlock', 'murmurFinal']) expect(partial).toContain(`\nfn ${name}(`);
    for (const [shader, defines] of Object.entries(USERS)) {
      const raw = shaderSources[shader];
      expect(raw, `${shader}.wgsl holds its own copy`).not.toMatch(/\nfn (rotl|murmurBlock|murmurFinal)\(/);
      const code = preprocessWgsl(raw, defines, shader, (n) => shaderSources[n]);
      expect(code.split(partial).length - 1, `${shader}.wgsl includes it once`).toBe(1);
    }
  });

  it('is applied with lora.wgsl’s expression, select(0.0, v * scale, keep)', () => {
    expect(shaderSources.lora).toContain('murmurFinal(murmurBlock(p.state, i), 20u) >= p.threshold');
    for (const shader of ['matmul', 'matmul_tiled', 'matmul_skinny']) {
      expect(shaderSources[shader]).toContain('murmurFinal(murmurBlock(p.dstate, i), 20u) >= p.dthreshold');
    }
    expect(shaderSources.lora).toContain('select(0.0, v * p.scale, keep)');
    expect(shaderSources.matmul).toContain('select(0.0, v * p.dscale, keep)');
    expect(shaderSources.matmul_skinny).toContain('select(0.0, v * p.dscale, keep)');
    expect(shaderSources.matmul_tiled).toContain('select(vec4<f32>(0.0), v * p.dscale, k)');
  });
});
