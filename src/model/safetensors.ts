// safetensors: reader (header parsing with strict validation, tensor reads through a ByteSource, CPU dtype
// conversion) and writer (the same layout as the reference Rust/Python library: tensors sorted by descending dtype
// alignment then name, header JSON space-padded to a multiple of 8 bytes).
//
// Layout: 8-byte little-endian header length N, N bytes of UTF-8 JSON {name: {dtype, shape, data_offsets: [begin,
// end)}, "__metadata__"?: {string: string}}, then the data; offsets are relative to the first byte after the header.

import { f32ToF16Bits, f16ArrayToF32, bf16ArrayToF32 } from '../core/dtypes.ts';
import { FinetuneError } from '../core/errors.ts';
import { duplicateTopLevelKey, jsonTooDeepAt } from '../core/bounded-json.ts';
import type { ByteSource } from './source.ts';
import { quote, visibleText } from '../core/quote.ts';

export type SafetensorsDtype = 'BOOL' | 'U8' | 'I8' | 'I16' | 'U16' | 'F16' | 'BF16' | 'I32' | 'U32' | 'F32' | 'F64' | 'I64' | 'U64';

/** Bytes per element. Also the list of dtypes we accept. */
export const DTYPE_SIZE: Readonly<Record<SafetensorsDtype, number>> = {
  BOOL: 1,
  U8: 1,
  I8: 1,
  I16: 2,
  U16: 2,
  F16: 2,
  BF16: 2,
  I32: 4,
  U32: 4,
  F32: 4,
  F64: 8,
  I64: 8,
  U64: 8,
};

/** The reference library's dtype order (its enum order); files sort tensors by it, descending. */
const DTYPE_RANK: Readonly<Record<SafetensorsDtype, number>> = {
  BOOL: 0,
  U8: 1,
  I8: 2,
  I16: 5,
  U16: 6,
  F16: 7,
  BF16: 8,
  I32: 9,
  U32: 10,
  F32: 11,
  F64: 12,
  I64: 13,
  U64: 14,
};

export function isSafetensorsDtype(x: unknown): x is SafetensorsDtype {
  return typeof x === 'string' && Object.prototype.hasOwnProperty.call(DTYPE_SIZE, x);
}

export interface TensorInfo {
  name: string;
  dtype: SafetensorsDtype;
  shape: number[];
  /** Offsets relative to the start of the data section, [begin, end). */
  begin: number;
  end: number;
  /** Absolute offset of the tensor's first byte in the file (8 + headerLength + begin). */
  offset: number;
  /** Number of elements (product of shape; 1 for a scalar). */
  numel: number;
}

export interface SafetensorsHeader {
  /** N, the JSON header's length in bytes (padding included). */
  headerLength: number;
  /** Absolute offset of the data section: 8 + headerLength. */
  dataOffset: number;
  /** Size of the whole file. */
  fileSize: number;
  /** Tensors in file order (by begin offset). */
  tensors: Map<string, TensorInfo>;
  /** `__metadata__`, or null when the file has none. */
  metadata: Record<string, string> | null;
}

/** Headers bigger than this are refused, as by the reference implementation. */
export const MAX_HEADER_LENGTH = 100_000_000;

// `where` names the input as it was given (a picked file or folder, a path, a Hub file): a path label, written with
// visibleText's escapes (no quotes, so it reads as a path) so that a bidirectional control in it cannot reorder the message.
function bad(where: string, message: string): FinetuneError {
  return new FinetuneError('bad-input', `${visibleText(where)}: ${message}`);
}

function describe(x: unknown): string {
  let s: string;
  try {
    s = quote(x);
  } catch {
    s = String(x);
  }
  return s.length > 80 ? `${s.slice(0, 77)}...` : s;
}

function isPlainObject(x: unknown): x is Record<string, unknown> {
  return typeof x === 'object' && x !== null && !Array.isArray(x);
}

/** Reads N, the header length, from the first 8 bytes (validated against the file size). */
function headerLengthOf(first8: Uint8Array, fileSize: number, where: string): number {
  if (fileSize < 8 || first8.byteLength < 8) {
    throw bad(where, `not a safetensors file: ${fileSize} bytes is shorter than the 8-byte header length`);
  }
  const dv = new DataView(first8.buffer, first8.byteOffset, 8);
  const lo = dv.getUint32(0, true);
  const hi = dv.getUint32(4, true);
  if (hi !== 0 || lo > MAX_HEADER_LENGTH) {
    // As a BigInt: past 2^53 a double rounds it (2^63 read "9223372036854776000").
    const n = dv.getBigUint64(0, true);
    throw bad(where, `not a safetensors file: header length ${n} is absurd (limit ${MAX_HEADER_LENGTH} bytes)`);
  }
  if (lo < 2) throw bad(where, `not a safetensors file: header length ${lo} is too small for a JSON object`);
  if (8 + lo > fileSize) {
    throw bad(where, `header length ${lo} goes beyond the end of the file (${fileSize} bytes): the file is truncated or not safetensors`);
  }
  return lo;
}

