// The cache of quantised weights: after a model is loaded (downloaded, quantised on the GPU), its GPU buffers are
// written to a store (a folder in Node, the Origin Private File System in a browser); the next load of the same files
// with the same settings uploads them from there: nothing is downloaded or re-quantised.
//
// An entry is one file: every part's bytes back to back, then a JSON footer (format, identity, the weights' manifest
// and its SHA-256, each part's offset, length and SHA-256), then the footer's length as 8 bytes little-endian. Every
// part and the manifest are hashed on load; an entry that is partial, corrupt, or from another format or source is
// removed and rebuilt, never trusted.
// Writes are atomic (the store's job: temp + rename, or write then switch a pointer). See docs/models.md.

import { PROJECTIONS, QUANTIZATIONS, type Quantization } from '../core/mistral.ts';
// thrownMessage, not `e instanceof Error ? e.message : String(e)`: a store may throw an object with no prototype (or
// one whose toString throws), and String() of it threw in place of the note that a failed cache read or write is.
import { FinetuneError, isFinetuneError, thrownMessage } from '../core/errors.ts';
import { concatBytes, sha256Hex } from '../core/bytes.ts';
import type { GpuContext } from '../engine/gpu.ts';
import type { WeightStorage } from '../engine/kernels/matmul.ts';
import type { Dims } from '../engine/mistral/dims.ts';
import { downloadWeightParts, uploadWeightParts, weightsManifest, type PartRole, type WeightPart, type WeightsManifest } from '../engine/mistral/weight-parts.ts';
import { loadMistralWeights, type LoadProgress, type MistralWeights } from '../engine/mistral/weights.ts';
import type { BaseCheckpoint } from '../model/checkpoint.ts';
import type { ByteSource, FileSet } from '../model/source.ts';
import { quote } from '../core/quote.ts';
import { contentFingerprint } from './model-fingerprint.ts';

/** Bumped whenever the entry layout or the meaning of a part changes: older entries are then rebuilt. */
export const WEIGHT_CACHE_FORMAT = 1;

export interface WeightCacheEntryInfo {
  key: string;
  bytes: number;
  /** The source the entry was made from (for the page's list), never a secret. */
  source?: string;
  quantization?: Quantization;
  /** When the entry was written (ms since 1970), when the store knows. */
  writtenAt?: number;
}

/**
 * Where entries live. `write` must be atomic: until it resolves, `open(key)` sees the old entry or none. `bytes` is the
 * entry's exact size, known before the first chunk, so a store with a quota can refuse before writing anything.
 */
export interface WeightCacheStore {
  open(key: string): Promise<ByteSource | null>;
  write(key: string, chunks: AsyncIterable<Uint8Array>, bytes?: number): Promise<void>;
  remove(key: string): Promise<void>;
  list(): Promise<WeightCacheEntryInfo[]>;
}

/** A store in memory (benchmarks, tests): `entries` holds each entry's bytes, which a test may damage. */
export function memoryWeightCache(): WeightCacheStore & { entries: Map<string, Uint8Array> } {
  const entries = new Map<string, Uint8Array>();
  return {
    entries,
    async open(key) {
      const e = entries.get(key);
      return e ? { name: key, size: e.byteLength, read: async (offset: number, length: number) => e.subarray(offset, offset + length) } : null;
    },
    async write(key, chunks) {
      const parts: Uint8Array[] = [];
      for await (const c of chunks) parts.push(c.slice());
      entries.set(key, concatBytes(parts).slice());
    },
    async remove(key) {
      entries.delete(key);
    },
    async list() {
      return [...entries].map(([key, e]) => ({ key, bytes: e.byteLength }));
    },
  };
}

/** What an entry stands for: the same identity means the same quantised weights. */
export interface CacheIdentity {
  format: number;
  source: string;
  quantization: Quantization;
  /** Every file the weights come from, with its size and version (ETag, Last-Modified, or size + mtime). */
  files: { name: string; size: number; version: string | null }[];
}

interface Footer {
  format: number;
  identity: CacheIdentity;
  manifest: WeightsManifest;
  /**
   * SHA-256 of the manifest's JSON. The parts' hashes do not cover the manifest, yet it says how to read them (the
   * dims, RoPE theta and RMSNorm epsilon among them, each part's layer and shape): a damaged digit there once loaded a
   * model with another theta, without a word. Absent from entries written before it was added (2026-12), which are
   * read as before rather than rebuilt (a 14.5 GB download for a Hub model on the page).
   */
  manifestSha256?: string;
  parts: { name: string; offset: number; bytes: number; sha256: string }[];
}

