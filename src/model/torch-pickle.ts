// Reads what `torch.save(state_dict, path)` writes (PyTorch ≥ 1.6: a zip holding a pickle and raw tensor storages)
// without ever running code. A pickle is a program for a small stack machine whose GLOBAL and REDUCE opcodes import
// and call arbitrary Python callables; Python's own unpickler would run `os.system` if a file asked it to. This one
// knows only the opcodes a state dict of tensors needs and only the callables it needs (OrderedDict, torch's tensor
// rebuild functions, the storage classes named in persistent ids), each implemented here as plain data handling.
// Everything else is refused with a FinetuneError('bad-input') naming what was refused. docs/torch-pickle.md
// describes the format and the rules.

import { FinetuneError } from '../core/errors.ts';
import { extractZip, listZip, looksLikeZip, type ZipLimits } from './zip-archive.ts';
import { quote, visibleText } from '../core/quote.ts';

/** The element types a LoRA state dict is saved in (names as in safetensors). */
export type TorchDtype = 'F32' | 'F16' | 'BF16';

export const TORCH_DTYPE_SIZE: Readonly<Record<TorchDtype, number>> = { F32: 4, F16: 2, BF16: 2 };

/** The storage classes torch.save names in persistent ids, and the element type each holds. */
const STORAGE_TYPES: Readonly<Record<string, TorchDtype>> = {
  'torch.FloatStorage': 'F32',
  'torch.HalfStorage': 'F16',
  'torch.BFloat16Storage': 'BF16',
};

/** The callables a state dict's pickle may name. Nothing else is ever looked up. */
const ORDERED_DICT = 'collections.OrderedDict';
const REBUILD_TENSOR = 'torch._utils._rebuild_tensor_v2';
const REBUILD_PARAMETER = 'torch._utils._rebuild_parameter';
export const ALLOWED_GLOBALS: readonly string[] = [ORDERED_DICT, REBUILD_TENSOR, REBUILD_PARAMETER, ...Object.keys(STORAGE_TYPES)];

export interface TorchTensor {
  dtype: TorchDtype;
  shape: number[];
  /** The elements in row-major (C) order, little-endian, copied out of the storage (strides applied). */
  data: Uint8Array;
}

export interface TorchLimits extends ZipLimits {
  /** Largest data.pkl accepted (default 64 MiB; a LoRA state dict's pickle is a few hundred KB). */
  maxPickleBytes?: number;
  /** Most memo entries and most stack items (default 1,000,000 each). */
  maxMemo?: number;
  maxStack?: number;
  /**
   * Most bytes all rebuilt tensors may add up to (default: unbounded for a bare pickle; readTorchStateDict passes twice
   * the archive's storage bytes). Views share storages, so a few bytes of storage named by many views would otherwise
   * make us copy them out again and again.
   */
  maxTensorBytes?: number;
}

const DEFAULT_MAX_PICKLE = 64 * 1024 * 1024;
const DEFAULT_MAX_MEMO = 1_000_000;
const DEFAULT_MAX_STACK = 1_000_000;
const MAX_DIMS = 8;

// `where` names the input as it was given (a picked file or folder, a path, a Hub file): a path label, written with
// visibleText's escapes (no quotes, so it reads as a path) so that a bidirectional control in it cannot reorder the message.
function refuse(where: string, message: string, details?: Record<string, unknown>): FinetuneError {
  return new FinetuneError('bad-input', `${visibleText(where)}: ${message}`, details);
}

// ---------------------------------------------------------------------------------------------------------------
// Values on the pickle machine's stack

