// Test fixtures in PyTorch's torch.save layout, written byte by byte the way PyTorch (≥ 1.6, zip serialization,
// pickle protocol 2) lays out a state dict, so the importer is tested against the real format without PyTorch here:
//   - the pickle: PROTO 2; GLOBAL collections.OrderedDict + EMPTY_TUPLE + REDUCE; per tensor its key, then GLOBAL
//     torch._utils._rebuild_tensor_v2 and the argument tuple (storage as BINPERSID of ('storage', torch.XStorage, key,
//     'cpu', numel), offset, size, stride, requires_grad False, OrderedDict()) + REDUCE; SETITEMS in batches of 1000
//     (SETITEM for a batch of one); every new object memoised with BINPUT, repeats fetched with BINGET; STOP.
//   - the zip: <archive>/data.pkl, .format_version, .storage_alignment, byteorder, data/<key> per storage, version,
//     .data/serialization_id; every entry stored (not compressed), its data 64-byte aligned by an 'FB' extra field of
//     'Z' padding in the local header, as PyTorch's zip writer does.
// PickleWriter is also the assembler the hostile-pickle tests write their attacks with.

import { zipSync } from 'fflate';

export type FixtureDtype = 'F32' | 'F16' | 'BF16';

export interface FixtureTensor {
  name: string;
  dtype: FixtureDtype;
  shape: number[];
  /** F32 values, or the raw 16-bit patterns of F16/BF16. */
  data: Float32Array | Uint16Array;
}

const STORAGE_CLASS: Record<FixtureDtype, string> = { F32: 'FloatStorage', F16: 'HalfStorage', BF16: 'BFloat16Storage' };

/** Emits pickle opcodes (protocol 2 and the few protocol-4 ones the reader also accepts). */
export class PickleWriter {
  private parts: number[] = [];
  private nextMemo = 0;
  /** Memo slots of values Python would find again by identity (globals, interned strings). */
  private memoOf = new Map<string, number>();

  private u8(...b: number[]): this {
    this.parts.push(...b);
    return this;
  }
  private u32(n: number): this {
    return this.u8(n & 0xff, (n >>> 8) & 0xff, (n >>> 16) & 0xff, (n >>> 24) & 0xff);
  }
  private bytes(b: Uint8Array): this {
    for (const x of b) this.parts.push(x);
    return this;
  }
  raw(...b: number[]): this {
    return this.u8(...b);
  }
  proto(n = 2): this {
    return this.u8(0x80, n);
  }
  mark(): this {
    return this.u8(0x28);
  }
  stop(): this {
    return this.u8(0x2e);
  }
  none(): this {
    return this.u8(0x4e);
  }
  bool(v: boolean): this {
    return this.u8(v ? 0x88 : 0x89);
  }
  /** Python's save_long for protocol 2: BININT1, BININT2, BININT, else LONG1. */
  int(n: number): this {
    if (n >= 0 && n <= 0xff) return this.u8(0x4b, n);
    if (n >= 0 && n <= 0xffff) return this.u8(0x4d, n & 0xff, n >> 8);
    if (n >= -(2 ** 31) && n < 2 ** 31) return this.u8(0x4a).u32(n >>> 0);
    let v = BigInt(n);
    const out: number[] = [];
    while (v !== 0n && v !== -1n) {
      out.push(Number(v & 0xffn));
      v >>= 8n;
    }
    if (n > 0 && (out[out.length - 1] & 0x80) !== 0) out.push(0);
    if (n < 0 && (out[out.length - 1] & 0x80) === 0) out.push(0xff);
    return this.u8(0x8a, out.length, ...out);
  }
  /** BINUNICODE (protocol 2 has no short form for str). */
  unicode(s: string): this {
    const b = new TextEncoder().encode(s);
    return this.u8(0x58).u32(b.byteLength).bytes(b);
  }
  shortUnicode(s: string): this {
    const b = new TextEncoder().encode(s);
    return this.u8(0x8c, b.byteLength).bytes(b);
  }
  global(module: string, name: string): this {
    return this.u8(0x63).bytes(new TextEncoder().encode(`${module}\n${name}\n`));
  }
  stackGlobal(): this {
    return this.u8(0x93);
  }
  emptyTuple(): this {
    return this.u8(0x29);
  }
  /** TUPLE1/2/3 for short tuples, as protocol 2 writes them. */
  tupleN(n: 1 | 2 | 3): this {
    return this.u8(0x84 + n);
  }
  tuple(): this {
    return this.u8(0x74);
  }
  emptyDict(): this {
    return this.u8(0x7d);
  }
  emptyList(): this {
    return this.u8(0x5d);
  }
  setitem(): this {
    return this.u8(0x73);
  }
  setitems(): this {
    return this.u8(0x75);
  }
  reduce(): this {
    return this.u8(0x52);
  }
  build(): this {
    return this.u8(0x62);
  }
  binpersid(): this {
    return this.u8(0x51);
  }
  /** BINPUT / LONG_BINPUT of the next memo slot; returns the slot through `slot`. */
  put(slot?: (i: number) => void): this {
    const i = this.nextMemo++;
    slot?.(i);
    return i < 256 ? this.u8(0x71, i) : this.u8(0x72).u32(i);
  }
  get(i: number): this {
    return i < 256 ? this.u8(0x68, i) : this.u8(0x6a).u32(i);
  }
  /** Writes `emit` once and memoises it; later calls with the same id fetch it from the memo, as Python's pickler does. */
  memoised(id: string, emit: () => void): this {
    const slot = this.memoOf.get(id);
    if (slot !== undefined) return this.get(slot);
    emit();
    return this.put((i) => this.memoOf.set(id, i));
  }
  get length(): number {
    return this.parts.length;
  }
  finish(): Uint8Array {
    return Uint8Array.from(this.parts);
  }
}

