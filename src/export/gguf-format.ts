// GGUF v3, llama.cpp's model/adapter container: its constants, value and tensor types, and a writer. The LoRA export
// (gguf-lora.ts) writes through it; the tests read files back with a strict reader of their own
// (test/helpers/gguf-reader.ts). docs/gguf.md describes the conventions in our own words.
//
// Layout, all little-endian:
//   "GGUF" | u32 version (3) | u64 tensor_count | u64 kv_count
//   kv_count × (gguf_string key | u32 value type | value)            gguf_string = u64 byte length + UTF-8 bytes
//   tensor_count × (gguf_string name | u32 n_dims | n_dims × u64 ne | u32 ggml type | u64 offset)
//   padding to `general.alignment` (32 unless the KV says otherwise), then the data section: each tensor at its
//   offset (relative to the data section), consecutive, every one padded to the alignment.
// ne[0] is the innermost (contiguous) axis = the LAST PyTorch axis: a PyTorch (out, in) matrix has ne = [in, out].
// Here `shape` is always the PyTorch order (outermost first) and `ne` the order stored in the file.

import { FinetuneError } from '../core/errors.ts';
import { GGUF_MAGIC, startsWithGgufMagic } from '../core/gguf-magic.ts';
import { quote } from '../core/quote.ts';

export { GGUF_MAGIC };
export const GGUF_VERSION = 3;
export const GGUF_DEFAULT_ALIGNMENT = 32;
/** GGML_MAX_DIMS. */
export const GGUF_MAX_DIMS = 4;
/** llama.cpp stores tensor names in a char[GGML_MAX_NAME = 64] (with its NUL): at most 63 bytes. */
export const GGUF_MAX_NAME_BYTES = 63;

/** KV value type ids (gguf_type). */
export const GgufType = {
  UINT8: 0,
  INT8: 1,
  UINT16: 2,
  INT16: 3,
  UINT32: 4,
  INT32: 5,
  FLOAT32: 6,
  BOOL: 7,
  STRING: 8,
  ARRAY: 9,
  UINT64: 10,
  INT64: 11,
  FLOAT64: 12,
} as const;
export type GgufType = (typeof GgufType)[keyof typeof GgufType];

/** Tensor element type ids (ggml_type) this module knows the storage size of. */
export const GgmlType = {
  F32: 0,
  F16: 1,
  Q4_0: 2,
  Q4_1: 3,
  Q5_0: 6,
  Q5_1: 7,
  Q8_0: 8,
  Q8_1: 9,
  Q2_K: 10,
  Q3_K: 11,
  Q4_K: 12,
  Q5_K: 13,
  Q6_K: 14,
  Q8_K: 15,
  I8: 24,
  I16: 25,
  I32: 26,
  I64: 27,
  F64: 28,
  BF16: 30,
} as const;
export type GgmlType = (typeof GgmlType)[keyof typeof GgmlType];

/** [elements per block, bytes per block] of each known ggml type (ggml.c type_traits). */
const GGML_TYPE_SIZE = new Map<number, readonly [number, number]>([
  [GgmlType.F32, [1, 4]],
  [GgmlType.F16, [1, 2]],
  [GgmlType.Q4_0, [32, 18]],
  [GgmlType.Q4_1, [32, 20]],
  [GgmlType.Q5_0, [32, 22]],
  [GgmlType.Q5_1, [32, 24]],
  [GgmlType.Q8_0, [32, 34]],
  [GgmlType.Q8_1, [32, 36]],
  [GgmlType.Q2_K, [256, 84]],
  [GgmlType.Q3_K, [256, 110]],
  [GgmlType.Q4_K, [256, 144]],
  [GgmlType.Q5_K, [256, 176]],
  [GgmlType.Q6_K, [256, 210]],
  [GgmlType.Q8_K, [256, 292]],
  [GgmlType.I8, [1, 1]],
  [GgmlType.I16, [1, 2]],
  [GgmlType.I32, [1, 4]],
  [GgmlType.I64, [1, 8]],
  [GgmlType.F64, [1, 8]],
  [GgmlType.BF16, [1, 2]],
]);

export function ggmlTypeName(t: number): string {
  for (const [k, v] of Object.entries(GgmlType)) if (v === t) return k;
  return `type ${t}`;
}

