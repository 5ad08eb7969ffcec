// A strict GGUF v3 reader for the tests: every field checked, so an export that llama.cpp would misread fails here
// first. It lives with the tests because the product only writes GGUF (src/export/gguf-format.ts).

import { f16BitsToF32 } from '../../src/core/dtypes.ts';
import { FinetuneError } from '../../src/core/errors.ts';
import {
  alignUp,
  GGUF_DEFAULT_ALIGNMENT,
  GGUF_MAGIC,
  GGUF_MAX_DIMS,
  GGUF_MAX_NAME_BYTES,
  GGUF_VERSION,
  GgmlType,
  GgufType,
  ggmlTypeName,
  isGgufType,
  isPowerOfTwo,
  MAX_ARRAY_NESTING,
  minValueBytes,
  tensorBytes,
  type GgufData,
  type GgufKv,
} from '../../src/export/gguf-format.ts';

export interface GgufTensorInfo {
  name: string;
  /** As stored: ne[0] innermost. */
  ne: number[];
  /** PyTorch order (ne reversed). */
  shape: number[];
  type: number;
  numel: number;
  /** Offset relative to the data section. */
  offset: number;
  byteLength: number;
  /** A view of the tensor's bytes inside the input (no copy). */
  data: Uint8Array;
}

export interface GgufFile {
  version: number;
  alignment: number;
  /** KVs in file order. */
  kv: Map<string, GgufKv>;
  /** Tensors in file order. */
  tensors: Map<string, GgufTensorInfo>;
  /** Absolute byte offset of the data section. */
  dataOffset: number;
}

function bad(message: string): FinetuneError {
  return new FinetuneError('bad-input', `GGUF: ${message}`);
}

const utf8 = new TextDecoder('utf-8', { fatal: true });

class Cursor {
  pos = 0;
  readonly view: DataView;
  constructor(readonly bytes: Uint8Array) {
    this.view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  }
  get left(): number {
    return this.bytes.byteLength - this.pos;
  }
  need(n: number, what: string): void {
    if (n > this.left) throw bad(`file ends inside ${what} (byte ${this.pos} needs ${n} more bytes, ${this.left} left)`);
  }
  u8(what: string): number {
    this.need(1, what);
    return this.view.getUint8(this.pos++);
  }
  u32(what: string): number {
    this.need(4, what);
    const v = this.view.getUint32(this.pos, true);
    this.pos += 4;
    return v;
  }
  u64(what: string): bigint {
    this.need(8, what);
    const v = this.view.getBigUint64(this.pos, true);
    this.pos += 8;
    return v;
  }
  /** A u64 used as a count, length, dimension or offset: must be a safe integer. */
  size(what: string): number {
    const v = this.u64(what);
    if (v > BigInt(Number.MAX_SAFE_INTEGER)) throw bad(`${what} ${v} is implausibly large`);
    return Number(v);
  }
  string(what: string): string {
    const n = this.size(`${what} length`);
    this.need(n, what);
    const b = this.bytes.subarray(this.pos, this.pos + n);
    this.pos += n;
    try {
      return utf8.decode(b);
    } catch {
      throw bad(`${what} is not valid UTF-8`);
    }
  }
  value(type: GgufType, what: string, depth: number): GgufData {
    const v = this.view;
    const at = (n: number): number => {
      this.need(n, what);
      const p = this.pos;
      this.pos += n;
      return p;
    };
    switch (type) {
      case GgufType.UINT8:
        return v.getUint8(at(1));
      case GgufType.INT8:
        return v.getInt8(at(1));
      case GgufType.UINT16:
        return v.getUint16(at(2), true);
      case GgufType.INT16:
        return v.getInt16(at(2), true);
      case GgufType.UINT32:
        return v.getUint32(at(4), true);
      case GgufType.INT32:
        return v.getInt32(at(4), true);
      case GgufType.FLOAT32:
        return v.getFloat32(at(4), true);
      case GgufType.FLOAT64:
        return v.getFloat64(at(8), true);
      case GgufType.UINT64:
        return v.getBigUint64(at(8), true);
      case GgufType.INT64:
        return v.getBigInt64(at(8), true);
      case GgufType.BOOL: {
        const b = v.getUint8(at(1));
        if (b > 1) throw bad(`${what}: boolean byte ${b} (must be 0 or 1)`);
        return b === 1;
      }
      case GgufType.STRING:
        return this.string(what);
      case GgufType.ARRAY: {
        if (depth >= MAX_ARRAY_NESTING) throw bad(`${what}: arrays nested deeper than ${MAX_ARRAY_NESTING}`);
        const itemType = this.u32(`${what} element type`);
        if (!isGgufType(itemType)) throw bad(`${what}: unknown array element type ${itemType}`);
        const n = this.size(`${what} element count`);
        if (n * minValueBytes(itemType) > this.left) throw bad(`${what}: ${n} elements cannot fit in the ${this.left} bytes left`);
        const values: GgufData[] = new Array<GgufData>(n);
        for (let i = 0; i < n; i++) values[i] = this.value(itemType, what, depth + 1);
        return { itemType, values };
      }
      default:
        throw bad(`${what}: unknown value type ${String(type)}`);
    }
  }
}