/** The fields a footer may have: any other (a damaged field name, `manifestSha256` among them) makes it unusable. */
const FOOTER_FIELDS: ReadonlySet<string> = new Set(['format', 'identity', 'manifest', 'manifestSha256', 'parts']);

const manifestHash = (manifest: WeightsManifest): Promise<string> => sha256Hex(new TextEncoder().encode(JSON.stringify(manifest)));

const FOOTER_LENGTH_BYTES = 8;
/** A footer is a few hundred bytes per tensor; refuse to parse anything absurd (a corrupt length). */
const MAX_FOOTER_BYTES = 64 * 1024 * 1024;

/** The identity of a checkpoint's files, read from the sources' versions (opening a Hub file is a 1-byte probe). */
export async function cacheIdentity(files: FileSet, ckpt: BaseCheckpoint, source: string, quantization: Quantization): Promise<CacheIdentity> {
  return (await identityOf(files, ckpt, source, quantization)).identity;
}

/**
 * The identity, and the files as earlier builds versioned them when a source says they did otherwise (its
 * formerVersion: a Hub file's CDN ETag, before its X-Linked-Etag was read); null when none does.
 */
async function identityOf(files: FileSet, ckpt: BaseCheckpoint, source: string, quantization: Quantization): Promise<{ identity: CacheIdentity; formerFiles: CacheIdentity['files'] | null }> {
  const names = ['config.json', ...ckpt.files];
  const out: CacheIdentity['files'] = [];
  const former: CacheIdentity['files'] = [];
  for (const name of names) {
    const s = await files.open(name);
    const version = await contentVersion(s);
    out.push({ name, size: s.size, version });
    former.push({ name, size: s.size, version: s.formerVersion ?? version });
  }
  const changed = former.some((f, i) => f.version !== out[i].version);
  return { identity: { format: WEIGHT_CACHE_FORMAT, source, quantization, files: out }, formerFiles: changed ? former : null };
}

/**
 * A source's version as the cache keys it. A local file's ("file SIZE MTIME") has its sampled content fingerprint
 * added (model-fingerprint.ts: four 64 KiB blocks): a file rewritten with its modification time kept (cp -p, rsync -t,
 * tar and unzip restore it) had the key of the file before, and loaded the old file's quantised weights without a word.
 * No former version is offered for it: an entry keyed by the time alone cannot be told from a stale one.
 */
async function contentVersion(s: ByteSource): Promise<string | null> {
  const v = s.version ?? null;
  if (!v?.startsWith('file ')) return v;
  return `${v} ${await contentFingerprint((offset, length) => s.read(offset, length), s.size)}`;
}

/**
 * Why these files cannot be cached, or null when they can. The identity stands for the files only when each has a
 * version: without one (a server that sends no ETag or Last-Modified), a file changed to another of the same size would
 * get the same key, and the stale weights of the old one would be loaded for it, without a word.
 */
export function uncachedReason(identity: CacheIdentity): string | null {
  const bare = identity.files.find((f) => f.version === null);
  if (!bare) return null;
  return `the weights are not cached: ${bare.name} comes without a version (an ETag or Last-Modified from its server, a file's modification time), so a changed file could not be told apart from the cached one; each load reads the model's files again`;
}

/** The entry's key: a hash of the identity (file names, sizes and versions, source, settings, format). */
export async function cacheKey(identity: CacheIdentity): Promise<string> {
  return (await sha256Hex(new TextEncoder().encode(JSON.stringify(identity)))).slice(0, 40);
}

/** Why an entry cannot be used (it is then removed and rebuilt). */
class BadEntry extends Error {}

/** Reads from an entry; a read that fails (the entry deleted from another tab, a disk error) makes it unusable. */
async function readEntry(entry: ByteSource, offset: number, length: number, what: string): Promise<Uint8Array> {
  try {
    return await entry.read(offset, length);
  } catch (e) {
    throw new BadEntry(`${what} could not be read (${thrownMessage(e)})`);
  }
}

