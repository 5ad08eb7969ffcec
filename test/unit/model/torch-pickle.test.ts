// The restricted torch.save reader: state dicts written byte for byte in PyTorch's layout come back exactly, and every
// pickle that would import or call something else is refused before anything happens.
import { existsSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { zipSync } from 'fflate';
import { describe, expect, it } from 'vitest';
import { FinetuneError } from '../../../src/core/errors.ts';
import { readTorchStateDict, unpickleStateDict } from '../../../src/model/torch-pickle.ts';
import { listZip } from '../../../src/model/zip-archive.ts';
import { alignedStoredZip, PickleWriter, stateDictPickle, torchSaveStateDict, torchZip, type FixtureTensor } from '../../helpers/torch-save.ts';

function f32(n: number, seed: number): Float32Array {
  // Values with full mantissas (not round numbers), so a byte slip shows.
  return Float32Array.from({ length: n }, (_, i) => Math.sin(seed * 7.31 + i * 1.618) * 0.37);
}
function bits16(n: number, seed: number): Uint16Array {
  return Uint16Array.from({ length: n }, (_, i) => (seed * 4099 + i * 2654435761) & 0xffff);
}
function leBytes(t: FixtureTensor): Uint8Array {
  const b = new Uint8Array(t.data.length * (t.dtype === 'F32' ? 4 : 2));
  const dv = new DataView(b.buffer);
  for (let i = 0; i < t.data.length; i++) {
    if (t.dtype === 'F32') dv.setFloat32(4 * i, t.data[i], true);
    else dv.setUint16(2 * i, t.data[i], true);
  }
  return b;
}

const TENSORS: FixtureTensor[] = [
  { name: 'base_model.model.model.layers.0.self_attn.q_proj.lora_A.weight', dtype: 'F32', shape: [4, 128], data: f32(512, 1) },
  { name: 'base_model.model.model.layers.0.self_attn.q_proj.lora_B.weight', dtype: 'F32', shape: [128, 4], data: f32(512, 2) },
  { name: 'h', dtype: 'F16', shape: [3, 5], data: bits16(15, 3) },
  { name: 'b', dtype: 'BF16', shape: [7], data: bits16(7, 4) },
  { name: 'scalar', dtype: 'F32', shape: [], data: f32(1, 5) },
  { name: 'cube', dtype: 'F32', shape: [2, 3, 2, 2], data: f32(24, 6) },
];

function expectRefused(fn: () => unknown, pattern: RegExp): FinetuneError {
  let caught: unknown;
  try {
    fn();
  } catch (e) {
    caught = e;
  }
  expect(caught).toBeInstanceOf(FinetuneError);
  const err = caught as FinetuneError;
  expect(err.kind).toBe('bad-input');
  expect(err.message).toMatch(pattern);
  return err;
}

const noStorage = (): undefined => undefined;

describe('reading torch.save state dicts', () => {
  for (const container of ['OrderedDict', 'dict'] as const) {
    for (const parameters of [false, true]) {
      it(`returns every tensor exactly (${container}${parameters ? ' of nn.Parameters' : ''})`, () => {
        const bin = torchSaveStateDict(TENSORS, { container, parameters, archive: 'adapter_model' });
        const got = readTorchStateDict(bin);
        expect([...got.keys()]).toEqual(TENSORS.map((t) => t.name));
        for (const t of TENSORS) {
          const g = got.get(t.name)!;
          expect(g.dtype).toBe(t.dtype);
          expect(g.shape).toEqual(t.shape);
          expect(g.data).toEqual(leBytes(t));
        }
      });
    }
  }

  it('lays storages out as PyTorch does: stored, each 64-byte aligned, in data/<key>', () => {
    const bin = torchSaveStateDict(TENSORS);
    const entries = listZip(bin, 'x');
    expect(entries.map((e) => e.name)).toEqual([
      'archive/data.pkl',
      'archive/.format_version',
      'archive/.storage_alignment',
      'archive/byteorder',
      ...TENSORS.map((_, i) => `archive/data/${i}`),
      'archive/version',
      'archive/.data/serialization_id',
    ]);
    expect(entries.every((e) => e.compression === 0)).toBe(true);
    // Find each storage's bytes in the file: they start on a multiple of 64.
    for (const t of TENSORS.slice(0, 2)) {
      const want = leBytes(t);
      let at = -1;
      for (let i = 0; i + want.length <= bin.length && at < 0; i++) if (bin[i] === want[0] && want.every((b, j) => bin[i + j] === b)) at = i;
      expect(at % 64).toBe(0);
    }
  });

  it('reads more than 1000 entries (Python pickles dict items in batches of 1000)', () => {
    const many: FixtureTensor[] = Array.from({ length: 1001 }, (_, i) => ({ name: `t${i}`, dtype: 'F32', shape: [1], data: Float32Array.of(i + 0.5) }));
    const got = readTorchStateDict(torchSaveStateDict(many));
    expect(got.size).toBe(1001);
    expect(new DataView(got.get('t1000')!.data.buffer).getFloat32(0, true)).toBe(1000.5);
  });

  it('applies storage offsets and strides (a transposed view of a shared storage)', () => {
    // One storage of 8 floats; tensor "t" is elements 2..7 viewed as a 3×2 transpose (stride (1, 3)), "u" the same
    // storage from offset 0 as [2, 2] contiguous.
    const values = Float32Array.from([10, 11, 20, 21, 22, 23, 24, 25]);
    const w = new PickleWriter().proto(2).emptyDict().put().mark();
    const tensor = (name: string, offset: number, size: number[], stride: number[]): void => {
      w.unicode(name).global('torch._utils', '_rebuild_tensor_v2').mark();
      w.mark().unicode('storage').global('torch', 'FloatStorage').unicode('0').unicode('cpu').int(8).tuple().binpersid();
      w.int(offset);
      for (const x of size) w.int(x);
      w.tupleN(2);
      for (const x of stride) w.int(x);
      w.tupleN(2).bool(false).global('collections', 'OrderedDict').emptyTuple().reduce().tuple().reduce();
    };
    tensor('t', 2, [3, 2], [1, 3]);
    tensor('u', 0, [2, 2], [2, 1]);
    w.setitems().stop();
    const got = readTorchStateDict(torchZip(w.finish(), new Map([['0', new Uint8Array(values.buffer)]])));
    expect(Array.from(new Float32Array(got.get('t')!.data.slice().buffer))).toEqual([20, 23, 21, 24, 22, 25]);
    expect(Array.from(new Float32Array(got.get('u')!.data.slice().buffer))).toEqual([10, 11, 20, 21]);
  });

  it('accepts an OrderedDict carrying _metadata (BUILD on the OrderedDict) and ignores it', () => {
    const w = new PickleWriter().proto(2).global('collections', 'OrderedDict').put().emptyTuple().reduce().put();
    w.unicode('x').global('torch._utils', '_rebuild_tensor_v2').mark();
    w.mark().unicode('storage').global('torch', 'FloatStorage').unicode('0').unicode('cpu').int(1).tuple().binpersid();
    w.int(0).int(1).tupleN(1).int(1).tupleN(1).bool(false).get(0).emptyTuple().reduce().tuple().reduce().setitem();
    // state = {'_metadata': OrderedDict([('', {'version': 1})])}
    w.emptyDict().unicode('_metadata').get(0).emptyTuple().reduce().unicode('').emptyDict().unicode('version').int(1).setitem().setitem().setitem().build().stop();
    const got = readTorchStateDict(torchZip(w.finish(), new Map([['0', new Uint8Array(Float32Array.of(1.25).buffer)]])));
    expect([...got.keys()]).toEqual(['x']);
  });
});

describe('hostile pickles are refused and run nothing', () => {
  const marker = join(tmpdir(), `finetune-pwned-${process.pid}`);
  const attacks: [string, () => Uint8Array, string][] = [
    ['os.system via GLOBAL + REDUCE', () => new PickleWriter().proto(2).global('os', 'system').unicode(`touch ${marker}`).tupleN(1).reduce().stop().finish(), 'os.system'],
    ['posix.system', () => new PickleWriter().proto(2).global('posix', 'system').unicode(`touch ${marker}`).tupleN(1).reduce().stop().finish(), 'posix.system'],
    ['builtins.eval', () => new PickleWriter().proto(2).global('builtins', 'eval').unicode(`__import__('os').system('touch ${marker}')`).tupleN(1).reduce().stop().finish(), 'builtins.eval'],
    ['builtins.exec via STACK_GLOBAL (protocol 4)', () => new PickleWriter().proto(4).shortUnicode('builtins').shortUnicode('exec').stackGlobal().shortUnicode('import os').tupleN(1).reduce().stop().finish(), 'builtins.exec'],
    ['a torch-looking global that is not on the list', () => new PickleWriter().proto(2).global('torch', 'load').unicode('x').tupleN(1).reduce().stop().finish(), 'torch.load'],
    ['subprocess.Popen hidden as the value of a state dict entry', () => new PickleWriter().proto(2).emptyDict().unicode('k').global('subprocess', 'Popen').unicode('sh').tupleN(1).reduce().setitem().stop().finish(), 'subprocess.Popen'],
  ];
  for (const [name, build, refused] of attacks) {
    it(`${name}: refused by name, in a bare pickle and inside a torch.save zip`, () => {
      const err = expectRefused(() => unpickleStateDict(build(), noStorage), new RegExp(`refused global "${refused.replace('.', '\\.')}"`));
      expect(err.details?.refused).toBe(refused);
      expectRefused(() => readTorchStateDict(torchZip(build(), new Map())), new RegExp(`refused global "${refused.replace('.', '\\.')}"`));
      expect(existsSync(marker)).toBe(false);
    });
  }

  it('REDUCE of an allowed name that is not a function torch.save calls (a storage class)', () => {
    const p = new PickleWriter().proto(2).global('torch', 'FloatStorage').int(10).tupleN(1).reduce().stop().finish();
    expectRefused(() => unpickleStateDict(p, noStorage), /refused REDUCE of torch\.FloatStorage/);
  });

  it('BUILD on anything but an OrderedDict (how __setstate__ attacks start)', () => {
    const p = new PickleWriter().proto(2).emptyDict().emptyDict().unicode('__class__').unicode('x').setitem().build().stop().finish();
    expectRefused(() => unpickleStateDict(p, noStorage), /refused BUILD of a dict/);
  });

  for (const [op, name] of [
    [0x69, 'INST'],
    [0x6f, 'OBJ'],
    [0x81, 'NEWOBJ'],
    [0x92, 'NEWOBJ_EX'],
    [0x82, 'EXT1'],
  ] as const) {
    it(`opcode ${name} is refused`, () => {
      const p = new PickleWriter().proto(2).mark().raw(op, 1, 2, 3).stop().finish();
      const err = expectRefused(() => unpickleStateDict(p, noStorage), new RegExp(`refused opcode ${name}`));
      expect(err.details?.refused).toBe(name);
    });
  }

  it('a pickle that is itself a zip (a nested archive)', () => {
    const inner = torchSaveStateDict(TENSORS.slice(0, 1));
    expectRefused(() => readTorchStateDict(torchZip(inner, new Map())), /data\.pkl": is itself a zip archive: nested archives are refused/);
  });

  it('a torch.save zip with another archive inside', () => {
    const { pickle, storages } = stateDictPickle(TENSORS.slice(0, 1));
    const bin = torchZip(pickle, storages, { extra: [['payload.zip', zipSync({ 'a.txt': new Uint8Array(3) })]] });
    expectRefused(() => readTorchStateDict(bin), /unexpected entry "archive\/payload\.zip" \(a nested archive\)/);
  });

  it('a storage that claims more elements than its entry holds', () => {
    const { pickle, storages } = stateDictPickle(TENSORS.slice(0, 1));
    storages.set('0', storages.get('0')!.subarray(0, 100));
    expectRefused(() => readTorchStateDict(torchZip(pickle, storages)), /storage 0 claims 512 F32 elements \(2048 bytes\) but data\/0 holds 100 bytes/);
  });

  it('a tensor larger than its storage (a stride-0 view claiming a billion elements)', () => {
    const w = new PickleWriter().proto(2).emptyDict().unicode('x').global('torch._utils', '_rebuild_tensor_v2').mark();
    w.mark().unicode('storage').global('torch', 'FloatStorage').unicode('0').unicode('cpu').int(1).tuple().binpersid();
    w.int(0).int(100000).int(100000).tupleN(2).int(0).int(0).tupleN(2).bool(false).global('collections', 'OrderedDict').emptyTuple().reduce().tuple().reduce().setitem().stop();
    expectRefused(() => readTorchStateDict(torchZip(w.finish(), new Map([['0', new Uint8Array(4)]]))), /10000000000 elements\) cannot come from storage 0 of 1/);
  });

  it('one storage named by many views (copying it out again and again) is bounded by the storages it holds', () => {
    const w = new PickleWriter().proto(2).emptyDict().mark();
    for (let i = 0; i < 3; i++) {
      w.unicode(`v${i}`).global('torch._utils', '_rebuild_tensor_v2').mark();
      w.mark().unicode('storage').global('torch', 'FloatStorage').unicode('0').unicode('cpu').int(1024).tuple().binpersid();
      w.int(0).int(1024).tupleN(1).int(1).tupleN(1).bool(false).global('collections', 'OrderedDict').emptyTuple().reduce().tuple().reduce();
    }
    w.setitems().stop();
    const storage = new Map([['0', new Uint8Array(4096)]]);
    expectRefused(() => readTorchStateDict(torchZip(w.finish(), storage)), /the tensors add up to more than 8192 bytes, twice what the archive's storages hold/);
  });

  it('a view that reaches past the end of its storage', () => {
    const w = new PickleWriter().proto(2).emptyDict().unicode('x').global('torch._utils', '_rebuild_tensor_v2').mark();
    w.mark().unicode('storage').global('torch', 'FloatStorage').unicode('0').unicode('cpu').int(4).tuple().binpersid();
    w.int(3).int(2).tupleN(1).int(1).tupleN(1).bool(false).global('collections', 'OrderedDict').emptyTuple().reduce().tuple().reduce().setitem().stop();
    expectRefused(() => readTorchStateDict(torchZip(w.finish(), new Map([['0', new Uint8Array(16)]]))), /reaches element 4 of storage 0, which has 4/);
  });

  it('a storage with no data entry', () => {
    const { pickle } = stateDictPickle(TENSORS.slice(0, 1));
    expectRefused(() => readTorchStateDict(torchZip(pickle, new Map())), /storage 0 has no data\/0 entry/);
  });

  it('a string whose length runs past the end of the pickle', () => {
    const p = new PickleWriter().proto(2).raw(0x58, 0xff, 0xff, 0xff, 0x7f, 0x41).stop().finish();
    expectRefused(() => unpickleStateDict(p, noStorage), /truncated: BINUNICODE needs 2147483647 bytes/);
  });

  it('memo and stack beyond their bounds', () => {
    const w = new PickleWriter().proto(2);
    for (let i = 0; i < 20; i++) w.none().put();
    expectRefused(() => unpickleStateDict(w.finish(), noStorage, 'p', { maxMemo: 10 }), /more than 10 memo entries/);
    const s = new PickleWriter().proto(2);
    for (let i = 0; i < 20; i++) s.none();
    expectRefused(() => unpickleStateDict(s.finish(), noStorage, 'p', { maxStack: 10 }), /more than 10 items on the stack/);
    const m = new PickleWriter().proto(2);
    for (let i = 0; i < 20; i++) m.mark();
    expectRefused(() => unpickleStateDict(m.finish(), noStorage, 'p', { maxStack: 10 }), /more than 10 nested MARKs/);
  });

  it('APPENDS of 400,000 items (a 400 KB pickle) is read, not a stack overflow (the fuzz test\'s counterexample)', () => {
    const p = new PickleWriter().proto(2).emptyList().mark();
    for (let i = 0; i < 400_000; i++) p.none();
    const pickle = p.raw(0x65).stop().finish(); // APPENDS
    const list = unpickleStateDict(pickle, noStorage) as { kind: string; items: unknown[] };
    expect(list.kind).toBe('list');
    expect(list.items.length).toBe(400_000);
    expectRefused(() => readTorchStateDict(torchZip(pickle, new Map()), 'x.bin'), /^x\.bin: holds a list of 400000, not a state dict$/);
  });

  it('a data.pkl bigger than the pickle limit is not even extracted', () => {
    expectRefused(() => readTorchStateDict(torchSaveStateDict(TENSORS), 'x.bin', { maxPickleBytes: 100 }), /data\.pkl claims \d+ bytes, more than the 100-byte limit/);
  });

  it('a zip entry claiming more extracted bytes than deflate can produce (a zip bomb header)', () => {
    const { pickle } = stateDictPickle(TENSORS.slice(0, 1));
    const bin = zipSync({ 'archive/data.pkl': pickle, 'archive/data/0': new Uint8Array(5000) }, { level: 9 });
    // Rewrite the central directory's uncompressed size of archive/data/0 to 1 GB.
    const dv = new DataView(bin.buffer);
    let at = dv.getUint32(bin.length - 22 + 16, true);
    for (;;) {
      const n = dv.getUint16(at + 28, true);
      if (new TextDecoder().decode(bin.subarray(at + 46, at + 46 + n)) === 'archive/data/0') break;
      at += 46 + n + dv.getUint16(at + 30, true) + dv.getUint16(at + 32, true);
    }
    dv.setUint32(at + 24, 1e9, true);
    expectRefused(() => readTorchStateDict(bin), /"archive\/data\/0" claims 1000000000 bytes from \d+ compressed bytes, more than deflate can produce/);
  });

  it('a storage damaged in transit (one byte changed) is refused by its CRC-32, not read as another number', () => {
    const bin = torchSaveStateDict(TENSORS.slice(0, 1));
    // The storage's last element, found in the archive by its bytes: its top byte flipped changes one weight.
    const storage = leBytes(TENSORS[0]);
    bin[Buffer.from(bin).indexOf(Buffer.from(storage.subarray(-16))) + 15] ^= 0x40;
    expectRefused(() => readTorchStateDict(bin, 'x.bin'), /^x\.bin: "archive\/data\/0" is damaged: its CRC-32 is [0-9a-f]{8}, the archive recorded [0-9a-f]{8} \(a broken download or copy\?\); get the file again$/);
  });

  it('the legacy (pre-1.6) format, big-endian archives and non-tensor values get their own messages', () => {
    expectRefused(() => readTorchStateDict(Uint8Array.from([0x80, 0x02, 0x8a, 0x0a, 0x6c, 0xfc, 0x9c, 0x46, 0xf9, 0x20, 0x6a, 0xa8, 0x50, 0x19, 0, 0])), /legacy torch\.save format/);
    const { pickle, storages } = stateDictPickle(TENSORS.slice(0, 1));
    // Written whole (a record changed in place would fail its CRC-32 first).
    const big = alignedStoredZip([['archive/data.pkl', pickle], ['archive/byteorder', new TextEncoder().encode('big')], ...[...storages].map(([k, b]): [string, Uint8Array] => [`archive/data/${k}`, b])]);
    expectRefused(() => readTorchStateDict(big), /byteorder is "big"; only little-endian/);
    const notTensor = new PickleWriter().proto(2).emptyDict().unicode('x').int(3).setitem().stop().finish();
    expectRefused(() => readTorchStateDict(torchZip(notTensor, new Map())), /"x" is the number 3, not a tensor/);
  });
});
