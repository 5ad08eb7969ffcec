// `finetune plan`: will this run fit? The memory planner (src/run/planner.ts) from the model's config.json and the
// hyperparameters — no weights are read: config.json, and for a local folder the safetensors headers (the dtype the
// weights are stored in) — against this machine's adapter limits.

import { retryNoteText } from '../../model/source.ts';
import { longestSequenceBound } from '../../run/planner.ts';
import { HYPERPARAM_FLAG_NAMES, HYPERPARAM_VALUE_FLAGS, hyperparamsFromArgs, hyperparamUsage } from '../../config/flags.ts';
import { FIELD_BY_NAME, HYPERPARAM_NAMES } from '../../config/hyperparams.ts';
import { parseMistralConfig } from '../../model/config.ts';
import { planDtypeOptions } from '../../run/plan-dtype.ts';
import { samplePromptIds } from '../../data/layout.ts';
import { tokenizerForModelFlag } from './tokenize.ts';
import { readJson } from '../../model/source.ts';
import { planMemory, type PlanGpu } from '../../run/planner.ts';
import { parseCommandArgs, UsageError, type Command } from '../command.ts';
import { describeGpuAdapter } from '../../engine/gpu-adapter.ts';
import { detectGpuMemory, parseGpuMemoryFlag } from '../gpu-memory.ts';
import { findNodeAdapter } from '../node-gpu.ts';
import { modelSpec } from '../node-source.ts';
import { defaultCacheDir } from '../node-weight-cache.ts';
import { parseKeepLayers } from '../keep-layers-flag.ts';
import { BASE_MATMUL_HELP, parseBaseMatmul } from '../kernel-flags.ts';
import { quote } from '../../core/quote.ts';
import { thrownMessage } from '../../core/errors.ts';
import { INDEX_FILE, SINGLE_FILE } from '../../model/checkpoint.ts';
import { statSync } from 'node:fs';
import { join } from 'node:path';

const USAGE = `finetune plan --model DIR|HUB_ID|URL [--gpu-memory GB] [--keep-layers N|all] [--keep-attention] [--base-matmul fp32|int8|int8-mlp] [--seq-len N] [--revision REV] [--tokenizer DIR] [--cache-dir DIR] [--no-gpu] [--<hyperparameter> VALUE …]

Prints, as JSON, the GPU memory a fine-tuning run of this model will need — base weights as quantised, LoRA, AdamW
moments, activations (per-layer recomputation), the validation_prompt sample's KV cache, scratch, io — computed from config.json and the hyperparameters (from a
Hub id or a URL only config.json is read: nothing is downloaded but that file; from a folder, the safetensors headers
too, so the weights are counted in the dtype they are stored in when config.json's torch_dtype says otherwise;
"model.dtypeFrom" says which), and a verdict: fits, tight (over 85 % of the budget),
fits-with-streaming (only with the layers streamed from CPU memory: finetune train --stream-layers; "streaming" gives
its GPU and CPU bytes, bytes moved per step and an estimated slowdown) or does-not-fit, with the reasons. When an
unquantised base (peft_method lora) does not simply fit, "qlora" gives the same run's verdict and peak with
--peft_method qlora (the base in 4-bit NF4), if that is better. The buffers are checked against this machine's WebGPU adapter limits (maxBufferSize, maxStorageBufferBindingSize) unless --no-gpu.

options:
  --model M         a folder with config.json, a Hugging Face id (owner/name; HF_TOKEN is sent for gated
                    repositories) or an http(s) URL of a folder
  --gpu-memory GB   the GPU memory to plan against, in GB as GPU makers count them (2³⁰ bytes: a card sold as
                    80 GB is 80; WebGPU cannot report it; default: on an NVIDIA GPU the free memory nvidia-smi reports,
                    else a guess of 8 GiB, said so)
  --keep-layers N   plan with the last N layers (or all) keeping their intermediates for the backward instead of
                    recomputing them (default: as many as fit under 85 % of the GPU memory when it is known, from
                    --gpu-memory or nvidia-smi, else 0)
  --keep-attention  plan with the recomputed layers keeping their attention outputs, so the recomputation skips
                    attention (default: when they fit under 85 % of the known GPU memory, chosen before any whole
                    layer)
  --seq-len N       plan for sequences of at most N tokens (default: the longest the hyperparameters allow)
  ${BASE_MATMUL_HELP}
  --revision REV    Hub branch, tag or commit (default main)
  --tokenizer DIR   directory with tokenizer.model, to count the validation_prompt's tokens (default: the project's
                    public/tokenizer)
  --no-gpu          do not look for an adapter (buffer limits are then not checked)
  --cache-dir DIR   the weight cache's folder (default ~/.cache/finetune, or $XDG_CACHE_HOME/finetune): a Hub or URL
                    model loaded before (by train or generate) is planned from its offline copy there when its
                    server cannot be reached, said on stderr; plan never writes there

The plan's "warnings" (weights in the folder that cannot be read, settings a run refuses) are also printed on stderr.

exit status: 0 when a plan was made, whatever its verdict (does-not-fit included: read "verdict"); 2 for a wrong
argument or model (no config.json, one that is not a Mistral model's); 1 when something else failed (a server that
cannot be reached, a bug).

hyperparameters (those that change memory: peft_method, quantization, micro_batch_size,
max_seq_len, pack_sequences, wrap_packed_sequences, chunk_size, lora_rank, lora_target_modules, validation_prompt):
${hyperparamUsage(HYPERPARAM_NAMES.filter((n) => FIELD_BY_NAME[n].type !== 'file'))}`;