/** A footer's part record as entryChunks writes it (a damaged footer may hold null, a number, a field missing). */
function isPartRecord(p: unknown): p is Footer['parts'][number] {
  return isRecord(p) && typeof p.name === 'string' && typeof p.offset === 'number' && typeof p.bytes === 'number' && typeof p.sha256 === 'string';
}

const isRecord = (v: unknown): v is Record<string, unknown> => typeof v === 'object' && v !== null;

async function readFooter(entry: ByteSource): Promise<Footer> {
  if (entry.size < FOOTER_LENGTH_BYTES) throw new BadEntry('shorter than its footer');
  const lenBytes = await readEntry(entry, entry.size - FOOTER_LENGTH_BYTES, FOOTER_LENGTH_BYTES, 'its footer');
  const len = Number(new DataView(lenBytes.buffer, lenBytes.byteOffset, 8).getBigUint64(0, true));
  if (!(len > 0 && len <= MAX_FOOTER_BYTES && len <= entry.size - FOOTER_LENGTH_BYTES)) throw new BadEntry(`footer length ${len} does not fit the entry`);
  let footer: Footer;
  try {
    footer = JSON.parse(new TextDecoder('utf-8', { fatal: true }).decode(await readEntry(entry, entry.size - FOOTER_LENGTH_BYTES - len, len, 'its footer'))) as Footer;
  } catch (e) {
    throw e instanceof BadEntry ? e : new BadEntry('its footer is not JSON');
  }
  if (typeof footer !== 'object' || footer === null || !Array.isArray(footer.parts)) throw new BadEntry('its footer is not an entry footer');
  if (footer.format !== WEIGHT_CACHE_FORMAT) throw new BadEntry(`format ${footer.format}, this build writes ${WEIGHT_CACHE_FORMAT}`);
  const odd = Object.keys(footer).find((k) => !FOOTER_FIELDS.has(k));
  if (odd !== undefined) throw new BadEntry(`its footer has a field ${quote(odd)} that no entry has`);
  // JSON.stringify of the parsed manifest is the text that was hashed: key order and numbers survive a round trip.
  if (footer.manifestSha256 !== undefined && (await manifestHash(footer.manifest)) !== footer.manifestSha256) throw new BadEntry('its manifest does not match its hash');
  const dataEnd = entry.size - FOOTER_LENGTH_BYTES - len;
  let offset = 0;
  for (const [i, p] of (footer.parts as unknown[]).entries()) {
    if (!isPartRecord(p)) throw new BadEntry(`its footer's part ${i + 1} is not a part record`);
    if (p.offset !== offset || !(p.bytes >= 0)) throw new BadEntry(`part ${p.name} is not where the footer says`);
    offset += p.bytes;
  }
  if (offset !== dataEnd || !Array.isArray(footer.manifest?.parts) || footer.parts.length !== footer.manifest.parts.length) throw new BadEntry('the parts do not fill the entry');
  // An older entry's manifest is unhashed: a null there would be a TypeError in the upload, a damaged size or theta a
  // model loaded with it, not an entry to rebuild.
  const fault = manifestFault(footer.manifest, footer.identity);
  if (fault !== null) throw new BadEntry(fault);
  return footer;
}

const isPositiveInteger = (v: unknown): boolean => typeof v === 'number' && Number.isInteger(v) && v > 0;
const isPositiveNumber = (v: unknown): boolean => typeof v === 'number' && Number.isFinite(v) && v > 0;
const isOneOf = (v: unknown, values: readonly string[]): boolean => typeof v === 'string' && values.includes(v);

/** The model's sizes as a manifest holds them (Dims): whole numbers, and RoPE's base and RMSNorm's epsilon. */
const DIMS_COUNTS = ['V', 'C', 'I', 'L', 'nH', 'nKV', 'hd'] as const satisfies readonly (keyof Dims)[];
const DIMS_REALS = ['theta', 'eps'] as const satisfies readonly (keyof Dims)[];
const WEIGHT_STORAGES: readonly WeightStorage[] = ['f32', 'bf16', 'f16'];
const NF4_BUFFERS: readonly Extract<PartRole, { role: 'nf4' }>['buffer'][] = ['codes', 'absmax', 'dq.codes', 'dq.scale', 'dq.offset', 'dq.table'];

