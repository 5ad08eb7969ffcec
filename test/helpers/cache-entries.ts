// Real weight-cache entries (parts, hashes, footer) of a two-part "model", built without a GPU: for the stores'
// tests (test/unit/worker/opfs-weight-cache.test.ts) and the `finetune cache` command's.
import type { WeightPart, WeightsManifest } from '../../src/engine/mistral/weight-parts.ts';
import { cacheKey, entryBytes, entryChunks, WEIGHT_CACHE_FORMAT, type CacheIdentity } from '../../src/run/weight-cache.ts';

export const cacheIdentityOf = (source: string, quantization: CacheIdentity['quantization'] = 'nf4', version = 'http "abc"'): CacheIdentity => ({
  format: WEIGHT_CACHE_FORMAT,
  source,
  quantization,
  files: [{ name: 'config.json', size: 600, version }],
});

/**
 * A two-part "model": enough for a real entry (parts, hashes, footer), no GPU. Its dims are a model's (one layer, whose
 * parts are left out: the entry is listed and pruned, never loaded), as a footer's are checked when it is read.
 */
export const tinyManifest: WeightsManifest = {
  dims: { V: 4, C: 2, I: 4, L: 1, nH: 1, nKV: 1, hd: 2, theta: 10000, eps: 1e-5 },
  quantization: 'nf4',
  tied: true,
  parts: [
    { name: 'embed', bytes: 1000, info: { role: 'embed', storage: 'bf16' } },
    { name: 'final_norm', bytes: 8, info: { role: 'final_norm' } },
  ],
};

export async function* partBytes(fill: number): AsyncGenerator<{ part: WeightPart; bytes: Uint8Array }> {
  for (const part of tinyManifest.parts) yield { part, bytes: new Uint8Array(part.bytes).fill(fill) };
}

/** An entry for `id` (its manifest of `id`'s quantisation): its key, its bytes as the store's write takes them, and its size. */
export async function cacheEntryOf(id: CacheIdentity): Promise<{ key: string; chunks: AsyncGenerator<Uint8Array>; bytes: number }> {
  const manifest: WeightsManifest = { ...tinyManifest, quantization: id.quantization };
  return { key: await cacheKey(id), chunks: entryChunks(manifest, id, partBytes(7)), bytes: entryBytes(manifest, id) };
}