function elementBytes(t: FixtureTensor): Uint8Array {
  const need = t.shape.reduce((a, b) => a * b, 1);
  if (t.data.length !== need) throw new Error(`fixture ${t.name}: ${t.data.length} values for shape [${t.shape.join(', ')}]`);
  if (t.dtype === 'F32' !== t.data instanceof Float32Array) throw new Error(`fixture ${t.name}: F32 takes a Float32Array, F16/BF16 a Uint16Array of bit patterns`);
  // Copy through little-endian DataView writes (the fixture must not depend on the host's byte order).
  const size = t.dtype === 'F32' ? 4 : 2;
  const out = new Uint8Array(need * size);
  const dv = new DataView(out.buffer);
  for (let i = 0; i < need; i++) {
    if (t.dtype === 'F32') dv.setFloat32(4 * i, t.data[i], true);
    else dv.setUint16(2 * i, t.data[i], true);
  }
  return out;
}

export interface TorchPickleOptions {
  /** The state dict's container: PEFT's get_peft_model_state_dict builds a dict; model.state_dict() an OrderedDict. */
  container?: 'OrderedDict' | 'dict';
  /** Wrap each tensor as an nn.Parameter (torch._utils._rebuild_parameter), as saving parameters directly does. */
  parameters?: boolean;
}