// ---------------------------------------------------------------------------------------------------------------
// Values

/** An array value: the element type and the elements (nested arrays are GgufArray again). */
export interface GgufArray {
  itemType: GgufType;
  values: GgufData[];
}
/** number for the 8–32-bit integer and float types, bigint for UINT64/INT64, boolean, string, or an array. */
export type GgufData = number | bigint | boolean | string | GgufArray;

export interface GgufKv {
  key: string;
  type: GgufType;
  value: GgufData;
}

export const kvString = (key: string, value: string): GgufKv => ({ key, type: GgufType.STRING, value });
export const kvU32 = (key: string, value: number): GgufKv => ({ key, type: GgufType.UINT32, value });
export const kvI32 = (key: string, value: number): GgufKv => ({ key, type: GgufType.INT32, value });
export const kvF32 = (key: string, value: number): GgufKv => ({ key, type: GgufType.FLOAT32, value });
export const kvBool = (key: string, value: boolean): GgufKv => ({ key, type: GgufType.BOOL, value });
export const kvU64 = (key: string, value: bigint): GgufKv => ({ key, type: GgufType.UINT64, value });
export const kvArray = (key: string, itemType: GgufType, values: GgufData[]): GgufKv => ({ key, type: GgufType.ARRAY, value: { itemType, values } });

const SCALAR_SIZE: Readonly<Record<number, number>> = {
  [GgufType.UINT8]: 1,
  [GgufType.INT8]: 1,
  [GgufType.UINT16]: 2,
  [GgufType.INT16]: 2,
  [GgufType.UINT32]: 4,
  [GgufType.INT32]: 4,
  [GgufType.FLOAT32]: 4,
  [GgufType.BOOL]: 1,
  [GgufType.UINT64]: 8,
  [GgufType.INT64]: 8,
  [GgufType.FLOAT64]: 8,
};

export function isGgufType(t: number): t is GgufType {
  return Number.isInteger(t) && t >= 0 && t <= 12;
}

/** Fewest bytes one value of this type can take in a file (used to bound counts before looping). */
export function minValueBytes(t: GgufType): number {
  if (t === GgufType.STRING) return 8;
  if (t === GgufType.ARRAY) return 12;
  return SCALAR_SIZE[t];
}

/** Arrays inside arrays deeper than this are refused (the format allows nesting; nobody uses more than one level). */
export const MAX_ARRAY_NESTING = 8;

const textEncoder = new TextEncoder();
const LITTLE_ENDIAN = new Uint8Array(new Uint16Array([1]).buffer)[0] === 1;

export function alignUp(n: number, a: number): number {
  return Math.ceil(n / a) * a;
}

export function isPowerOfTwo(n: number): boolean {
  return Number.isSafeInteger(n) && n > 0 && (n & (n - 1)) === 0;
}

// ---------------------------------------------------------------------------------------------------------------
// Peeking at a header

/**
 * The value of the string KV `key` in a GGUF file (v2 or v3) of which `head` holds the first bytes: the KVs are read in
 * order, each skipped until `key`. Null when the bytes are not such a file, `key` is not among the KVs (or not a
 * string), or the KVs run past `head` before it. Enough to tell an adapter (general.type "adapter") from a model
 * without reading a multi-gigabyte file; test/helpers/gguf-reader.ts is the strict reader.
 */
