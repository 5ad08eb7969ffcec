// Shared helpers of the model tests: fixture paths, reading files, a ByteSource that checks every read is inside
// the file.
import { readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { FinetuneError } from '../../../src/core/errors.ts';
import type { ByteSource } from '../../../src/model/source.ts';

export const ROOT = fileURLToPath(new URL('../../../', import.meta.url));
export const FIXTURES = `${ROOT}test/fixtures`;
export const TINY_MISTRAL = `${FIXTURES}/tiny-mistral`;
export const TINY_ADAPTER = `${FIXTURES}/tiny-adapter`;
export const NANO_DEMO = `${ROOT}public/models/mistral-nano-demo`;

export function fixtureBytes(path: string): Uint8Array {
  const b = readFileSync(path);
  return new Uint8Array(b.buffer, b.byteOffset, b.byteLength);
}

export function fixtureJson(path: string): unknown {
  return JSON.parse(readFileSync(path, 'utf8'));
}

/** A ByteSource over bytes that fails the test (with a non-FinetuneError) if anything reads outside the file. */
export function guardedSource(bytes: Uint8Array, name = 'guarded'): ByteSource & { reads: [number, number][] } {
  const reads: [number, number][] = [];
  return {
    name,
    size: bytes.byteLength,
    reads,
    async read(offset, length) {
      reads.push([offset, length]);
      if (!Number.isSafeInteger(offset) || !Number.isSafeInteger(length) || offset < 0 || length < 0 || offset + length > bytes.byteLength) {
        throw new RangeError(`OUT OF BOUNDS read(${offset}, ${length}) of ${bytes.byteLength} bytes`);
      }
      return bytes.slice(offset, offset + length);
    },
  };
}

/** Runs `fn` and returns the FinetuneError it throws (fails if it does not throw one). */
export async function errorOf(fn: () => unknown): Promise<FinetuneError> {
  try {
    await fn();
  } catch (e) {
    if (e instanceof FinetuneError) return e;
    throw new Error(`expected a FinetuneError, got ${String(e)}`);
  }
  throw new Error('expected a FinetuneError, nothing was thrown');
}

/** Mistral-7B-Instruct-v0.2's config.json as transformers 4 wrote it (values in docs/mistral.md). */
export const MISTRAL_7B_V02 = {
  architectures: ['MistralForCausalLM'],
  attention_dropout: 0.0,
  bos_token_id: 1,
  eos_token_id: 2,
  hidden_act: 'silu',
  hidden_size: 4096,
  initializer_range: 0.02,
  intermediate_size: 14336,
  max_position_embeddings: 32768,
  model_type: 'mistral',
  num_attention_heads: 32,
  num_hidden_layers: 32,
  num_key_value_heads: 8,
  rms_norm_eps: 1e-5,
  rope_theta: 1000000.0,
  sliding_window: null,
  tie_word_embeddings: false,
  torch_dtype: 'bfloat16',
  transformers_version: '4.36.0',
  use_cache: true,
  vocab_size: 32000,
};