interface PyGlobal {
  kind: 'global';
  /** module.name, e.g. "collections.OrderedDict" (only names in ALLOWED_GLOBALS are ever created). */
  qualname: string;
}
interface PyTuple {
  kind: 'tuple';
  items: PyValue[];
}
interface PyList {
  kind: 'list';
  items: PyValue[];
}
type PyKey = string | number | boolean | null;
interface PyDict {
  kind: 'dict';
  ordered: boolean;
  entries: Map<PyKey, PyValue>;
}
interface PyBytes {
  kind: 'bytes';
  bytes: Uint8Array;
}
interface PyStorage {
  kind: 'storage';
  key: string;
  dtype: TorchDtype;
  numel: number;
  bytes: Uint8Array;
}
interface PyTensor {
  kind: 'tensor';
  tensor: TorchTensor;
}
type PyValue = null | boolean | number | string | PyGlobal | PyTuple | PyList | PyDict | PyBytes | PyStorage | PyTensor;

function describe(v: PyValue): string {
  if (v === null) return 'None';
  if (typeof v === 'boolean') return v ? 'True' : 'False';
  if (typeof v === 'number') return `the number ${v}`;
  if (typeof v === 'string') return `the string ${quote(v.length > 40 ? `${v.slice(0, 40)}…` : v)}`;
  switch (v.kind) {
    case 'global':
      return v.qualname;
    case 'tuple':
      return `a tuple of ${v.items.length}`;
    case 'list':
      return `a list of ${v.items.length}`;
    case 'dict':
      return v.ordered ? 'an OrderedDict' : 'a dict';
    case 'bytes':
      return `${v.bytes.byteLength} bytes`;
    case 'storage':
      return `storage ${v.key}`;
    case 'tensor':
      return `a tensor [${v.tensor.shape.join(', ')}]`;
  }
}

// ---------------------------------------------------------------------------------------------------------------
// The restricted unpickler

/** Finds the bytes of storage `key` (the zip entry <archive>/data/<key>); undefined when there is none. */
export type StorageLookup = (key: string) => Uint8Array | undefined;

/** Opcodes that exist but are never needed for a state dict, named so the refusal says what it was. */
const REFUSED_OPCODES: Readonly<Record<number, string>> = {
  0x69: 'INST (builds an instance of an arbitrary class)',
  0x6f: 'OBJ (builds an instance of an arbitrary class)',
  0x81: 'NEWOBJ (builds an instance of an arbitrary class)',
  0x92: 'NEWOBJ_EX (builds an instance of an arbitrary class)',
  0x82: 'EXT1 (imports through the copyreg extension registry)',
  0x83: 'EXT2 (imports through the copyreg extension registry)',
  0x84: 'EXT4 (imports through the copyreg extension registry)',
  0x50: 'PERSID (text persistent id; torch.save uses BINPERSID)',
  0x97: 'NEXT_BUFFER (out-of-band buffer)',
  0x98: 'READONLY_BUFFER (out-of-band buffer)',
};

/**
 * Runs a pickle (protocol 2–5) restricted to what torch.save of a state dict of tensors needs and returns the object
 * it builds. Storages named by persistent ids are looked up with `storage`. Never calls anything it reads.
 */