/** Whether a part's info is a PartRole as weightsManifest writes it (the layer's range is the upload's to check). */
function isPartRole(i: Record<string, unknown>): boolean {
  const layer = typeof i.layer === 'number' && Number.isInteger(i.layer);
  switch (i.role) {
    case 'embed':
    case 'lm_head':
      return isOneOf(i.storage, WEIGHT_STORAGES);
    case 'final_norm':
      return true;
    case 'input_norm':
    case 'post_norm':
      return layer;
    case 'dense':
      return layer && isOneOf(i.proj, PROJECTIONS) && isOneOf(i.storage, WEIGHT_STORAGES) && isPositiveInteger(i.out) && isPositiveInteger(i.in);
    case 'nf4':
      return layer && isOneOf(i.proj, PROJECTIONS) && isOneOf(i.buffer, NF4_BUFFERS) && isPositiveInteger(i.rows) && isPositiveInteger(i.cols) && typeof i.doubleQuant === 'boolean';
    default:
      return false;
  }
}

/**
 * What is wrong with a footer's manifest, or null when it is shaped as weightsManifest writes it: the dims, the
 * quantisation (the identity's), whether lm_head is tied, and each part's description. Its parts array is checked
 * already. An older entry's manifest is read unhashed, so every field the upload reads is checked here.
 */
function manifestFault(manifest: WeightsManifest, identity: unknown): string | null {
  const dims: unknown = manifest.dims;
  if (!isRecord(dims)) return "its manifest's dims are not a model's sizes";
  const count = DIMS_COUNTS.find((k) => !isPositiveInteger(dims[k]));
  if (count !== undefined) return `its manifest's dims.${count} is not a positive whole number`;
  const real = DIMS_REALS.find((k) => !isPositiveNumber(dims[k]));
  if (real !== undefined) return `its manifest's dims.${real} is not a positive number`;
  const quantization: unknown = manifest.quantization;
  if (!isOneOf(quantization, QUANTIZATIONS)) return `its manifest's quantization ${quote(quantization) ?? 'undefined'} is not one this build knows`;
  if (isRecord(identity) && identity.quantization !== quantization) return `its manifest's quantization ${quote(quantization)} is not its identity's ${quote(identity.quantization) ?? 'undefined'}`;
  if (typeof manifest.tied !== 'boolean') return "its manifest's tied is not true or false";
  for (const [n, p] of (manifest.parts as unknown[]).entries()) {
    const named = isRecord(p) && typeof p.name === 'string';
    if (!named || typeof p.bytes !== 'number' || !isRecord(p.info) || !isPartRole(p.info)) return `its manifest's part ${n + 1}${named ? ` (${quote(p.name)})` : ''} is not a part description`;
  }
  return null;
}

/**
 * What an entry was made from (source and quantisation), read from its footer alone: a small read at its end, no part
 * hashed. Null when the footer is unreadable (a partial or corrupt entry, another format). For listing entries only:
 * a load still checks everything.
 */
export async function readCacheEntryInfo(entry: ByteSource): Promise<{ source: string; quantization: Quantization } | null> {
  try {
    const { identity } = await readFooter(entry);
    return typeof identity?.source === 'string' && QUANTIZATIONS.includes(identity.quantization) ? { source: identity.source, quantization: identity.quantization } : null;
  } catch (e) {
    if (e instanceof BadEntry) return null;
    throw e;
  }
}

export interface CachedLoadOptions {
  quantization: Quantization;
  /**
   * What the entry is named by: a name that tells this model's files from any other's (the command line gives a
   * folder's absolute path, a URL without its query, a Hub id with its revision; the page, a picked folder's name).
   */
  source: string;
  /**
   * The names entries of these files were written under before (the folder's bare name, which two folders can share;
   * a Hub id without its revision; the path through a symbolic link, before folders were named by their real path):
   * an entry found only under one of them (or under the files' former versions, see ByteSource.formerVersion) is
   * loaded, written again under `source` and removed, so no model is rebuilt for it. Tried in this order.
   */
  legacySources?: readonly string[];
  /** Null: no cache (--no-cache, no OPFS): the weights come from the files, and nothing is written. */
  cache: WeightCacheStore | null;
  onProgress?: (p: LoadProgress) => void;
  /** Keep the layers in CPU memory and stream them (the entry is the same either way). */
  streamLayers?: boolean;
}