/**
 * Parses and validates a header. `bytes` is the start of the file, holding at least 8 + N bytes (the whole file is
 * fine); `fileSize` is the size of the whole file (default bytes.byteLength), against which data offsets are checked.
 */
export function parseSafetensorsHeaderBytes(bytes: Uint8Array, fileSize = bytes.byteLength, where = 'safetensors'): SafetensorsHeader {
  const n = headerLengthOf(bytes.subarray(0, 8), fileSize, where);
  if (bytes.byteLength < 8 + n) throw bad(where, `only ${bytes.byteLength} bytes given, the header needs ${8 + n}`);
  return parseHeaderJson(bytes.subarray(8, 8 + n), n, fileSize, where);
}

/** Parses a header from a whole file in memory or from a ByteSource (two reads: 8 bytes, then the JSON). */
export async function parseSafetensorsHeader(input: Uint8Array | ByteSource, where?: string): Promise<SafetensorsHeader> {
  if (input instanceof Uint8Array) return parseSafetensorsHeaderBytes(input, input.byteLength, where);
  const label = where ?? input.name;
  if (input.size < 8) headerLengthOf(new Uint8Array(8), input.size, label); // throws "shorter than 8 bytes"
  const first8 = await input.read(0, 8);
  const n = headerLengthOf(first8, input.size, label);
  const json = await input.read(8, n);
  return parseHeaderJson(json, n, input.size, label);
}

/** A header is three levels deep; the bound leaves room and stops hostile nesting before it is parsed. */
const HEADER_MAX_DEPTH = 8;