/** The data.pkl of a state dict and the storages it names (key → bytes), one storage per tensor. */
export function stateDictPickle(tensors: readonly FixtureTensor[], opts: TorchPickleOptions = {}): { pickle: Uint8Array; storages: Map<string, Uint8Array> } {
  const w = new PickleWriter();
  const storages = new Map<string, Uint8Array>();
  const orderedDict = (): void => {
    w.memoised('g:collections.OrderedDict', () => w.global('collections', 'OrderedDict'));
    w.emptyTuple().reduce().put();
  };
  w.proto(2);
  if ((opts.container ?? 'OrderedDict') === 'OrderedDict') orderedDict();
  else w.emptyDict().put();
  const writeTensor = (t: FixtureTensor): void => {
    if (opts.parameters) w.memoised('g:torch._utils._rebuild_parameter', () => w.global('torch._utils', '_rebuild_parameter'));
    w.memoised('g:torch._utils._rebuild_tensor_v2', () => w.global('torch._utils', '_rebuild_tensor_v2'));
    const key = String(storages.size);
    const bytes = elementBytes(t);
    storages.set(key, bytes);
    const numel = t.data.length;
    // (storage, storage_offset, size, stride, requires_grad, backward_hooks)
    w.mark();
    // The persistent id ('storage', torch.XStorage, key, 'cpu', numel) → BINPERSID.
    w.mark();
    w.memoised('s:storage', () => w.unicode('storage'));
    w.memoised(`g:torch.${STORAGE_CLASS[t.dtype]}`, () => w.global('torch', STORAGE_CLASS[t.dtype]));
    w.unicode(key).put();
    w.memoised('s:cpu', () => w.unicode('cpu'));
    w.int(numel);
    w.tuple().put();
    w.binpersid();
    w.int(0);
    const shapeTuple = (xs: number[]): void => {
      if (xs.length === 0) w.emptyTuple();
      else if (xs.length <= 3) {
        for (const x of xs) w.int(x);
        w.tupleN(xs.length as 1 | 2 | 3).put();
      } else {
        w.mark();
        for (const x of xs) w.int(x);
        w.tuple().put();
      }
    };
    shapeTuple(t.shape);
    shapeTuple(t.shape.map((_, d) => t.shape.slice(d + 1).reduce((a, b) => a * b, 1)));
    w.bool(false);
    orderedDict();
    w.tuple().put();
    w.reduce().put();
    if (opts.parameters) {
      w.bool(false);
      orderedDict();
      w.tupleN(3).put();
      w.reduce().put();
    }
  };
  // Python's _batch_setitems: batches of 1000 under MARK … SETITEMS, a batch of one as SETITEM.
  for (let i = 0; i < tensors.length; i += 1000) {
    const batch = tensors.slice(i, i + 1000);
    if (batch.length > 1) w.mark();
    for (const t of batch) {
      w.unicode(t.name).put();
      writeTensor(t);
    }
    if (batch.length > 1) w.setitems();
    else w.setitem();
  }
  w.stop();
  return { pickle: w.finish(), storages };
}

// ---------------------------------------------------------------------------------------------------------------
// The zip, laid out by PyTorch's writer

const CRC_TABLE = (() => {
  const t = new Uint32Array(256);
  for (let n = 0; n < 256; n++) {
    let c = n;
    for (let k = 0; k < 8; k++) c = c & 1 ? 0xedb88320 ^ (c >>> 1) : c >>> 1;
    t[n] = c >>> 0;
  }
  return t;
})();

/** The zip format's CRC-32, written apart from the reader's (src/core/bytes.ts, used by src/model/zip-archive.ts), to check what it accepts. */
export function crc32(b: Uint8Array): number {
  let c = 0xffffffff;
  for (const x of b) c = CRC_TABLE[(c ^ x) & 0xff] ^ (c >>> 8);
  return (c ^ 0xffffffff) >>> 0;
}

