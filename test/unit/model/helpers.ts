// Shared helpers of the model tests: fixture paths, reading files, a ByteSource that checks every read is inside
// the file.
import { readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { FinetuneError } from '../../../src/engine/errors.ts';
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