function parseHeaderJson(jsonBytes: Uint8Array, n: number, fileSize: number, where: string): SafetensorsHeader {
  let text: string;
  try {
    text = new TextDecoder('utf-8', { fatal: true, ignoreBOM: true }).decode(jsonBytes);
  } catch {
    throw bad(where, 'header is not valid UTF-8');
  }
  // A header is three levels deep ({name: {shape: [...]}}): anything much deeper is refused before it is parsed.
  if (jsonTooDeepAt(text, HEADER_MAX_DEPTH) >= 0) throw bad(where, `header nests JSON deeper than ${HEADER_MAX_DEPTH} levels; not a safetensors header`);
  let parsed: unknown;
  try {
    parsed = JSON.parse(text);
  } catch (e) {
    throw bad(where, `header is not valid JSON (${(e as Error).message})`);
  }
  if (!isPlainObject(parsed)) throw bad(where, `header JSON is not an object but ${describe(parsed)}`);
  // JSON.parse keeps the last of two entries with one name; a file with two tensors of one name is corrupt or forged.
  const twice = duplicateTopLevelKey(text);
  if (twice !== null) throw bad(where, `the header names ${twice === '__metadata__' ? '__metadata__' : `tensor ${quote(twice)}`} twice`);

  const dataOffset = 8 + n;
  const dataSize = fileSize - dataOffset;
  let metadata: Record<string, string> | null = null;
  const list: TensorInfo[] = [];
  for (const [name, entry] of Object.entries(parsed)) {
    if (name === '__metadata__') {
      if (!isPlainObject(entry)) throw bad(where, `__metadata__ must be an object of strings, got ${describe(entry)}`);
      const md: Record<string, string> = {};
      for (const [k, v] of Object.entries(entry)) {
        if (typeof v !== 'string') throw bad(where, `__metadata__[${quote(k)}] must be a string, got ${describe(v)}`);
        md[k] = v;
      }
      metadata = md;
      continue;
    }
    const t = `tensor ${quote(name)}`;
    if (!isPlainObject(entry)) throw bad(where, `${t}: entry must be an object, got ${describe(entry)}`);
    const { dtype, shape, data_offsets: offsets } = entry;
    if (!isSafetensorsDtype(dtype)) {
      throw bad(where, `${t}: unknown dtype ${describe(dtype)} (supported: ${Object.keys(DTYPE_SIZE).join(', ')})`);
    }
    if (!Array.isArray(shape) || !shape.every((d) => Number.isSafeInteger(d) && (d as number) >= 0)) {
      throw bad(where, `${t}: shape must be a list of non-negative integers, got ${describe(shape)}`);
    }
    if (
      !Array.isArray(offsets) ||
      offsets.length !== 2 ||
      !offsets.every((o) => Number.isSafeInteger(o) && (o as number) >= 0) ||
      (offsets[0] as number) > (offsets[1] as number)
    ) {
      throw bad(where, `${t}: data_offsets must be [begin, end] with integers 0 <= begin <= end, got ${describe(offsets)}`);
    }
    const dims = shape as number[];
    let numel = 1;
    for (const d of dims) numel *= d;
    const expected = numel * DTYPE_SIZE[dtype];
    const [begin, end] = offsets as [number, number];
    if (!Number.isSafeInteger(expected) || end - begin !== expected) {
      throw bad(
        where,
        `${t}: data_offsets [${begin}, ${end}] hold ${end - begin} bytes but shape ${describe(dims)} of ${dtype} needs ${Number.isSafeInteger(expected) ? expected : 'an impossible number of'} bytes`,
      );
    }
    if (end > dataSize) {
      const missing = end - Math.max(dataSize, 0);
      throw bad(
        where,
        `${t}: its data ends at byte ${end} of the data section but the file only has ${Math.max(dataSize, 0)} data bytes: the file is truncated, ${missing} bytes missing`,
      );
    }
    list.push({ name, dtype, shape: dims.slice(), begin, end, offset: dataOffset + begin, numel });
  }
  list.sort((a, b) => a.begin - b.begin || a.end - b.end);
  // Empty tensors occupy no bytes and overlap nothing; among the others, each must start at or after the furthest
  // end seen so far.
  let last: TensorInfo | null = null;
  for (const cur of list) {
    if (cur.end === cur.begin) continue;
    if (last && cur.begin < last.end) {
      throw bad(where, `tensors ${quote(last.name)} [${last.begin}, ${last.end}) and ${quote(cur.name)} [${cur.begin}, ${cur.end}) overlap`);
    }
    if (!last || cur.end > last.end) last = cur;
  }
  const tensors = new Map<string, TensorInfo>();
  for (const t of list) tensors.set(t.name, t);
  return { headerLength: n, dataOffset, fileSize, tensors, metadata };
}

/** Reads one tensor's raw bytes (little-endian, row-major). */
export async function readTensor(source: ByteSource, info: TensorInfo): Promise<Uint8Array> {
  const length = info.end - info.begin;
  if (info.offset < 0 || info.offset + length > source.size) {
    throw new FinetuneError('bad-input', `${visibleText(source.name)}: tensor ${quote(info.name)} lies outside the file (${source.size} bytes)`);
  }
  const bytes = await source.read(info.offset, length);
  if (bytes.byteLength !== length) {
    throw new FinetuneError('bad-input', `${visibleText(source.name)}: short read for tensor ${quote(info.name)}: ${bytes.byteLength} of ${length} bytes`);
  }
  return bytes;
}

/** A safetensors file opened through a ByteSource: header parsed once, tensors read on demand. */
export interface SafetensorsFile {
  source: ByteSource;
  header: SafetensorsHeader;
  names(): string[];
  info(name: string): TensorInfo;
  read(name: string): Promise<Uint8Array>;
}

export async function openSafetensors(source: ByteSource): Promise<SafetensorsFile> {
  const header = await parseSafetensorsHeader(source);
  const info = (name: string): TensorInfo => {
    const t = header.tensors.get(name);
    if (!t) throw new FinetuneError('bad-input', `${visibleText(source.name)}: no tensor named ${quote(name)}`);
    return t;
  };
  return {
    source,
    header,
    names: () => [...header.tensors.keys()],
    info,
    read: (name) => readTensor(source, info(name)),
  };
}

// ---------------------------------------------------------------------------------------------------------------
// dtype conversion on the CPU

const LITTLE_ENDIAN = new Uint8Array(new Uint16Array([1]).buffer)[0] === 1;

/** A copy of `bytes` in a fresh, aligned ArrayBuffer (typed-array views need element alignment). */
function aligned(bytes: Uint8Array): ArrayBuffer {
  if (!LITTLE_ENDIAN) throw new FinetuneError('internal', 'big-endian platforms are not supported');
  const buf = new ArrayBuffer(bytes.byteLength);
  new Uint8Array(buf).set(bytes);
  return buf;
}