export function ggufHeaderString(head: Uint8Array, key: string): string | null {
  const v = new DataView(head.buffer, head.byteOffset, head.byteLength);
  const decoder = new TextDecoder('utf-8', { fatal: false });
  let pos = 0;
  const has = (n: number): boolean => Number.isSafeInteger(n) && n >= 0 && pos + n <= head.byteLength;
  const u32 = (): number | null => {
    if (!has(4)) return null;
    const x = v.getUint32(pos, true);
    pos += 4;
    return x;
  };
  const u64 = (): number | null => {
    if (!has(8)) return null;
    const x = v.getBigUint64(pos, true);
    pos += 8;
    return x <= BigInt(Number.MAX_SAFE_INTEGER) ? Number(x) : null;
  };
  const str = (): string | null => {
    const n = u64();
    if (n === null || !has(n)) return null;
    const s = decoder.decode(head.subarray(pos, pos + n));
    pos += n;
    return s;
  };
  /** Moves past one value of `type`; false when it runs past `head` or is not a value GGUF has. */
  const skip = (type: number, depth: number): boolean => {
    if (!isGgufType(type)) return false;
    if (type === GgufType.STRING) return str() !== null;
    if (type === GgufType.ARRAY) {
      const item = u32();
      const count = u64();
      if (item === null || count === null || depth >= MAX_ARRAY_NESTING || !isGgufType(item)) return false;
      if (item !== GgufType.STRING && item !== GgufType.ARRAY) {
        const bytes = count * SCALAR_SIZE[item];
        if (!has(bytes)) return false;
        pos += bytes;
        return true;
      }
      // Each element takes at least minValueBytes: a forged count cannot loop past the bytes there are.
      if (!has(count * minValueBytes(item))) return false;
      for (let i = 0; i < count; i++) if (!skip(item, depth + 1)) return false;
      return true;
    }
    const size = SCALAR_SIZE[type];
    if (!has(size)) return false;
    pos += size;
    return true;
  };
  if (!startsWithGgufMagic(head)) return null;
  pos = 4;
  const version = u32();
  if (version !== 2 && version !== 3) return null;
  if (u64() === null) return null; // tensor_count
  const kvCount = u64();
  if (kvCount === null) return null;
  for (let i = 0; i < kvCount; i++) {
    const k = str();
    const type = u32();
    if (k === null || type === null) return null;
    if (k === key) return type === GgufType.STRING ? str() : null;
    if (!skip(type, 0)) return null;
  }
  return null;
}

// ---------------------------------------------------------------------------------------------------------------
// Writer

export interface GgufTensorToWrite {
  name: string;
  /** PyTorch order, outermost first (written reversed, as ne). */
  shape: readonly number[];
  type: GgmlType;
  /** The elements: a Float32Array for F32, a Uint16Array of bit patterns for F16/BF16, or the raw bytes. */
  data: Float32Array | Uint16Array | Uint8Array;
}

export function internal(message: string): FinetuneError {
  return new FinetuneError('internal', `GGUF writer: ${message}`);
}

/** Bytes of a tensor of this type and shape, or an error message. */
export function tensorBytes(type: number, ne: readonly number[]): number | string {
  const ts = GGML_TYPE_SIZE.get(type);
  if (!ts) return `unsupported ggml type ${type}`;
  const [block, size] = ts;
  if (ne[0] % block !== 0) return `ne[0] = ${ne[0]} is not a multiple of the ${ggmlTypeName(type)} block size ${block}`;
  let n = 1;
  for (const d of ne) {
    n *= d;
    if (!Number.isSafeInteger(n)) return `element count overflows`;
  }
  const bytes = (n / block) * size;
  if (!Number.isSafeInteger(bytes)) return `byte size overflows`;
  return bytes;
}

class ByteWriter {
  buf: Uint8Array;
  view: DataView;
  pos = 0;
  constructor(initial = 1024) {
    this.buf = new Uint8Array(initial);
    this.view = new DataView(this.buf.buffer);
  }
  reserve(n: number): void {
    if (this.pos + n <= this.buf.byteLength) return;
    let cap = this.buf.byteLength * 2;
    while (cap < this.pos + n) cap *= 2;
    const next = new Uint8Array(cap);
    next.set(this.buf.subarray(0, this.pos));
    this.buf = next;
    this.view = new DataView(next.buffer);
  }
  u8(v: number): void {
    this.reserve(1);
    this.view.setUint8(this.pos, v);
    this.pos += 1;
  }
  i8(v: number): void {
    this.reserve(1);
    this.view.setInt8(this.pos, v);
    this.pos += 1;
  }
  u16(v: number): void {
    this.reserve(2);
    this.view.setUint16(this.pos, v, true);
    this.pos += 2;
  }
  i16(v: number): void {
    this.reserve(2);
    this.view.setInt16(this.pos, v, true);
    this.pos += 2;
  }
  u32(v: number): void {
    this.reserve(4);
    this.view.setUint32(this.pos, v, true);
    this.pos += 4;
  }
  i32(v: number): void {
    this.reserve(4);
    this.view.setInt32(this.pos, v, true);
    this.pos += 4;
  }
  f32(v: number): void {
    this.reserve(4);
    this.view.setFloat32(this.pos, v, true);
    this.pos += 4;
  }
  f64(v: number): void {
    this.reserve(8);
    this.view.setFloat64(this.pos, v, true);
    this.pos += 8;
  }
  u64(v: bigint): void {
    this.reserve(8);
    this.view.setBigUint64(this.pos, v, true);
    this.pos += 8;
  }
  i64(v: bigint): void {
    this.reserve(8);
    this.view.setBigInt64(this.pos, v, true);
    this.pos += 8;
  }
  bytes(b: Uint8Array): void {
    this.reserve(b.byteLength);
    this.buf.set(b, this.pos);
    this.pos += b.byteLength;
  }
  string(s: string): void {
    const b = textEncoder.encode(s);
    this.u64(BigInt(b.byteLength));
    this.bytes(b);
  }
}

