// The LoRA dropout hash lives in three shaders (the preprocessor has no include): lora.wgsl (the standalone mask)
// and both GEMMs (the mask fused into the products). They must be one function: the text of each copy is compared
// here; test/gpu/lora.test.ts and the GEMM dropout tests check the GPU's values against the CPU copy in kernels/lora.ts.
import { describe, expect, it } from 'vitest';
import { shaderSources } from '../../../src/engine/shaders.ts';

const FUNCTIONS = ['rotl', 'murmurBlock', 'murmurFinal'];

/** The text of `fn name(…) { … }` up to its closing brace at column 0. */
function fnText(source: string, name: string): string {
  const start = source.indexOf(`\nfn ${name}(`);
  if (start < 0) throw new Error(`no fn ${name}`);
  const end = source.indexOf('\n}\n', start);
  return source.slice(start + 1, end + 2);
}

describe('the dropout hash in the shaders', () => {
  it('is the same text in lora.wgsl, matmul.wgsl and matmul_tiled.wgsl', () => {
    for (const name of FUNCTIONS) {
      const canonical = fnText(shaderSources.lora, name);
      expect(canonical).toMatch(/^fn /);
      for (const shader of ['matmul', 'matmul_tiled']) expect(fnText(shaderSources[shader], name), `${shader}.wgsl ${name}`).toBe(canonical);
    }
  });

  it('is applied with lora.wgsl’s expression, select(0.0, v * scale, keep)', () => {
    expect(shaderSources.lora).toContain('murmurFinal(murmurBlock(p.state, i), 20u) >= p.threshold');
    for (const shader of ['matmul', 'matmul_tiled']) {
      expect(shaderSources[shader]).toContain('murmurFinal(murmurBlock(p.dstate, i), 20u) >= p.dthreshold');
    }
    expect(shaderSources.lora).toContain('select(0.0, v * p.scale, keep)');
    expect(shaderSources.matmul).toContain('select(0.0, v * p.dscale, keep)');
    expect(shaderSources.matmul_tiled).toContain('select(vec4<f32>(0.0), v * p.dscale, k)');
  });
});