export interface CachedLoad {
  weights: MistralWeights;
  fromCache: boolean;
  /** The files the weights stand for (names, sizes, versions): a saved run keeps them, to be resumed on the same. */
  files: CacheIdentity['files'];
  /** The same files as earlier builds versioned them, when a source says that differs (ByteSource.formerVersion). */
  formerFiles: CacheIdentity['files'] | null;
  /** What happened to the cache that the user should hear about (a corrupt entry rebuilt, a write that failed). */
  notes: string[];
}

/**
 * Loads from the cache when it holds these exact files at these settings (every part's hash checked), else from the
 * files, then writes the cache. A failed cache write (out of quota, a read-only disk), and a store that cannot be
 * looked into, are notes, not a failed load. Without a cache, from the files.
 */
export async function loadWeightsCached(ctx: GpuContext, files: FileSet, ckpt: BaseCheckpoint, o: CachedLoadOptions): Promise<CachedLoad> {
  const { identity, formerFiles } = await identityOf(files, ckpt, o.source, o.quantization);
  const notes: string[] = [];
  const unversioned = o.cache ? uncachedReason(identity) : null;
  if (unversioned) notes.push(unversioned);
  const key = await cacheKey(identity);
  // Files without versions are neither read from the cache (an entry could be of an older file) nor written to it. A
  // store that cannot be looked into (a cache folder that cannot be listed, a browser storage that refuses) is a note
  // like its other failures: the weights come from the files, and nothing is written to it this time.
  const opened = unversioned || !o.cache ? null : await openEntry(o.cache, key);
  if (opened?.failed !== undefined) notes.push(`the weight cache could not be looked into (${opened.failed}): the weights are loaded from the model's files, and not cached`);
  const cache = opened && opened.failed === undefined ? o.cache : null;
  const entry = opened?.entry ?? null;
  if (cache && !entry) {
    const moved = await moveEarlierEntry(ctx, cache, key, identity, earlierIdentities(identity, o.legacySources ?? [], formerFiles), o, notes);
    if (moved) return { weights: moved, fromCache: true, notes, files: identity.files, formerFiles };
  }
  if (cache && entry) {
    try {
      const weights = await loadFromEntry(ctx, entry, identity, o.onProgress, o.streamLayers);
      return { weights, fromCache: true, notes, files: identity.files, formerFiles };
    } catch (e) {
      if (!(e instanceof BadEntry)) throw e;
      notes.push(await dropUnusable(cache, key, e));
    }
  }
  const weights = await loadMistralWeights(ctx, ckpt, { quantization: o.quantization, onProgress: o.onProgress, streamLayers: o.streamLayers });
  if (cache) {
    try {
      await writeCacheEntry(ctx, cache, key, weights, identity, o.onProgress);
    } catch (e) {
      notes.push(`the weights were not cached: ${thrownMessage(e)}. They are loaded; the next load reads them from the model's files again`);
    }
  }
  return { weights, fromCache: false, notes, files: identity.files, formerFiles };
}

/** `store.open(key)`, or what it threw in words (thrownMessage: a value without a message still gives some). */
async function openEntry(store: WeightCacheStore, key: string): Promise<{ entry: ByteSource | null; failed?: undefined } | { entry: null; failed: string }> {
  try {
    return { entry: await store.open(key) };
  } catch (e) {
    return { entry: null, failed: thrownMessage(e) };
  }
}

/**
 * Removes an unusable entry and says so, in a note. A store that cannot remove it (a read-only cache folder, a file
 * another tab holds open) does not fail the load: the entry is never used, and the weights come from the files.
 */
async function dropUnusable(cache: WeightCacheStore, key: string, why: BadEntry): Promise<string> {
  try {
    await cache.remove(key);
    return `the cached weights were unusable (${why.message}): removed, loading from the source again`;
  } catch (e) {
    return `the cached weights were unusable (${why.message}) and could not be removed (${thrownMessage(e)}): loading from the source again`;
  }
}

/**
 * The identities earlier builds gave these files: under a legacy name, under their former versions, or both (every
 * one that differs from `identity`), in that order.
 */
function earlierIdentities(identity: CacheIdentity, legacySources: readonly string[], formerFiles: CacheIdentity['files'] | null): CacheIdentity[] {
  const sources = [...new Set([identity.source, ...legacySources])];
  const fileSets = formerFiles ? [identity.files, formerFiles] : [identity.files];
  return sources.flatMap((source) => fileSets.map((files) => ({ ...identity, source, files }))).slice(1);
}