/**
 * The weight file names a model folder holds as something other than a file (a directory named model.safetensors):
 * the folder's FileSet lists files only, so without this such a folder read as config.json alone, planned quietly.
 */
function weightNamesNotFiles(dir: string): string[] {
  return [SINGLE_FILE, INDEX_FILE].filter((name) => {
    try {
      return !statSync(join(dir, name)).isFile();
    } catch {
      return false; // not there (or not to be looked at): the listing and the headers' read say the rest
    }
  });
}

export const planCommand: Command = {
  name: 'plan',
  valueFlags: HYPERPARAM_VALUE_FLAGS,
  summary: 'will it fit? GPU memory of a run by category from config.json + hyperparameters, and a verdict (JSON)',
  usage: USAGE,
  async run(args, io) {
    const { hp, rest } = hyperparamsFromArgs(args, {}, { noData: 'plan reads no data (the memory a run needs comes from the model and the hyperparameters); leave it out' });
    const { values } = parseCommandArgs(rest, {
      model: { type: 'string' },
      'gpu-memory': { type: 'string' },
      'seq-len': { type: 'string' },
      'keep-layers': { type: 'string' },
      'keep-attention': { type: 'boolean' },
      'base-matmul': { type: 'string' },
      revision: { type: 'string' },
      tokenizer: { type: 'string' },
      'no-gpu': { type: 'boolean', default: false },
      'cache-dir': { type: 'string' },
    }, false, { otherFlags: HYPERPARAM_FLAG_NAMES });
    if (!values.model) throw new UsageError('--model is required');
    const positive = (flag: string, v: string | undefined, integer: boolean): number | undefined => {
      if (v === undefined) return undefined;
      const n = Number(v);
      if (!Number.isFinite(n) || n <= 0 || (integer && !Number.isSafeInteger(n))) throw new UsageError(`--${flag} must be a positive ${integer ? 'integer' : 'number'}, got ${quote(v)}`);
      return n;
    };
    const memoryBytes = parseGpuMemoryFlag(values['gpu-memory']);
    const seqLen = positive('seq-len', values['seq-len'], true);
    const keep = parseKeepLayers(values['keep-layers']);
    const baseMatmul = parseBaseMatmul(values['base-matmul']);
    // With the cache folder: offline, a model loaded before is planned from its offline copy (read, never written here).
    const model = modelSpec(values.model, { token: process.env.HF_TOKEN || undefined, revision: values.revision, cacheDir: values['cache-dir'] ?? defaultCacheDir(), onRetry: (r) => io.err(`note: ${retryNoteText(r)}`) });
    const config = parseMistralConfig(await readJson(await model.files.open('config.json')), `${model.label}/config.json`);
    // A folder's safetensors headers are at hand (no download): the plan counts the weights as stored, which
    // config.json's torch_dtype may not say (bfloat16 over float32 shards planned them at half their size).
    const dtype = await planDtypeOptions(model.files, model.kind === 'directory', model.kind === 'directory' ? { notFiles: weightNamesNotFiles(values.model) } : {});
    const gpu: PlanGpu = { memoryBytes };
    if (!values['no-gpu']) {
      try {
        const found = await findNodeAdapter();
        const l = found.adapter.limits;
        const info = found.adapter.info;
        Object.assign(gpu, {
          maxBufferSize: l.maxBufferSize,
          maxStorageBufferBindingSize: l.maxStorageBufferBindingSize,
          name: [info?.vendor, info?.device || info?.architecture].filter(Boolean).join(' ') || found.via,
          software: describeGpuAdapter(found.adapter).software,
        });
        if (gpu.memoryBytes === undefined) {
          // WebGPU cannot tell the memory; nvidia-smi can, for an NVIDIA GPU.
          const detected = await detectGpuMemory(describeGpuAdapter(found.adapter));
          if (detected) io.err(`note: ${detected.note}`);
          if (detected?.bytes) Object.assign(gpu, { memoryBytes: detected.bytes, memorySource: 'detected' });
        }
      } catch (e) {
        io.err(`note: no WebGPU adapter (${thrownMessage(e)}); buffer limits are not checked`);
      }
    }
    // No sequence of a run of these settings is longer than the bound (max_seq_len, or the packs' chunk_size): a longer
    // --seq-len is planned at the bound, which was once done without a word.
    const bound = longestSequenceBound(hp);
    if (seqLen !== undefined && seqLen > bound) {
      const f = FIELD_BY_NAME.max_seq_len;
      const most = f.type === 'int' && f.max !== undefined ? f.max : Infinity;
      const longer = seqLen > most ? `max_seq_len allows at most ${most}: give --max_seq_len ${most} to plan the longest` : `give --max_seq_len ${seqLen} to plan longer ones`;
      io.err(`note: --seq-len ${seqLen} is longer than any sequence of these settings (${hp.pack_sequences ? 'packs of chunk_size and max_seq_len' : 'max_seq_len'}: ${bound} tokens): planned for ${bound} (${longer})`);
    }
    // The validation_prompt sample's KV cache is sized by the prompt's tokens: counted with the tokenizer the run reads
    // this model with (the model's own tokenizer.model where its vocabulary is not the project's, as train does), or
    // bounded from its bytes where that cannot be read.
    let samplePromptTokens: number | undefined;
    if (hp.validation_prompt) {
      try {
        samplePromptTokens = samplePromptIds(await tokenizerForModelFlag(values.tokenizer, model.files, config, io.err), hp.validation_prompt, hp.layout).length;
      } catch (e) {
        io.err(`note: the validation_prompt's tokens are bounded from its bytes (${thrownMessage(e)})`);
      }
    }
    const plan = planMemory(config, hp, { samplePromptTokens, seqLen, gpu, keptLayers: keep === 'all' ? config.layers : keep, keptAttention: values['keep-attention'] ? true : undefined, baseMatmul, ...dtype });
    for (const n of model.files.offline?.notes() ?? []) io.err(`note: ${n}`);
    // A person at the terminal reads stderr, not the JSON's "warnings" (weights that cannot be read, a window a run
    // refuses): said there too.
    for (const w of plan.warnings) io.err(`warning: ${w}`);
    io.out(JSON.stringify({ type: 'plan', source: { kind: model.kind, name: model.label }, ...plan }, null, 2));
    return 0;
  },
};
