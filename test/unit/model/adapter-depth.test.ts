// adapter_config.json nested 200 000 levels deep, in a folder or a zip: a clear bad-input error, not a stack overflow.
import { zipSync } from 'fflate';
import { describe, expect, it } from 'vitest';
import { importAdapter } from '../../../src/model/adapter-import.ts';
import { readAdapter } from '../../../src/model/lora-adapter.ts';
import { memoryFileSet } from '../../../src/model/source.ts';
import { errorOf } from './helpers.ts';

const deep = `{"peft_type":"LORA","r":4,"lora_alpha":8,"target_modules":${'['.repeat(200_000)}${']'.repeat(200_000)}}`;

describe('deeply nested adapter_config.json', () => {
  it('is refused when read from a folder', async () => {
    const e = await errorOf(() => readAdapter(memoryFileSet({ 'adapter_config.json': deep, 'adapter_model.safetensors': new Uint8Array(16) })));
    expect(e.kind).toBe('bad-input');
    expect(e.message).toMatch(/adapter_config\.json nests JSON deeper than 64 levels/);
  });

  it('is refused when imported from a zip', async () => {
    const zip = zipSync({ 'adapter_config.json': new TextEncoder().encode(deep), 'adapter_model.safetensors': new Uint8Array(16) });
    const e = await errorOf(() => importAdapter(zip));
    expect(e.kind).toBe('bad-input');
    expect(e.message).toMatch(/adapter_config\.json: nests JSON deeper than 64 levels: not an adapter config/);
  });
});
