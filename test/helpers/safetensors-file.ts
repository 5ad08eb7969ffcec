// Reads a whole safetensors file for a test through the project's own (fuzzed) header parser: tensor name → dtype,
// shape and an aligned copy of its bytes.
import { readFileSync } from 'node:fs';
import { parseSafetensorsHeaderBytes, type SafetensorsDtype } from '../../src/model/safetensors.ts';

export interface FileTensor {
  dtype: SafetensorsDtype;
  shape: number[];
  bytes: Uint8Array;
}

export function safetensorsTensors(bytes: Uint8Array): Map<string, FileTensor> {
  const header = parseSafetensorsHeaderBytes(bytes);
  const out = new Map<string, FileTensor>();
  for (const [name, t] of header.tensors) {
    // A copy, so that typed-array views over it are aligned.
    out.set(name, { dtype: t.dtype, shape: t.shape, bytes: bytes.slice(t.offset, t.offset + t.end - t.begin) });
  }
  return out;
}

export function readSafetensorsFile(path: string): Map<string, FileTensor> {
  return safetensorsTensors(new Uint8Array(readFileSync(path)));
}