const INT_RANGE: Readonly<Record<number, readonly [number, number]>> = {
  [GgufType.UINT8]: [0, 0xff],
  [GgufType.INT8]: [-0x80, 0x7f],
  [GgufType.UINT16]: [0, 0xffff],
  [GgufType.INT16]: [-0x8000, 0x7fff],
  [GgufType.UINT32]: [0, 0xffffffff],
  [GgufType.INT32]: [-0x80000000, 0x7fffffff],
};

function writeValue(w: ByteWriter, type: GgufType, v: GgufData, where: string, depth: number): void {
  const wrong = (): FinetuneError => internal(`${where}: value ${typeof v === 'bigint' ? `${v}n` : quote(v)} does not fit type ${type}`);
  switch (type) {
    case GgufType.UINT8:
    case GgufType.INT8:
    case GgufType.UINT16:
    case GgufType.INT16:
    case GgufType.UINT32:
    case GgufType.INT32: {
      const [lo, hi] = INT_RANGE[type];
      if (typeof v !== 'number' || !Number.isInteger(v) || v < lo || v > hi) throw wrong();
      if (type === GgufType.UINT8) w.u8(v);
      else if (type === GgufType.INT8) w.i8(v);
      else if (type === GgufType.UINT16) w.u16(v);
      else if (type === GgufType.INT16) w.i16(v);
      else if (type === GgufType.UINT32) w.u32(v);
      else w.i32(v);
      return;
    }
    case GgufType.FLOAT32:
      if (typeof v !== 'number') throw wrong();
      w.f32(v);
      return;
    case GgufType.FLOAT64:
      if (typeof v !== 'number') throw wrong();
      w.f64(v);
      return;
    case GgufType.UINT64:
      if (typeof v !== 'bigint' || v < 0n || v > 0xffffffffffffffffn) throw wrong();
      w.u64(v);
      return;
    case GgufType.INT64:
      if (typeof v !== 'bigint' || v < -(2n ** 63n) || v >= 2n ** 63n) throw wrong();
      w.i64(v);
      return;
    case GgufType.BOOL:
      if (typeof v !== 'boolean') throw wrong();
      w.u8(v ? 1 : 0);
      return;
    case GgufType.STRING:
      if (typeof v !== 'string') throw wrong();
      w.string(v);
      return;
    case GgufType.ARRAY: {
      if (typeof v !== 'object' || v === null || !Array.isArray(v.values) || !isGgufType(v.itemType)) throw wrong();
      if (depth >= MAX_ARRAY_NESTING) throw internal(`${where}: arrays nested deeper than ${MAX_ARRAY_NESTING}`);
      w.u32(v.itemType);
      w.u64(BigInt(v.values.length));
      v.values.forEach((x, i) => writeValue(w, v.itemType, x, `${where}[${i}]`, depth + 1));
      return;
    }
    default:
      throw internal(`${where}: unknown value type ${String(type)}`);
  }
}

