// tiny-mistral as a model of another vocabulary (Mistral-7B v0.3 has 32768 tokens): config.json says so and the
// embeddings and lm_head get zero rows up to it, so the checkpoint is consistent and only the tokenizer (32000)
// disagrees. For the tests of the vocabulary check.
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { nodeDirectory } from '../../src/cli/node-source.ts';
import { openBaseCheckpoint } from '../../src/model/checkpoint.ts';
import { writeSafetensors, type TensorToWrite } from '../../src/model/safetensors.ts';

/** Writes the model into a new temporary folder and returns its path. */
export async function wideVocabModel(vocab = 32768): Promise<string> {
  const dir = mkdtempSync(join(tmpdir(), 'finetune-vocab-'));
  const ckpt = await openBaseCheckpoint(nodeDirectory('test/fixtures/tiny-mistral'));
  const tensors: TensorToWrite[] = [];
  for (const name of ckpt.tensorNames) {
    const t = await ckpt.read(name);
    const { shape } = ckpt.info(name);
    if (name === 'model.embed_tokens.weight' || name === 'lm_head.weight') {
      const data = new Uint8Array((t.bytes.byteLength / shape[0]) * vocab);
      data.set(t.bytes);
      tensors.push({ name, dtype: t.dtype, shape: [vocab, ...shape.slice(1)], data });
    } else {
      tensors.push({ name, dtype: t.dtype, shape, data: t.bytes });
    }
  }
  writeFileSync(join(dir, 'model.safetensors'), writeSafetensors(tensors, { format: 'pt' }));
  writeFileSync(join(dir, 'config.json'), JSON.stringify({ ...ckpt.configJson, vocab_size: vocab }));
  return dir;
}
