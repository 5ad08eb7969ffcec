import { type Quantization } from '../../core/mistral.ts';
import { mkdir, readFile, writeFile } from 'node:fs/promises';
import { basename, join } from 'node:path';
import { hyperparamsFromArgs } from '../../config/flags.ts';
import { FIELDS } from '../../config/hyperparams.ts';
import { FinetuneError } from '../../core/errors.ts';
import { FinetuneSession, quantizationFor } from '../../run/session.ts';
import { loraToGguf, peftFiles } from '../../export/index.ts';
import { parseCommandArgs, UsageError, type Command } from '../command.ts';
import { checkDirectory, checkJsonlFile } from '../input-file.ts';
import { createNodeContext } from '../node-gpu.ts';
import { nodeDirectory } from '../node-source.ts';
import { folderRunStore } from '../node-store.ts';
import { loadTokenizerFrom } from './tokenize.ts';

const USAGE = `finetune train --model DIR --data FILE.jsonl [--validation FILE.jsonl] [--out DIR] [--resume] [--<hyperparameter> VALUE …]

Fine-tunes a LoRA adapter on a Mistral-architecture checkpoint (config.json + safetensors, sharded or not) with the
same engine as the page. Hyperparameters are Replicate's training inputs plus ours, with the same names and defaults
(e.g. --num_train_epochs 3 --learning_rate 2e-4 --lora_rank 16 --peft_method qlora --layout instruct); see the list
below. Prints one JSON line per event (plan, step, eval, checkpoint, sample). The run's data and checkpoints live in
OUT/run (--resume continues a stopped run from there); the final adapter is written to OUT/adapter in PEFT format (adapter_config.json,
adapter_model.safetensors) and as adapter.gguf for llama.cpp/Ollama, with a README on loading them.

options:
  --model DIR        the base model directory
  --data FILE        training data (JSONL: {"text"} or {"prompt","completion"} rows)
  --validation FILE  optional validation data
  --out DIR          where to write the run and the adapter (default: finetune-out)
  --resume           continue the run saved in OUT/run
  --tokenizer DIR    directory with tokenizer.model (default: the project's public/tokenizer)

hyperparameters:
${FIELDS.filter((f) => f.type !== 'file')
  .map((f) => `  --${f.name.padEnd(24)} ${String(f.default ?? '').padEnd(14)} ${f.label}`)
  .join('\n')}`;

export const trainCommand: Command = {
  name: 'train',
  summary: 'fine-tune a LoRA adapter on a local checkpoint with Replicate-named hyperparameters (JSON line per event)',
  usage: USAGE,
  async run(args, io) {
    const { hp, rest, warnings } = hyperparamsFromArgs(args);
    for (const w of warnings) io.err(`warning: ${w}`);
    const { values } = parseCommandArgs(rest, {
      model: { type: 'string' },
      data: { type: 'string' },
      validation: { type: 'string' },
      out: { type: 'string', default: 'finetune-out' },
      resume: { type: 'boolean', default: false },
      tokenizer: { type: 'string' },
    });
    if (!values.model) throw new UsageError('--model is required');
    if (!values.data && !values.resume) throw new UsageError('--data is required');
    // Every named file is checked before the GPU or the model is touched: a typo costs a second, not a model load.
    checkDirectory(values.model, '--model');
    if (values.data) await checkJsonlFile(values.data, '--data');
    if (values.validation) await checkJsonlFile(values.validation, '--validation');
    const out = values.out as string;
    const tokenizer = await loadTokenizerFrom(values.tokenizer);
    const { ctx, found } = await createNodeContext();
    if (found.note) io.err(`note: ${found.note}`);
    const session = new FinetuneSession(ctx, tokenizer, folderRunStore(join(out, 'run')));
    const saved = values.resume ? await session.savedRun() : null;
    if (values.resume && !saved) throw new FinetuneError('bad-input', `there is no saved run in ${join(out, 'run')}`);
    const quantization: Quantization = saved ? saved.quantization : quantizationFor(hp);
    const print = (o: unknown): void => io.out(JSON.stringify(o));
    const model = await session.loadModel(nodeDirectory(values.model), basename(values.model), quantization);
    print({ type: 'model', ...model });
    const read = async (p: string): Promise<Blob> => new Blob([new Uint8Array(await readFile(p))]);
    // Ctrl-C stops after the current step and saves it, so that --resume continues from there.
    const onSigint = (): void => {
      io.err('stopping after this step (Ctrl-C again to abort)…');
      session.stop();
      process.off('SIGINT', onSigint);
    };
    process.on('SIGINT', onSigint);
    const result = values.resume
      ? await session.train({}, null, print, { resume: true })
      : await session.train(
          hp,
          {
            train: await read(values.data as string),
            trainName: basename(values.data as string),
            validation: values.validation ? await read(values.validation) : null,
            validationName: values.validation ? basename(values.validation) : null,
          },
          print,
        );
    // PEFT files (PEFT, vLLM, Ollama) and a GGUF LoRA (llama.cpp, Ollama) side by side, with a README on loading them.
    const adapter = await session.adapterNow();
    const files = peftFiles(adapter, { ggufFile: 'adapter.gguf', name: model.source });
    files['adapter.gguf'] = loraToGguf(adapter, session.baseConfig, { name: `${model.source} LoRA` });
    const dir = join(out, 'adapter');
    await mkdir(dir, { recursive: true });
    for (const [name, content] of Object.entries(files)) await writeFile(join(dir, name), content);
    print({ type: 'done', ...result, adapter: dir });
    ctx.destroyDevice();
    return 0;
  },
};