/**
 * Parses a whole GGUF file (v2 or v3). Anything malformed (truncation, unknown types, offsets outside the file,
 * tensors that are not laid out the way llama.cpp requires) throws FinetuneError('bad-input').
 */
export function readGguf(bytes: Uint8Array): GgufFile {
  const c = new Cursor(bytes);
  c.need(4, 'the magic');
  if (bytes[0] !== 0x47 || bytes[1] !== 0x47 || bytes[2] !== 0x55 || bytes[3] !== 0x46) throw bad('not a GGUF file (the first 4 bytes are not "GGUF")');
  c.pos = 4;
  const version = c.u32('the version');
  if (version !== 2 && version !== 3) throw bad(`version ${version} is not supported (2 or 3)`);
  const nTensors = c.size('the tensor count');
  const nKv = c.size('the KV count');
  // Each KV takes ≥ 8 + 4 + 1 bytes (empty key, u8 value), each tensor info ≥ 8 + 4 + 8 + 4 + 8 (empty name, 1 dim).
  if (nKv * 13 + nTensors * 32 > c.left) throw bad(`${nKv} KVs and ${nTensors} tensors cannot fit in ${bytes.byteLength} bytes`);

  const kv = new Map<string, GgufKv>();
  for (let i = 0; i < nKv; i++) {
    const key = c.string(`key ${i}`);
    if (kv.has(key)) throw bad(`duplicate key ${JSON.stringify(key)}`);
    const type = c.u32(`the type of ${key}`);
    if (!isGgufType(type)) throw bad(`${key}: unknown value type ${type}`);
    kv.set(key, { key, type, value: c.value(type, key, 0) });
  }
  let alignment = GGUF_DEFAULT_ALIGNMENT;
  const al = kv.get('general.alignment');
  if (al) {
    if (al.type !== GgufType.UINT32 || typeof al.value !== 'number' || !isPowerOfTwo(al.value)) throw bad('general.alignment must be a UINT32 power of two');
    alignment = al.value;
  }

  const infos: Omit<GgufTensorInfo, 'data'>[] = [];
  const seen = new Set<string>();
  for (let i = 0; i < nTensors; i++) {
    const name = c.string(`tensor name ${i}`);
    if (seen.has(name)) throw bad(`duplicate tensor name ${JSON.stringify(name)}`);
    seen.add(name);
    const nDims = c.u32(`${name} n_dims`);
    if (nDims < 1 || nDims > GGUF_MAX_DIMS) throw bad(`${name}: ${nDims} dimensions (1–${GGUF_MAX_DIMS} allowed)`);
    const ne: number[] = [];
    for (let d = 0; d < nDims; d++) ne.push(c.size(`${name} ne[${d}]`));
    const type = c.u32(`${name} type`);
    const offset = c.size(`${name} offset`);
    const byteLength = tensorBytes(type, ne);
    if (typeof byteLength === 'string') throw bad(`${name}: ${byteLength}`);
    infos.push({ name, ne, shape: [...ne].reverse(), type, numel: ne.reduce((a, b) => a * b, 1), offset, byteLength });
  }
  const dataOffset = alignUp(c.pos, alignment);
  if (dataOffset > bytes.byteLength && nTensors > 0) throw bad(`the data section would start at byte ${dataOffset}, past the end of the ${bytes.byteLength}-byte file`);

  // llama.cpp requires the tensors to be consecutive in file order, each padded to the alignment.
  const tensors = new Map<string, GgufTensorInfo>();
  let expected = 0;
  for (const t of infos) {
    if (t.offset !== expected) throw bad(`${t.name} is at data offset ${t.offset}, expected ${expected} (tensors must be consecutive, each padded to ${alignment} bytes)`);
    const start = dataOffset + t.offset;
    if (t.byteLength > bytes.byteLength - start) throw bad(`${t.name} (${t.byteLength} bytes at ${start}) runs past the end of the ${bytes.byteLength}-byte file`);
    tensors.set(t.name, { ...t, data: bytes.subarray(start, start + t.byteLength) });
    expected = t.offset + alignUp(t.byteLength, alignment);
  }
  return { version, alignment, kv, tensors, dataOffset };
}

/** A tensor's values as a new Float32Array (F32, F16, BF16 and F64 tensors). */
export function ggufTensorF32(t: GgufTensorInfo): Float32Array {
  const out = new Float32Array(t.numel);
  const v = new DataView(t.data.buffer, t.data.byteOffset, t.data.byteLength);
  switch (t.type) {
    case GgmlType.F32:
      for (let i = 0; i < out.length; i++) out[i] = v.getFloat32(4 * i, true);
      return out;
    case GgmlType.F16:
      for (let i = 0; i < out.length; i++) out[i] = f16BitsToF32(v.getUint16(2 * i, true));
      return out;
    case GgmlType.BF16: {
      const u = new Uint32Array(out.buffer);
      for (let i = 0; i < out.length; i++) u[i] = v.getUint16(2 * i, true) << 16;
      return out;
    }
    case GgmlType.F64:
      for (let i = 0; i < out.length; i++) out[i] = v.getFloat64(8 * i, true);
      return out;
    default:
      throw new FinetuneError('bad-input', `GGUF: ${t.name} is ${ggmlTypeName(t.type)}, not a float type this reader converts`);
  }
}