export function unpickleStateDict(pkl: Uint8Array, storage: StorageLookup, where = 'data.pkl', limits: TorchLimits = {}): PyValue {
  const maxMemo = limits.maxMemo ?? DEFAULT_MAX_MEMO;
  const maxStack = limits.maxStack ?? DEFAULT_MAX_STACK;
  const maxTensorBytes = limits.maxTensorBytes ?? Infinity;
  let tensorBytes = 0;
  if (looksLikeZip(pkl)) throw refuse(where, 'is itself a zip archive: nested archives are refused');
  const dv = new DataView(pkl.buffer, pkl.byteOffset, pkl.byteLength);
  const utf8 = new TextDecoder('utf-8', { fatal: true });
  const latin1 = new TextDecoder('latin1');
  let pos = 0;
  // MARK starts a new frame: the values pushed since it are `stack`, the frames below wait in `marks`.
  let stack: PyValue[] = [];
  const marks: PyValue[][] = [];
  /** Items held in the frames below the current MARK: with stack.length, everything the machine holds. */
  let below = 0;
  const memo = new Map<number, PyValue>();
  const storages = new Map<string, PyStorage>();

  const fail = (message: string): FinetuneError => refuse(where, `${message} (at byte ${pos})`);
  const need = (n: number, what: string): void => {
    if (n < 0 || pos + n > pkl.byteLength) throw fail(`truncated: ${what} needs ${n} bytes, ${pkl.byteLength - pos} left`);
  };
  const u8 = (): number => {
    need(1, 'an argument');
    return pkl[pos++];
  };
  const u16 = (): number => {
    need(2, 'an argument');
    const v = dv.getUint16(pos, true);
    pos += 2;
    return v;
  };
  const u32 = (): number => {
    need(4, 'an argument');
    const v = dv.getUint32(pos, true);
    pos += 4;
    return v;
  };
  const i32 = (): number => {
    need(4, 'an argument');
    const v = dv.getInt32(pos, true);
    pos += 4;
    return v;
  };
  const u64 = (what: string): number => {
    need(8, what);
    const v = dv.getBigUint64(pos, true);
    pos += 8;
    if (v > BigInt(pkl.byteLength)) throw fail(`${what} claims ${v} bytes, more than the whole pickle`);
    return Number(v);
  };
  const take = (n: number, what: string): Uint8Array => {
    need(n, what);
    const b = pkl.subarray(pos, pos + n);
    pos += n;
    return b;
  };
  const text = (n: number, what: string): string => {
    const b = take(n, what);
    try {
      return utf8.decode(b);
    } catch {
      throw fail(`${what} is not valid UTF-8`);
    }
  };
  /** A newline-terminated ASCII line (GLOBAL's module and name). */
  const line = (what: string): string => {
    const end = pkl.indexOf(0x0a, pos);
    if (end < 0 || end - pos > 256) throw fail(`${what}: no newline-terminated name`);
    const s = latin1.decode(pkl.subarray(pos, end));
    pos = end + 1;
    return s;
  };

  const push = (v: PyValue): void => {
    if (below + stack.length >= maxStack) throw fail(`more than ${maxStack} items on the stack`);
    stack.push(v);
  };
  const pop = (what: string): PyValue => {
    const v = stack.pop();
    if (v === undefined) throw fail(`${what}: the stack is empty`);
    return v;
  };
  const top = (what: string): PyValue => {
    const v = stack[stack.length - 1];
    if (v === undefined) throw fail(`${what}: the stack is empty`);
    return v;
  };
  /** The items pushed since the last MARK (which is removed). */
  const popMark = (what: string): PyValue[] => {
    const prev = marks.pop();
    if (!prev) throw fail(`${what} without a MARK`);
    const items = stack;
    stack = prev;
    below -= prev.length;
    return items;
  };
  const memoPut = (idx: number): void => {
    if (!memo.has(idx) && memo.size >= maxMemo) throw fail(`more than ${maxMemo} memo entries`);
    memo.set(idx, top('PUT'));
  };
  const memoGet = (idx: number): void => {
    if (!memo.has(idx)) throw fail(`GET of memo entry ${idx}, which was never stored`);
    push(memo.get(idx) as PyValue);
  };
  const key = (k: PyValue, what: string): PyKey => {
    if (k === null || typeof k === 'string' || typeof k === 'number' || typeof k === 'boolean') return k;
    throw fail(`${what}: a dict key may not be ${describe(k)}`);
  };
  const setItems = (target: PyValue, items: PyValue[], what: string): void => {
    if (typeof target !== 'object' || target === null || target.kind !== 'dict') throw fail(`${what} on ${describe(target)}: only dicts take items`);
    if (items.length % 2) throw fail(`${what} with an odd number of items`);
    for (let i = 0; i < items.length; i += 2) target.entries.set(key(items[i], what), items[i + 1]);
  };
  const global = (module: string, name: string): PyGlobal => {
    const qualname = `${module}.${name}`;
    if (!ALLOWED_GLOBALS.includes(qualname)) {
      // Quoted: the module and name are the file's (a control character in them is escaped, not printed).
      throw refuse(where, `refused global ${quote(qualname)}: a state dict of tensors names only ${ALLOWED_GLOBALS.join(', ')}; this pickle would import (and could run) other code`, {
        refused: qualname,
      });
    }
    return { kind: 'global', qualname };
  };
  const persistentLoad = (pid: PyValue): PyStorage => {
    if (typeof pid !== 'object' || pid === null || pid.kind !== 'tuple') throw fail(`persistent id ${describe(pid)} is not a tuple`);
    const [tag, type, k, location, numel] = pid.items;
    if (pid.items.length !== 5 || tag !== 'storage') throw fail(`persistent id ${describe(pid)} is not ('storage', type, key, location, numel)`);
    if (typeof type !== 'object' || type === null || type.kind !== 'global' || !(type.qualname in STORAGE_TYPES)) {
      throw fail(`persistent id names ${describe(type)} as a storage type (accepted: ${Object.keys(STORAGE_TYPES).join(', ')})`);
    }
    if (typeof k !== 'string' || !/^[A-Za-z0-9_]{1,64}$/.test(k)) throw fail(`storage key ${describe(k)} is not a plain name`);
    if (typeof location !== 'string') throw fail(`storage location ${describe(location)} is not a string`);
    if (typeof numel !== 'number' || !Number.isSafeInteger(numel) || numel < 0) throw fail(`storage ${k} has size ${describe(numel)}`);
    const dtype = STORAGE_TYPES[type.qualname];
    const seen = storages.get(k);
    if (seen) {
      if (seen.dtype !== dtype || seen.numel !== numel) throw fail(`storage ${k} is named twice with different types or sizes`);
      return seen;
    }
    const bytes = storage(k);
    if (!bytes) throw fail(`storage ${k} has no data/${k} entry in the archive`);
    const want = numel * TORCH_DTYPE_SIZE[dtype];
    if (bytes.byteLength !== want) throw fail(`storage ${k} claims ${numel} ${dtype} elements (${want} bytes) but data/${k} holds ${bytes.byteLength} bytes`);
    const s: PyStorage = { kind: 'storage', key: k, dtype, numel, bytes };
    storages.set(k, s);
    return s;
  };
  const intTuple = (v: PyValue, what: string): number[] => {
    if (typeof v !== 'object' || v === null || v.kind !== 'tuple') throw fail(`${what} is ${describe(v)}, not a tuple`);
    if (v.items.length > MAX_DIMS) throw fail(`${what} has ${v.items.length} dimensions (at most ${MAX_DIMS})`);
    return v.items.map((x) => {
      if (typeof x !== 'number' || !Number.isSafeInteger(x) || x < 0) throw fail(`${what} holds ${describe(x)}, not a non-negative integer`);
      return x;
    });
  };
  const isEmptyOrderedDict = (v: PyValue): boolean => typeof v === 'object' && v !== null && v.kind === 'dict' && v.entries.size === 0;
  const rebuildTensor = (args: PyValue[]): PyTensor => {
    // (storage, storage_offset, size, stride, requires_grad, backward_hooks[, metadata])
    if (args.length !== 6 && args.length !== 7) throw fail(`${REBUILD_TENSOR} takes 6 or 7 arguments, got ${args.length}`);
    const [s, offset, sizeV, strideV, requiresGrad, hooks, metadata] = args;
    if (typeof s !== 'object' || s === null || s.kind !== 'storage') throw fail(`${REBUILD_TENSOR}: the first argument is ${describe(s)}, not a storage`);
    if (typeof offset !== 'number' || !Number.isSafeInteger(offset) || offset < 0) throw fail(`${REBUILD_TENSOR}: storage offset ${describe(offset)}`);
    const shape = intTuple(sizeV, 'the tensor size');
    const stride = intTuple(strideV, 'the tensor stride');
    if (shape.length !== stride.length) throw fail(`size [${shape.join(', ')}] and stride [${stride.join(', ')}] differ in length`);
    if (typeof requiresGrad !== 'boolean') throw fail(`${REBUILD_TENSOR}: requires_grad is ${describe(requiresGrad)}`);
    if (!isEmptyOrderedDict(hooks)) throw fail(`${REBUILD_TENSOR}: backward hooks ${describe(hooks)} are not an empty OrderedDict`);
    if (metadata !== undefined && metadata !== null && !isEmptyOrderedDict(metadata)) throw fail(`${REBUILD_TENSOR}: tensor metadata ${describe(metadata)} is not supported`);
    const numel = shape.reduce((a, b) => a * b, 1);
    // A view never holds more elements than its storage (a stride-0 view of one element could claim billions).
    if (numel > s.numel) throw fail(`a tensor of size [${shape.join(', ')}] (${numel} elements) cannot come from storage ${s.key} of ${s.numel}`);
    const size = TORCH_DTYPE_SIZE[s.dtype];
    tensorBytes += numel * size;
    if (tensorBytes > maxTensorBytes) throw fail(`the tensors add up to more than ${maxTensorBytes} bytes, twice what the archive's storages hold: views naming the same storage over and over`);
    const data = new Uint8Array(numel * size);
    if (numel > 0) {
      const last = offset + shape.reduce((acc, n, d) => acc + (n - 1) * stride[d], 0);
      if (last >= s.numel) throw fail(`a tensor of size [${shape.join(', ')}], stride [${stride.join(', ')}] at offset ${offset} reaches element ${last} of storage ${s.key}, which has ${s.numel}`);
      const contiguous = shape.every((_, d) => stride[d] === shape.slice(d + 1).reduce((a, b) => a * b, 1) || shape[d] === 1);
      if (contiguous) data.set(s.bytes.subarray(offset * size, (offset + numel) * size));
      else {
        // Gather element by element in row-major order of the view.
        const idx = new Array<number>(shape.length).fill(0);
        for (let i = 0; i < numel; i++) {
          let src = offset;
          for (let d = 0; d < shape.length; d++) src += idx[d] * stride[d];
          data.set(s.bytes.subarray(src * size, (src + 1) * size), i * size);
          for (let d = shape.length - 1; d >= 0; d--) {
            if (++idx[d] < shape[d]) break;
            idx[d] = 0;
          }
        }
      }
    }
    return { kind: 'tensor', tensor: { dtype: s.dtype, shape, data } };
  };
  const reduce = (callable: PyValue, args: PyValue): PyValue => {
    if (typeof callable !== 'object' || callable === null || callable.kind !== 'global') throw fail(`REDUCE of ${describe(callable)}: not a callable this reader knows`);
    if (typeof args !== 'object' || args === null || args.kind !== 'tuple') throw fail(`REDUCE of ${callable.qualname} with ${describe(args)} instead of an argument tuple`);
    switch (callable.qualname) {
      case ORDERED_DICT:
        if (args.items.length !== 0) throw fail(`${ORDERED_DICT} called with ${args.items.length} arguments; torch.save calls it with none`);
        return { kind: 'dict', ordered: true, entries: new Map() };
      case REBUILD_TENSOR:
        return rebuildTensor(args.items);
      case REBUILD_PARAMETER: {
        const [data, requiresGrad, hooks] = args.items;
        if (args.items.length !== 3 || typeof data !== 'object' || data === null || data.kind !== 'tensor' || typeof requiresGrad !== 'boolean' || !isEmptyOrderedDict(hooks)) {
          throw fail(`${REBUILD_PARAMETER} takes (tensor, requires_grad, empty OrderedDict)`);
        }
        return data;
      }
      default:
        // The storage classes appear only inside persistent ids; calling one is not something torch.save writes.
        throw refuse(where, `refused REDUCE of ${callable.qualname}: only ${ORDERED_DICT}, ${REBUILD_TENSOR} and ${REBUILD_PARAMETER} are ever called`, { refused: callable.qualname });
    }
  };

  for (;;) {
    if (pos >= pkl.byteLength) throw fail('truncated: the pickle ends without STOP');
    const op = pkl[pos++];
    switch (op) {
      case 0x80: {
        // PROTO n
        const p = u8();
        if (p < 2 || p > 5) throw fail(`pickle protocol ${p} is not supported (torch.save writes 2)`);
        break;
      }
      case 0x95: // FRAME (protocol 4+): a length hint we do not need
        u64('FRAME');
        break;
      case 0x2e: {
        // STOP
        const result = pop('STOP');
        if (stack.length || marks.length) throw fail('STOP with values left on the stack');
        return result;
      }
      case 0x28: // MARK
        marks.push(stack);
        below += stack.length;
        stack = [];
        if (marks.length > maxStack) throw fail(`more than ${maxStack} nested MARKs`);
        break;
      case 0x30: // POP
        if (stack.length) stack.pop();
        else popMark('POP');
        break;
      case 0x31: // POP_MARK
        popMark('POP_MARK');
        break;
      case 0x32: // DUP
        push(top('DUP'));
        break;
      case 0x4e: // NONE
        push(null);
        break;
      case 0x88: // NEWTRUE
        push(true);
        break;
      case 0x89: // NEWFALSE
        push(false);
        break;
      case 0x4a: // BININT
        push(i32());
        break;
      case 0x4b: // BININT1
        push(u8());
        break;
      case 0x4d: // BININT2
        push(u16());
        break;
      case 0x8a: {
        // LONG1: n-byte little-endian two's complement; storage sizes and shapes fit in 8 bytes
        const n = u8();
        if (n > 8) throw fail(`LONG1 of ${n} bytes: integers in a state dict fit in 8`);
        const b = take(n, 'LONG1');
        let v = 0n;
        for (let i = n - 1; i >= 0; i--) v = (v << 8n) | BigInt(b[i]);
        if (n > 0 && b[n - 1] & 0x80) v -= 1n << BigInt(8 * n);
        if (v > BigInt(Number.MAX_SAFE_INTEGER) || v < BigInt(Number.MIN_SAFE_INTEGER)) throw fail(`integer ${v} is too large`);
        push(Number(v));
        break;
      }
      case 0x47: // BINFLOAT: big-endian float64
        need(8, 'BINFLOAT');
        push(dv.getFloat64(pos, false));
        pos += 8;
        break;
      case 0x58: // BINUNICODE
        push(text(u32(), 'BINUNICODE'));
        break;
      case 0x8c: // SHORT_BINUNICODE
        push(text(u8(), 'SHORT_BINUNICODE'));
        break;
      case 0x8d: // BINUNICODE8
        push(text(u64('BINUNICODE8'), 'BINUNICODE8'));
        break;
      case 0x43: // SHORT_BINBYTES
        push({ kind: 'bytes', bytes: take(u8(), 'SHORT_BINBYTES') });
        break;
      case 0x42: // BINBYTES
        push({ kind: 'bytes', bytes: take(u32(), 'BINBYTES') });
        break;
      case 0x29: // EMPTY_TUPLE
        push({ kind: 'tuple', items: [] });
        break;
      case 0x85: // TUPLE1
      case 0x86: // TUPLE2
      case 0x87: {
        // TUPLE3
        const n = op - 0x84;
        const items: PyValue[] = [];
        for (let i = 0; i < n; i++) items.unshift(pop('TUPLE'));
        push({ kind: 'tuple', items });
        break;
      }
      case 0x74: // TUPLE
        push({ kind: 'tuple', items: popMark('TUPLE') });
        break;
      case 0x5d: // EMPTY_LIST
        push({ kind: 'list', items: [] });
        break;
      case 0x61: {
        // APPEND
        const v = pop('APPEND');
        const l = top('APPEND');
        if (typeof l !== 'object' || l === null || l.kind !== 'list') throw fail(`APPEND to ${describe(l)}`);
        l.items.push(v);
        break;
      }
      case 0x65: {
        // APPENDS
        const items = popMark('APPENDS');
        const l = top('APPENDS');
        if (typeof l !== 'object' || l === null || l.kind !== 'list') throw fail(`APPENDS to ${describe(l)}`);
        // One by one: push(...items) passes every item as an argument, and a frame of a few hundred thousand (a
        // 400 KB pickle, well inside the stack bound) overflowed the call stack with a RangeError.
        for (const item of items) l.items.push(item);
        break;
      }
      case 0x7d: // EMPTY_DICT
        push({ kind: 'dict', ordered: false, entries: new Map() });
        break;
      case 0x73: {
        // SETITEM
        const v = pop('SETITEM');
        const k = pop('SETITEM');
        setItems(top('SETITEM'), [k, v], 'SETITEM');
        break;
      }
      case 0x75: {
        // SETITEMS
        const items = popMark('SETITEMS');
        setItems(top('SETITEMS'), items, 'SETITEMS');
        break;
      }
      case 0x71: // BINPUT
        memoPut(u8());
        break;
      case 0x72: // LONG_BINPUT
        memoPut(u32());
        break;
      case 0x94: // MEMOIZE
        memoPut(memo.size);
        break;
      case 0x68: // BINGET
        memoGet(u8());
        break;
      case 0x6a: // LONG_BINGET
        memoGet(u32());
        break;
      case 0x63: {
        // GLOBAL "module\nname\n"
        const module = line('GLOBAL module');
        const name = line('GLOBAL name');
        push(global(module, name));
        break;
      }
      case 0x93: {
        // STACK_GLOBAL
        const name = pop('STACK_GLOBAL');
        const module = pop('STACK_GLOBAL');
        if (typeof module !== 'string' || typeof name !== 'string') throw fail(`STACK_GLOBAL of ${describe(module)} and ${describe(name)}`);
        push(global(module, name));
        break;
      }
      case 0x52: {
        // REDUCE
        const args = pop('REDUCE');
        const callable = pop('REDUCE');
        push(reduce(callable, args));
        break;
      }
      case 0x62: {
        // BUILD: torch.save's OrderedDict may carry a `_metadata` attribute (a dict); we keep the dict, drop that.
        const state = pop('BUILD');
        const obj = top('BUILD');
        if (typeof obj !== 'object' || obj === null || obj.kind !== 'dict' || !obj.ordered) {
          throw refuse(where, `refused BUILD of ${describe(obj)}: only an OrderedDict's attributes are ever set`, { refused: 'BUILD' });
        }
        if (state !== null && (typeof state !== 'object' || state.kind !== 'dict')) throw fail(`BUILD of an OrderedDict with ${describe(state)} as its state`);
        break;
      }
      case 0x51: // BINPERSID
        push(persistentLoad(pop('BINPERSID')));
        break;
      default: {
        const name = REFUSED_OPCODES[op];
        if (name) throw refuse(where, `refused opcode ${name} at byte ${pos - 1}: torch.save of a state dict never writes it`, { refused: name.split(' ')[0] });
        throw fail(`opcode 0x${op.toString(16).padStart(2, '0')} (${quote(String.fromCharCode(op))}) is not one torch.save of a state dict writes`);
      }
    }
  }
}