/** How an earlier identity and this one differ, in words: "under the name model", "with their former versions (…)". */
function namedBy(id: CacheIdentity, other: CacheIdentity, former: boolean): string {
  const parts: string[] = [];
  if (id.source !== other.source) parts.push(former ? `under the name ${id.source}` : `under ${id.source}`);
  if (JSON.stringify(id.files) !== JSON.stringify(other.files)) {
    parts.push(former ? "with the files' former versions (their server's ETags)" : "with the versions their server names for their contents (the Hub's X-Linked-Etag)");
  }
  return parts.join(' ');
}

/**
 * Loads the first entry of these files written under an earlier identity (`earlier`), writes it again under `identity`
 * (as `key`) and removes the old one; null when there is none. An unusable one is removed (the load then reads the
 * files). A failed write keeps the old entry and says so; a failed removal of the old one after the write says that:
 * the weights are loaded either way.
 */
async function moveEarlierEntry(
  ctx: GpuContext,
  cache: WeightCacheStore,
  key: string,
  identity: CacheIdentity,
  earlier: readonly CacheIdentity[],
  o: CachedLoadOptions,
  notes: string[],
): Promise<MistralWeights | null> {
  for (const legacy of earlier) {
    const legacyKey = await cacheKey(legacy);
    const { entry: old, failed } = await openEntry(cache, legacyKey);
    if (failed !== undefined) {
      notes.push(`the earlier copy of these weights (entry ${legacyKey}) could not be looked into (${failed}): the weights are loaded from the model's files`);
      return null;
    }
    if (!old) continue;
    let weights: MistralWeights;
    try {
      weights = await loadFromEntry(ctx, old, legacy, o.onProgress, o.streamLayers);
    } catch (e) {
      if (!(e instanceof BadEntry)) throw e;
      notes.push(await dropUnusable(cache, legacyKey, e));
      return null;
    }
    const [was, now] = [namedBy(legacy, identity, true), namedBy(identity, legacy, false)];
    try {
      await writeCacheEntry(ctx, cache, key, weights, identity, o.onProgress);
    } catch (e) {
      notes.push(`the cached weights of these files stay kept ${was}: writing them ${now} failed (${thrownMessage(e)})`);
      return weights;
    }
    notes.push(`the cached weights of these files, kept ${was}, are now kept ${now}`);
    // The move is done (the new entry is written); an old copy that cannot be removed (a read-only folder, a file
    // another tab holds open) is only space taken, never loaded again: said, not a failed write.
    try {
      await cache.remove(legacyKey);
    } catch (e) {
      notes.push(`the earlier copy (entry ${legacyKey}) could not be removed (${thrownMessage(e)}): it stays in the cache, unused, until it is removed`);
    }
    return weights;
  }
  return null;
}

/** Writes `weights` as entry `key` for `identity` (what loadWeightsCached does after a load from the source). */
export async function writeCacheEntry(ctx: GpuContext, store: WeightCacheStore, key: string, weights: MistralWeights, identity: CacheIdentity, onProgress?: (p: LoadProgress) => void): Promise<void> {
  const manifest = weightsManifest(weights);
  await store.write(key, entryChunks(manifest, identity, downloadWeightParts(ctx, weights), onProgress), entryBytes(manifest, identity));
}

/** The footer's bytes. Every hash is 64 hex digits, so a footer with placeholder hashes has the final one's length. */
function encodeFooter(identity: CacheIdentity, manifest: WeightsManifest, manifestSha256: string, parts: Footer['parts']): Uint8Array {
  return new TextEncoder().encode(JSON.stringify({ format: WEIGHT_CACHE_FORMAT, identity, manifest, manifestSha256, parts } satisfies Footer));
}

/** The exact size of the entry for these weights: the parts, the footer, the footer's length. */
export function entryBytes(manifest: WeightsManifest, identity: CacheIdentity): number {
  let offset = 0;
  const parts = manifest.parts.map((p) => {
    const at = offset;
    offset += p.bytes;
    return { name: p.name, offset: at, bytes: p.bytes, sha256: '0'.repeat(64) };
  });
  return offset + encodeFooter(identity, manifest, '0'.repeat(64), parts).byteLength + FOOTER_LENGTH_BYTES;
}