function checkLength(bytes: Uint8Array, dtype: SafetensorsDtype): number {
  const size = DTYPE_SIZE[dtype];
  if (bytes.byteLength % size !== 0) {
    throw new FinetuneError('bad-input', `${bytes.byteLength} bytes is not a whole number of ${dtype} elements`);
  }
  return bytes.byteLength / size;
}

/** Converts BF16/F16/F32/F64 bytes to a new Float32Array (F64 is rounded to f32). */
export function toFloat32(bytes: Uint8Array, dtype: SafetensorsDtype): Float32Array {
  const n = checkLength(bytes, dtype);
  const buf = aligned(bytes);
  switch (dtype) {
    case 'F32':
      return new Float32Array(buf);
    case 'BF16': {
      return bf16ArrayToF32(new Uint16Array(buf));
    }
    case 'F16': {
      return f16ArrayToF32(new Uint16Array(buf));
    }
    case 'F64':
      return Float32Array.from(new Float64Array(buf));
    default:
      throw new FinetuneError('bad-input', `cannot convert ${dtype} to float32: not a floating-point dtype`);
  }
}

/** Converts any numeric dtype to a new Float64Array (exact except I64/U64 beyond 2^53). */
export function toFloat64(bytes: Uint8Array, dtype: SafetensorsDtype): Float64Array {
  checkLength(bytes, dtype);
  if (dtype === 'F64') return new Float64Array(aligned(bytes));
  if (dtype === 'BF16' || dtype === 'F16' || dtype === 'F32') return Float64Array.from(toFloat32(bytes, dtype));
  const t = typedView(bytes, dtype);
  if (t instanceof BigInt64Array || t instanceof BigUint64Array) return Float64Array.from(t, (v) => Number(v));
  return Float64Array.from(t as ArrayLike<number>);
}

export type TypedArrayFor<D extends SafetensorsDtype> = D extends 'F32'
  ? Float32Array
  : D extends 'F64'
    ? Float64Array
    : D extends 'I32'
      ? Int32Array
      : D extends 'U32'
        ? Uint32Array
        : D extends 'I64'
          ? BigInt64Array
          : D extends 'U64'
            ? BigUint64Array
            : D extends 'I16'
              ? Int16Array
              : D extends 'U16' | 'F16' | 'BF16'
                ? Uint16Array
                : D extends 'I8'
                  ? Int8Array
                  : Uint8Array;

/** A typed array (a copy) of the raw elements; BF16 and F16 come back as their Uint16 bit patterns. */
export function typedView<D extends SafetensorsDtype>(bytes: Uint8Array, dtype: D): TypedArrayFor<D> {
  checkLength(bytes, dtype);
  const buf = aligned(bytes);
  const make = (): ArrayBufferView => {
    switch (dtype) {
      case 'F32':
        return new Float32Array(buf);
      case 'F64':
        return new Float64Array(buf);
      case 'I32':
        return new Int32Array(buf);
      case 'U32':
        return new Uint32Array(buf);
      case 'I64':
        return new BigInt64Array(buf);
      case 'U64':
        return new BigUint64Array(buf);
      case 'I16':
        return new Int16Array(buf);
      case 'U16':
      case 'F16':
      case 'BF16':
        return new Uint16Array(buf);
      case 'I8':
        return new Int8Array(buf);
      default:
        return new Uint8Array(buf);
    }
  };
  return make() as TypedArrayFor<D>;
}

/** Encodes float values as BF16/F16/F32/F64 bytes (BF16 and F16 round to nearest even). */
export function fromFloat32(values: ArrayLike<number>, dtype: 'BF16' | 'F16' | 'F32' | 'F64'): Uint8Array {
  const n = values.length;
  switch (dtype) {
    case 'F32':
      return new Uint8Array(Float32Array.from(values).buffer);
    case 'F64':
      return new Uint8Array(Float64Array.from(values).buffer);
    case 'BF16': {
      const f = Float32Array.from(values);
      const u = new Uint32Array(f.buffer);
      const out = new Uint16Array(n);
      for (let i = 0; i < n; i++) {
        const v = u[i];
        if ((v & 0x7f800000) === 0x7f800000 && v & 0x7fffff) out[i] = (v >>> 16) | 0x40; // keep NaN a NaN
        else out[i] = (v + 0x7fff + ((v >>> 16) & 1)) >>> 16;
      }
      return new Uint8Array(out.buffer);
    }
    case 'F16': {
      const out = new Uint16Array(n);
      for (let i = 0; i < n; i++) out[i] = f32ToF16Bits(values[i]);
      return new Uint8Array(out.buffer);
    }
  }
}