/** A zip of stored entries whose data start at multiples of `align`, padded with an 'FB' extra field as PyTorch does. */
export function alignedStoredZip(entries: readonly [string, Uint8Array][], align = 64): Uint8Array {
  const chunks: Uint8Array[] = [];
  const central: Uint8Array[] = [];
  let offset = 0;
  const enc = new TextEncoder();
  for (const [name, data] of entries) {
    const nameBytes = enc.encode(name);
    const start = offset + 30 + nameBytes.byteLength + 4;
    const pad = (align - (start % align)) % align;
    const local = new Uint8Array(30 + nameBytes.byteLength + 4 + pad);
    const dv = new DataView(local.buffer);
    const crc = crc32(data);
    dv.setUint32(0, 0x04034b50, true);
    dv.setUint16(4, 20, true); // version needed
    dv.setUint16(6, 0, true); // flags
    dv.setUint16(8, 0, true); // stored
    dv.setUint32(10, 0, true); // DOS time and date
    dv.setUint32(14, crc, true);
    dv.setUint32(18, data.byteLength, true);
    dv.setUint32(22, data.byteLength, true);
    dv.setUint16(26, nameBytes.byteLength, true);
    dv.setUint16(28, 4 + pad, true);
    local.set(nameBytes, 30);
    const extra = 30 + nameBytes.byteLength;
    local[extra] = 0x46; // 'F'
    local[extra + 1] = 0x42; // 'B'
    dv.setUint16(extra + 2, pad, true);
    local.fill(0x5a, extra + 4); // 'Z'
    const cd = new Uint8Array(46 + nameBytes.byteLength);
    const cv = new DataView(cd.buffer);
    cv.setUint32(0, 0x02014b50, true);
    cv.setUint16(4, 20, true); // made by
    cv.setUint16(6, 20, true); // needed
    cv.setUint32(16, crc, true);
    cv.setUint32(20, data.byteLength, true);
    cv.setUint32(24, data.byteLength, true);
    cv.setUint16(28, nameBytes.byteLength, true);
    cv.setUint32(42, offset, true);
    cd.set(nameBytes, 46);
    central.push(cd);
    chunks.push(local, data);
    offset += local.byteLength + data.byteLength;
  }
  const cdSize = central.reduce((n, c) => n + c.byteLength, 0);
  const eocd = new Uint8Array(22);
  const ev = new DataView(eocd.buffer);
  ev.setUint32(0, 0x06054b50, true);
  ev.setUint16(8, entries.length, true);
  ev.setUint16(10, entries.length, true);
  ev.setUint32(12, cdSize, true);
  ev.setUint32(16, offset, true);
  const all = [...chunks, ...central, eocd];
  const out = new Uint8Array(all.reduce((n, c) => n + c.byteLength, 0));
  let at = 0;
  for (const c of all) {
    out.set(c, at);
    at += c.byteLength;
  }
  return out;
}

export interface TorchZipOptions {
  /** The archive's top folder (PyTorch names it after the file, or "archive"). */
  archive?: string;
  /** Extra entries (name relative to the archive folder) — for hostile-archive tests. */
  extra?: [string, Uint8Array][];
}

/** Wraps a pickle and its storages in the zip layout torch.save writes. */
export function torchZip(pickle: Uint8Array, storages: Map<string, Uint8Array>, opts: TorchZipOptions = {}): Uint8Array {
  const a = opts.archive ?? 'archive';
  const enc = new TextEncoder();
  const entries: [string, Uint8Array][] = [
    [`${a}/data.pkl`, pickle],
    [`${a}/.format_version`, enc.encode('1')],
    [`${a}/.storage_alignment`, enc.encode('64')],
    [`${a}/byteorder`, enc.encode('little')],
    ...[...storages].map(([k, b]): [string, Uint8Array] => [`${a}/data/${k}`, b]),
    ...(opts.extra ?? []).map(([n, b]): [string, Uint8Array] => [`${a}/${n}`, b]),
    [`${a}/version`, enc.encode('3\n')],
    [`${a}/.data/serialization_id`, enc.encode('1234567890123456789012345678901234567890')],
  ];
  return alignedStoredZip(entries);
}

/** torch.save(state_dict) of these tensors, byte for byte in PyTorch's layout. */
export function torchSaveStateDict(tensors: readonly FixtureTensor[], opts: TorchPickleOptions & TorchZipOptions = {}): Uint8Array {
  const { pickle, storages } = stateDictPickle(tensors, opts);
  return torchZip(pickle, storages, opts);
}

/**
 * A training_output.zip the way Replicate's trainer could leave it: the PEFT adapter (adapter_config.json +
 * adapter_model.bin) in `folder`, beside files that are not the adapter. Replicate does not document the layout, so
 * the importer searches for adapter_config.json; tests vary `folder` to hold it to that.
 */
export function replicateTrainingZip(adapterConfig: string, adapterBin: Uint8Array, folder = 'training_output'): Uint8Array {
  const at = folder ? `${folder}/` : '';
  const enc = new TextEncoder();
  return zipSync({
    [`${at}adapter_config.json`]: enc.encode(adapterConfig),
    [`${at}adapter_model.bin`]: [adapterBin, { level: 0 }],
    [`${at}README.md`]: enc.encode('# LoRA adapter\n'),
    [`${at}special_tokens_map.json`]: enc.encode('{}'),
    'train.log': enc.encode('step 1 loss 2.0\n'),
  });
}
