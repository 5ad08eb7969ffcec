// An independent forward-pass oracle: test/fixtures/tiny-mistral.onnx (the BASE tiny-mistral, fp32, exported from
// PyTorch) run by onnxruntime-web's WebAssembly backend in Node. No network: the .wasm binary is read from
// node_modules and handed to the runtime (env.wasm.wasmBinary), so nothing is fetched.
//
// onnxLogits(inputIds) → Float32Array (batch, seq, 32000), the logits of the base model (no LoRA).

import { readFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import * as ort from 'onnxruntime-web';

export const ONNX_MODEL = fileURLToPath(new URL('../fixtures/tiny-mistral.onnx', import.meta.url));
export const ONNX_VOCAB = 32000;

let session: Promise<ort.InferenceSession> | null = null;

function wasmBinary(): Uint8Array {
  // The package's export map hides dist/; resolve its entry point and look beside it.
  const require = createRequire(import.meta.url);
  const entry = require.resolve('onnxruntime-web');
  const file = join(dirname(entry), 'ort-wasm-simd-threaded.wasm');
  const b = readFileSync(file);
  return new Uint8Array(b.buffer, b.byteOffset, b.byteLength);
}

/** The shared session (created once per process: loading the 35 MB model takes about a second). */
export function onnxSession(): Promise<ort.InferenceSession> {
  session ??= (async () => {
    ort.env.wasm.numThreads = 1; // the machines are small and shared; a single thread is also deterministic
    ort.env.wasm.wasmBinary = wasmBinary();
    ort.env.logLevel = 'error';
    const model = readFileSync(ONNX_MODEL);
    return ort.InferenceSession.create(new Uint8Array(model.buffer, model.byteOffset, model.byteLength), {
      executionProviders: ['wasm'],
      graphOptimizationLevel: 'all',
    });
  })();
  return session;
}

/** Logits (batch, seq, 32000) of the base tiny-mistral for a rectangular batch of token ids. */
export async function onnxLogits(inputIds: number[][]): Promise<Float32Array> {
  const B = inputIds.length;
  const T = B ? inputIds[0].length : 0;
  if (B === 0 || T === 0) throw new Error('onnxLogits: empty batch');
  if (!inputIds.every((r) => r.length === T)) throw new Error('onnxLogits: every sequence must have the same length');
  const ids = new BigInt64Array(B * T);
  inputIds.flat().forEach((id, i) => {
    if (!Number.isInteger(id) || id < 0 || id >= ONNX_VOCAB) throw new Error(`onnxLogits: token id ${id} is outside the vocabulary`);
    ids[i] = BigInt(id);
  });
  const s = await onnxSession();
  const input = new ort.Tensor('int64', ids, [B, T]);
  const out = await s.run({ input_ids: input });
  const logits = out.logits;
  try {
    if (logits.type !== 'float32') throw new Error(`onnxLogits: expected float32 logits, got ${logits.type}`);
    const dims = logits.dims.join(',');
    if (dims !== `${B},${T},${ONNX_VOCAB}`) throw new Error(`onnxLogits: expected logits [${B},${T},${ONNX_VOCAB}], got [${dims}]`);
    return Float32Array.from(logits.data as Float32Array);
  } finally {
    input.dispose();
    logits.dispose();
  }
}