/** Loads entry `key` made for `identity`, every part's hash checked; throws when it is missing or unusable. */
export async function readCacheEntry(
  ctx: GpuContext,
  store: WeightCacheStore,
  key: string,
  identity: CacheIdentity,
  onProgress?: (p: LoadProgress) => void,
  streamLayers = false,
): Promise<MistralWeights> {
  const entry = await store.open(key);
  if (!entry) throw new FinetuneError('bad-input', `no weight-cache entry ${key}`);
  try {
    return await loadFromEntry(ctx, entry, identity, onProgress, streamLayers);
  } catch (e) {
    if (e instanceof BadEntry) throw new FinetuneError('bad-input', `weight-cache entry ${key} is unusable: ${e.message}`);
    throw e;
  }
}

async function loadFromEntry(ctx: GpuContext, entry: ByteSource, identity: CacheIdentity, onProgress?: (p: LoadProgress) => void, streamLayers = false): Promise<MistralWeights> {
  const footer = await readFooter(entry);
  if (JSON.stringify(footer.identity) !== JSON.stringify(identity)) throw new BadEntry('it was made from other files');
  const where = new Map(footer.parts.map((p) => [p.name, p]));
  const total = footer.parts.reduce((a, p) => a + p.bytes, 0);
  let done = 0;
  let bytesDone = 0;
  const t0 = Date.now();
  const upload = uploadWeightParts(
    ctx,
    footer.manifest,
    async (part: WeightPart) => {
      const p = where.get(part.name);
      if (!p || p.bytes !== part.bytes) throw new BadEntry(`part ${part.name} is missing`);
      const bytes = await readEntry(entry, p.offset, p.bytes, `part ${part.name}`);
      if ((await sha256Hex(bytes)) !== p.sha256) throw new BadEntry(`part ${part.name} does not match its hash`);
      return bytes;
    },
    (part) => {
      done++;
      bytesDone += part.bytes;
      const s = (Date.now() - t0) / 1000;
      const rate = s > 0 ? bytesDone / s : 0;
      onProgress?.({ tensor: part.name, done, total: footer.parts.length, bytesDone, bytesTotal: total, phase: 'loading from cache', bytesPerSecond: rate, etaSeconds: rate > 0 ? (total - bytesDone) / rate : null });
    },
    { streamLayers },
  );
  if (footer.manifestSha256 !== undefined) return upload;
  // An entry from before manifests were hashed: its manifest is unchecked, so one that does not describe its parts (a
  // layer it cannot have, a part missing) is a damaged entry to rebuild, not an internal error failing every load.
  return upload.catch((e: unknown) => {
    if (isFinetuneError(e) && e.kind === 'internal') throw new BadEntry(`its manifest does not describe its parts: ${e.message}`);
    throw e;
  });
}

/**
 * An entry's bytes, chunk by chunk: each part as it arrives (read back from the GPU, one at a time), hashed on the way,
 * then the footer and its length. Exported for tests, which build entries without a GPU.
 */
export async function* entryChunks(
  manifest: WeightsManifest,
  identity: CacheIdentity,
  partBytes: AsyncIterable<{ part: WeightPart; bytes: Uint8Array }>,
  onProgress?: (p: LoadProgress) => void,
): AsyncGenerator<Uint8Array> {
  const parts: Footer['parts'] = [];
  const total = manifest.parts.reduce((a, p) => a + p.bytes, 0);
  let offset = 0;
  for await (const { part, bytes } of partBytes) {
    parts.push({ name: part.name, offset, bytes: bytes.byteLength, sha256: await sha256Hex(bytes) });
    offset += bytes.byteLength;
    onProgress?.({ tensor: part.name, done: parts.length, total: manifest.parts.length, bytesDone: offset, bytesTotal: total, phase: 'caching' });
    yield bytes;
  }
  const footer = encodeFooter(identity, manifest, await manifestHash(manifest), parts);
  const len = new Uint8Array(FOOTER_LENGTH_BYTES);
  new DataView(len.buffer).setBigUint64(0, BigInt(footer.byteLength), true);
  yield footer;
  yield len;
}

/** Checks a key before it names a file: 40 hex digits, nothing else. */
export function checkCacheKey(key: string): string {
  if (!/^[0-9a-f]{40}$/.test(key)) throw new FinetuneError('bad-input', `not a weight-cache key: ${quote(key)}`);
  return key;
}