// ---------------------------------------------------------------------------------------------------------------
// Writer

export interface TensorToWrite {
  name: string;
  dtype: SafetensorsDtype;
  shape: number[];
  /** Raw little-endian bytes, or a typed array whose bytes are used as they are. */
  data: Uint8Array | ArrayBufferView;
}

/** Orders strings by Unicode code point (= UTF-8 byte order, as Rust's String ordering). */
function compareCodePoints(a: string, b: string): number {
  const ia = a[Symbol.iterator]();
  const ib = b[Symbol.iterator]();
  for (;;) {
    const x = ia.next();
    const y = ib.next();
    if (x.done || y.done) return x.done && y.done ? 0 : x.done ? -1 : 1;
    const cx = x.value.codePointAt(0) as number;
    const cy = y.value.codePointAt(0) as number;
    if (cx !== cy) return cx - cy;
  }
}

/**
 * Serialises tensors (and optional string metadata) like the reference library: tensors sorted by descending dtype
 * alignment then name, offsets contiguous from 0, `__metadata__` first, compact JSON padded with spaces to a
 * multiple of 8 bytes.
 */
export function writeSafetensors(tensors: TensorToWrite[], metadata?: Record<string, string> | null): Uint8Array {
  const seen = new Set<string>();
  const items = tensors.map((t) => {
    if (t.name === '__metadata__') throw new FinetuneError('bad-input', 'a tensor cannot be named __metadata__');
    if (seen.has(t.name)) throw new FinetuneError('bad-input', `duplicate tensor name ${quote(t.name)}`);
    seen.add(t.name);
    if (!isSafetensorsDtype(t.dtype)) throw new FinetuneError('bad-input', `${t.name}: unknown dtype ${describe(t.dtype)}`);
    if (!t.shape.every((d) => Number.isSafeInteger(d) && d >= 0)) {
      throw new FinetuneError('bad-input', `${t.name}: shape must be non-negative integers, got ${describe(t.shape)}`);
    }
    const bytes = t.data instanceof Uint8Array ? t.data : new Uint8Array(t.data.buffer, t.data.byteOffset, t.data.byteLength);
    const need = t.shape.reduce((a, b) => a * b, 1) * DTYPE_SIZE[t.dtype];
    if (bytes.byteLength !== need) {
      throw new FinetuneError('bad-input', `${t.name}: ${bytes.byteLength} data bytes for shape ${describe(t.shape)} of ${t.dtype} (needs ${need})`);
    }
    return { name: t.name, dtype: t.dtype, shape: t.shape, bytes };
  });
  items.sort((a, b) => DTYPE_RANK[b.dtype] - DTYPE_RANK[a.dtype] || compareCodePoints(a.name, b.name));

  const header: Record<string, unknown> = {};
  if (metadata) {
    for (const [k, v] of Object.entries(metadata)) {
      if (typeof v !== 'string') throw new FinetuneError('bad-input', `metadata ${k} must be a string`);
    }
    header.__metadata__ = metadata;
  }
  let offset = 0;
  for (const it of items) {
    header[it.name] = { dtype: it.dtype, shape: it.shape, data_offsets: [offset, offset + it.bytes.byteLength] };
    offset += it.bytes.byteLength;
  }
  // JSON.stringify keeps insertion order for string keys, except integer-like keys ("0", "12"), which objects put
  // first. Build the text by hand to keep the order we chose.
  const parts: string[] = [];
  if (metadata) parts.push(`"__metadata__":${JSON.stringify(metadata)}`);
  for (const it of items) parts.push(`${JSON.stringify(it.name)}:${JSON.stringify(header[it.name])}`);
  let json = new TextEncoder().encode(`{${parts.join(',')}}`);
  const pad = (8 - (json.byteLength % 8)) % 8;
  if (pad) {
    const padded = new Uint8Array(json.byteLength + pad).fill(0x20);
    padded.set(json);
    json = padded;
  }
  const out = new Uint8Array(8 + json.byteLength + offset);
  const dv = new DataView(out.buffer);
  dv.setUint32(0, json.byteLength, true);
  dv.setUint32(4, 0, true);
  out.set(json, 8);
  let at = 8 + json.byteLength;
  for (const it of items) {
    out.set(it.bytes, at);
    at += it.bytes.byteLength;
  }
  return out;
}