function dataBytes(t: GgufTensorToWrite, expected: number): Uint8Array {
  const d = t.data;
  if (d instanceof Float32Array && t.type !== GgmlType.F32) throw internal(`${t.name}: a Float32Array is only valid for F32 data`);
  if (d instanceof Uint16Array && t.type !== GgmlType.F16 && t.type !== GgmlType.BF16) throw internal(`${t.name}: a Uint16Array is only valid for F16/BF16 data`);
  if (d.byteLength !== expected) throw internal(`${t.name}: ${d.byteLength} data bytes for ${ggmlTypeName(t.type)} [${t.shape.join(', ')}], expected ${expected}`);
  if (d instanceof Uint8Array) return d;
  if (LITTLE_ENDIAN) return new Uint8Array(d.buffer, d.byteOffset, d.byteLength);
  // Big-endian host: write element by element.
  const out = new Uint8Array(d.byteLength);
  const v = new DataView(out.buffer);
  if (d instanceof Float32Array) d.forEach((x, i) => v.setFloat32(4 * i, x, true));
  else d.forEach((x, i) => v.setUint16(2 * i, x, true));
  return out;
}

/**
 * A GGUF v3 file. KVs are written in the order given; `general.alignment` (UINT32, a power of two), when present,
 * sets the alignment, else it is 32. Tensors are laid out in the order given, each padded to the alignment
 * (the last one too, as gguf-py does).
 */
export function writeGguf(kvs: readonly GgufKv[], tensors: readonly GgufTensorToWrite[]): Uint8Array {
  const keys = new Set<string>();
  let alignment = GGUF_DEFAULT_ALIGNMENT;
  for (const kv of kvs) {
    if (keys.has(kv.key)) throw internal(`duplicate key ${quote(kv.key)}`);
    keys.add(kv.key);
    if (kv.key === 'general.alignment') {
      if (kv.type !== GgufType.UINT32 || typeof kv.value !== 'number' || !isPowerOfTwo(kv.value)) throw internal('general.alignment must be a UINT32 power of two');
      alignment = kv.value;
    }
  }
  const names = new Set<string>();
  const layout: { bytes: number; offset: number; ne: number[] }[] = [];
  let dataSize = 0;
  for (const t of tensors) {
    if (names.has(t.name)) throw internal(`duplicate tensor name ${quote(t.name)}`);
    names.add(t.name);
    const nameBytes = textEncoder.encode(t.name).byteLength;
    if (nameBytes === 0 || nameBytes > GGUF_MAX_NAME_BYTES) throw internal(`tensor name ${quote(t.name)} must be 1–${GGUF_MAX_NAME_BYTES} bytes (llama.cpp's limit)`);
    if (t.shape.length < 1 || t.shape.length > GGUF_MAX_DIMS) throw internal(`${t.name}: ${t.shape.length} dimensions (1–${GGUF_MAX_DIMS} allowed)`);
    if (!t.shape.every((d) => Number.isSafeInteger(d) && d >= 0)) throw internal(`${t.name}: bad shape [${t.shape.join(', ')}]`);
    const ne = [...t.shape].reverse();
    const bytes = tensorBytes(t.type, ne);
    if (typeof bytes === 'string') throw internal(`${t.name}: ${bytes}`);
    layout.push({ bytes, offset: dataSize, ne });
    dataSize += alignUp(bytes, alignment);
  }

  const w = new ByteWriter(4096);
  w.bytes(textEncoder.encode(GGUF_MAGIC));
  w.u32(GGUF_VERSION);
  w.u64(BigInt(tensors.length));
  w.u64(BigInt(kvs.length));
  for (const kv of kvs) {
    w.string(kv.key);
    if (!isGgufType(kv.type)) throw internal(`${kv.key}: unknown value type ${String(kv.type)}`);
    w.u32(kv.type);
    writeValue(w, kv.type, kv.value, kv.key, 0);
  }
  tensors.forEach((t, i) => {
    w.string(t.name);
    w.u32(layout[i].ne.length);
    for (const d of layout[i].ne) w.u64(BigInt(d));
    w.u32(t.type);
    w.u64(BigInt(layout[i].offset));
  });
  const dataStart = alignUp(w.pos, alignment);
  const out = new Uint8Array(dataStart + dataSize);
  out.set(w.buf.subarray(0, w.pos));
  tensors.forEach((t, i) => out.set(dataBytes(t, layout[i].bytes), dataStart + layout[i].offset));
  return out;
}