// ---------------------------------------------------------------------------------------------------------------
// The zip around it

/** Names torch.save puts beside data.pkl and data/<key> (in different PyTorch versions). */
const ARCHIVE_RECORDS = new Set(['version', '.format_version', '.storage_alignment', 'byteorder', '.data/serialization_id', '.data/version']);

/** The magic number the pre-1.6 (non-zip) torch.save format pickles first. */
const LEGACY_MAGIC = [0x80, 0x02, 0x8a, 0x0a, 0x6c, 0xfc, 0x9c, 0x46, 0xf9, 0x20, 0x6a, 0xa8, 0x50, 0x19];

/** True for a torch.save zip: one top folder holding data.pkl. */
export function isTorchArchive(names: readonly string[]): boolean {
  return names.some((n) => /^[^/]+\/data\.pkl$/.test(n));
}

/**
 * Reads a torch.save file of a state dict (name → tensor, as PEFT's adapter_model.bin) into tensors. Refuses anything
 * that is not exactly that: other entries in the zip, other callables in the pickle, storages whose sizes disagree
 * with their entries, big-endian data, the legacy non-zip format.
 */
export function readTorchStateDict(bytes: Uint8Array, where = 'adapter_model.bin', limits: TorchLimits = {}): Map<string, TorchTensor> {
  if (!looksLikeZip(bytes)) {
    if (LEGACY_MAGIC.every((b, i) => bytes[i] === b)) {
      throw refuse(where, 'is in the legacy torch.save format of PyTorch < 1.6, which this reader does not accept; save it with a recent PyTorch or as safetensors');
    }
    throw refuse(where, 'is not a torch.save file (not a zip archive)');
  }
  const entries = listZip(bytes, where);
  const pkls = entries.filter((e) => /^[^/]+\/data\.pkl$/.test(e.name));
  if (pkls.length !== 1) throw refuse(where, pkls.length ? 'holds more than one data.pkl' : 'holds no <archive>/data.pkl: not a torch.save file');
  const prefix = pkls[0].name.slice(0, -'data.pkl'.length);
  for (const e of entries) {
    const rest = e.name.startsWith(prefix) ? e.name.slice(prefix.length) : null;
    const ok = rest !== null && (rest === 'data.pkl' || ARCHIVE_RECORDS.has(rest) || /^data\/[A-Za-z0-9_]{1,64}$/.test(rest));
    if (!ok) {
      const nested = /\.(zip|bin|pt|pth)$/i.test(e.name) ? ' (a nested archive)' : '';
      throw refuse(where, `unexpected entry ${quote(e.name)}${nested} in a torch.save archive; refused`, { refused: e.name });
    }
  }
  const maxPickle = limits.maxPickleBytes ?? DEFAULT_MAX_PICKLE;
  if (pkls[0].originalSize > maxPickle) throw refuse(where, `data.pkl claims ${pkls[0].originalSize} bytes, more than the ${maxPickle}-byte limit for a state dict's pickle`);
  const files = extractZip(bytes, where, () => true, limits);
  const order = files.get(`${prefix}byteorder`);
  if (order && new TextDecoder().decode(order).trim() !== 'little') {
    throw refuse(where, `byteorder is ${quote(new TextDecoder().decode(order).trim())}; only little-endian archives are read`);
  }
  const pkl = files.get(`${prefix}data.pkl`) as Uint8Array;
  let storageBytes = 0;
  for (const [name, b] of files) if (name.startsWith(`${prefix}data/`)) storageBytes += b.byteLength;
  const root = unpickleStateDict(pkl, (key) => files.get(`${prefix}data/${key}`), `${where}: ${quote(`${prefix}data.pkl`)}`, { maxTensorBytes: 2 * storageBytes, ...limits });
  if (typeof root !== 'object' || root === null || root.kind !== 'dict') throw refuse(where, `holds ${describe(root)}, not a state dict`);
  const out = new Map<string, TorchTensor>();
  for (const [k, v] of root.entries) {
    if (typeof k !== 'string') throw refuse(where, `the state dict has a key ${quote(k)} that is not a string`);
    if (typeof v !== 'object' || v === null || v.kind !== 'tensor') throw refuse(where, `${quote(k)} is ${describe(v)}, not a tensor`);
    out.set(k, v.tensor);
  }
  return out;
}
