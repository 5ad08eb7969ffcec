import { retryNoteText } from '../../model/source.ts';
import { SIGNAL_EXIT_CODE } from '../stop-signals.ts';
import { checkCacheFolder } from '../cache-dir.ts';
import { defaultCacheDir, nodeWeightCache } from '../node-weight-cache.ts';
import { loadWeightsCached } from '../../run/weight-cache.ts';
import { keepOfflineCopy } from '../../model/offline-copy.ts';
import { supersededNote } from '../../run/weight-cache-prune.ts';
import { GENERATION_LIMITS, parseGenerationSetting, type GenerationSetting } from '../../config/generation.ts';
import { QUANTIZATIONS, type Quantization } from '../../core/mistral.ts';
import { formatCount, formatCounted } from '../../core/units.ts';
import { destroyLora, uploadLora } from '../../engine/mistral/lora.ts';
import { importAdapter } from '../../model/adapter-import.ts';
import { positionLimit } from '../../model/attention-span.ts';
import { openBaseCheckpoint } from '../../model/checkpoint.ts';
import { generate } from '../../run/generate.ts';
import { generationPromptIds, LAYOUTS, type Layout } from '../../data/layout.ts';
import { adapterInput } from '../adapter-input.ts';
import { baseModelNote, ignoredTargetsNote } from '../../run/imported-adapter.ts';
import { parseCommandArgs, UsageError, type Command } from '../command.ts';
import { checkDirectory } from '../input-file.ts';
import { createNodeContext } from '../node-gpu.ts';
import { detectGpuMemory, parseGpuMemoryFlag, type GpuMemoryDetection } from '../gpu-memory.ts';
import type { GpuContext } from '../../engine/gpu.ts';
import type { GpuAdapterInfo } from '../../engine/gpu-adapter.ts';
import { isRemoteModelSpec, modelSpec } from '../node-source.ts';
import { tokenizerForModelFlag } from './tokenize.ts';
import { loadProgressPrinter } from '../load-progress.ts';
import { quote } from '../../core/quote.ts';

/** A generation flag's value, checked as the page's Try it checks it (src/config/generation.ts), or its fallback. */
function generationFlag(v: string | undefined, flag: string, setting: GenerationSetting, fallback: number): number {
  if (v === undefined) return fallback;
  const r = parseGenerationSetting(setting, v, flag);
  if (!r.ok) throw new UsageError(r.error);
  return r.value;
}

const L = GENERATION_LIMITS;

/** How often the reading of a long prompt is reported on stderr at most. */
const PROMPT_NOTE_EVERY_MS = 2000;

/** --prompt is free text: `--prompt -h` is the prompt "-h". */
const VALUE_FLAGS = ['prompt'];

const USAGE = `finetune generate --model DIR|HUB_ID|URL [--adapter DIR|ZIP] --prompt TEXT [--max-tokens N] [--temperature T]
                  [--top-p P] [--seed N] [--layout replicate|instruct] [--quant none|nf4|nf4-double] [--stream-layers]
                  [--tokenizer DIR] [--gpu-memory GB] [--revision REV] [--cache-dir DIR | --no-cache]

Continues TEXT (BOS prepended; as written, or laid out with --layout) with the KV-cache decoder, printing
each token's text on stdout as it is generated, until </s> or --max-tokens. Greedy by default (reproducible). Ctrl-C
stops after the current token (or between the parts of a long prompt, whose reading is reported on stderr every 2 s)
and exits 130. A summary (tokens, tokens/s, why it stopped) goes to stderr. The page's Try it takes
the same values, written the same way: numbers in decimal (no 0x10, no 1e2).

options:
  --model M          the base model: a directory, a Hugging Face id (owner/name; HF_TOKEN is sent for gated
                     repositories) or an http(s) URL of a folder that serves Range requests (HF_TOKEN goes
                     only to huggingface.co over https)
  --adapter PATH     the LoRA adapter: a PEFT folder (adapter_config.json with adapter_model.safetensors or .bin), a
                     zip of one (the page's download, with or without GGUF and README) or Replicate's
                     training_output.zip; without it, the base model alone
  --prompt TEXT      the text to continue; --prompt "" continues <s> alone; the word after --prompt is the
                     prompt even when it starts with a dash (--prompt -h)
  --layout L         lay the prompt out as a run with that layout lays out its rows' prompts: instruct puts it in
                     [INST] tags (their control ids with Mistral's v3 tokenizer, Mistral-7B-Instruct-v0.3, which
                     text cannot make), unless it holds them; replicate and no --layout take it as written
  --max-tokens N     new tokens at most: ${L.maxNewTokens.rule} (default 64)
  --temperature T    0 (the default) takes the most likely token; above 0 samples: ${L.temperature.rule}
  --top-p P          samples from the most likely tokens up to P of the probability: ${L.topP.rule}
                     (default 1)
  --seed N           the seed of the sampling draws: a whole number (default 0). Greedy generation (temperature
                     0) uses neither --top-p nor --seed, and a note says so
  --revision REV      Hub branch, tag or commit of a Hugging Face --model (default main); every file is read at the
                     commit the first one came from
  --quant Q          load the base weights as none (default), nf4 or nf4-double
  --cache-dir DIR    the weight cache train fills (default ~/.cache/finetune): a model loaded before, at the same
                     --quant, is read from it instead of being downloaded and quantised again
  --no-cache         neither read nor write the weight cache
  --gpu-memory GB    this GPU's memory, in GB as GPU makers count them (2³⁰ bytes: a card sold as 80 GB is 80; WebGPU
                     cannot tell; on an NVIDIA GPU the default is the free memory nvidia-smi reports, said in a note):
                     a generation whose KV cache would not fit beside the model is refused before the cache is asked
                     for, with the memory it needs and what is left (a driver may grant too large a cache and then
                     lose the device); without it and without nvidia-smi, nothing is checked
  --stream-layers    keep the layers in CPU memory and upload each one for every token (for a GPU too small for the
                     model: the same tokens, much slower)
  --tokenizer DIR    directory with tokenizer.model (default: the project's public/tokenizer)

Example:
  finetune generate --model test/fixtures/tiny-mistral --adapter test/fixtures/tiny-adapter --prompt "def add(" --max-tokens 8`;

/**
 * `finetune generate`; `newContext` makes the GPU context and `detectMemory` finds the GPU's memory when --gpu-memory
 * is not given (tests hand in a stand-in context and what a machine would say, as train's tests do).
 */
export function makeGenerateCommand(
  newContext: () => Promise<{ ctx: GpuContext; found: { note?: string } }> = createNodeContext,
  detectMemory: (adapter: GpuAdapterInfo) => Promise<GpuMemoryDetection | null> = detectGpuMemory,
): Command {
  return {
    name: 'generate',
    valueFlags: VALUE_FLAGS,
    summary: 'continue a prompt with a model (and an adapter), streaming the text as it comes',
    usage: USAGE,
    async run(args, io) {
      const { values } = parseCommandArgs(args, {
        model: { type: 'string' },
        adapter: { type: 'string' },
        prompt: { type: 'string' },
        'max-tokens': { type: 'string' },
        temperature: { type: 'string' },
        'top-p': { type: 'string' },
        seed: { type: 'string' },
        layout: { type: 'string' },
        quant: { type: 'string', default: 'none' },
        tokenizer: { type: 'string' },
        revision: { type: 'string' },
        'stream-layers': { type: 'boolean', default: false },
        'cache-dir': { type: 'string' },
        'no-cache': { type: 'boolean', default: false },
        'gpu-memory': { type: 'string' },
      }, false, { valueFlags: VALUE_FLAGS, emptyAllowed: ['prompt'] });
      if (!values.model) throw new UsageError('--model is required');
      // Required, but it may be empty (continue <s> alone), as on the page: src/config/generation.ts.
      if (values.prompt === undefined) throw new UsageError('--prompt is required (--prompt "" continues <s> alone)');
      const maxNewTokens = generationFlag(values['max-tokens'], '--max-tokens', 'maxNewTokens', 64);
      const temperature = generationFlag(values.temperature, '--temperature', 'temperature', 0);
      const topP = generationFlag(values['top-p'], '--top-p', 'topP', 1);
      const seed = generationFlag(values.seed, '--seed', 'seed', 0);
      const layout = values.layout as Layout | undefined;
      if (layout !== undefined && !LAYOUTS.includes(layout)) throw new UsageError(`--layout must be one of ${LAYOUTS.join(', ')}, got ${quote(values.layout)}`);
      // Greedy draws nothing: said, as transformers' generate() says it, not left to look like a seed that changes nothing.
      const unused = temperature === 0 ? (['top-p', 'seed'] as const).filter((f) => values[f] !== undefined).map((f) => `--${f}`) : [];
      if (unused.length) io.err(`note: ${unused.join(' and ')} only change${unused.length > 1 ? '' : 's'} sampled text: at --temperature 0 (the default) each token is the most likely one, so ${unused.length > 1 ? 'they are' : 'it is'} not used; give --temperature above 0 to sample`);
      // Train's and plan's flag, parsed by the same function: the same values taken, the same refused in the same words.
      const gpuMemoryGiven = parseGpuMemoryFlag(values['gpu-memory']);
      const quantization = values.quant as Quantization;
      if (!QUANTIZATIONS.includes(quantization)) throw new UsageError(`--quant must be one of ${QUANTIZATIONS.join(', ')}, got ${quote(values.quant)}`);
      if (!isRemoteModelSpec(values.model)) checkDirectory(values.model, '--model');
      // The cache folder before anything is loaded: a file there was found when the weights' write failed, after the load.
      const cacheDir = values['cache-dir'] ?? defaultCacheDir();
      if (!values['no-cache']) await checkCacheFolder(cacheDir, { given: values['cache-dir'] !== undefined, noCacheFlag: true });
      const adapter = values.adapter ? await adapterInput(values.adapter) : null;
      if (adapter?.note) io.err(`note: ${adapter.note}`);
      // The checkpoint's config and the adapter are read before the GPU is asked for: a wrong zip or an adapter for
      // another model is one line at once, not after the weights are loaded.
      const spec = modelSpec(values.model, { token: process.env.HF_TOKEN || undefined, revision: values.revision, cacheDir: values['no-cache'] ? null : cacheDir, onRetry: (r) => io.err(`note: ${retryNoteText(r)}`) });
      const ckpt = await openBaseCheckpoint(spec.files);
      // Before the GPU and the weights: a model of another vocabulary (Mistral-7B v0.3's 32768 tokens) without a
      // tokenizer of its own once loaded whole, then decoded wrong tokens or failed on an id past the tokenizer's end.
      const tokenizer = await tokenizerForModelFlag(values.tokenizer, spec.files, ckpt.config, (l) => io.err(l));
      // Laid out before the GPU: a prompt the layout refuses ([INST] written out where it is a control token) is said at once.
      const promptIds = generationPromptIds(tokenizer, values.prompt, layout, '--prompt');
      const imported = adapter ? await importAdapter(adapter.input, { where: adapter.name, base: ckpt.config }) : null;
      const otherBase = imported ? baseModelNote(imported.config.baseModel, spec.label) : null;
      if (otherBase) io.err(`note: ${otherBase}`);
      const ignored = imported ? ignoredTargetsNote(imported.config) : null;
      if (ignored) io.err(`note: the adapter: ${ignored}`);

      const { ctx, found } = await newContext();
      let lora: ReturnType<typeof uploadLora> | null = null;
      let interrupted = false;
      const onSigint = (): void => {
        interrupted = true;
      };
      // Everything after the device is made, inside the try whose finally destroys it: a load that fails (a download
      // cut, a full disk, too little memory) once left the device to the process's exit.
      try {
        if (found.note) io.err(`note: ${found.note}`);
        // The GPU's memory, which generate() checks the KV cache against before asking for it: --gpu-memory, else what
        // nvidia-smi says of an NVIDIA GPU (with its note, as train says it), else unknown and unchecked. Asked before
        // the load, so the note comes before the load's progress. With --stream-layers too: the stream's two layer
        // slots are made at the load, so generate() counts them as in use.
        let gpuMemoryBytes = gpuMemoryGiven;
        if (gpuMemoryBytes === undefined) {
          const detected = await detectMemory(ctx.report);
          if (detected) io.err(`note: ${detected.note}`);
          if (detected?.bytes) gpuMemoryBytes = detected.bytes;
        }
        // The weight cache train fills (the same entries: same files, source name and quantization): Mistral-7B from
        // the Hub is not downloaded and quantised again for every prompt.
        const cache = values['no-cache'] ? null : nodeWeightCache(cacheDir);
        const streamLayers = values['stream-layers'];
        // The load's progress on stderr (stdout is the generated text): a Mistral-7B download takes minutes.
        const onProgress = loadProgressPrinter((l) => io.err(l), spec.label, { local: spec.kind === 'directory' });
        const loaded = await loadWeightsCached(ctx, spec.files, ckpt, { quantization, source: spec.cacheSource, legacySources: [spec.label, ...spec.formerCacheSources], cache, streamLayers, onProgress });
        // A remote model's files described for a load without the network, and said when this one read them so.
        for (const n of [...(await keepOfflineCopy(spec.files)), ...loaded.notes]) io.err(`warning: ${n}`);
        const older = cache ? supersededNote(await cache.list(), spec.cacheSource, quantization, 'finetune cache prune') : null;
        if (older) io.err(`note: ${older}`);
        const weights = loaded.weights;
        lora = imported ? uploadLora(ctx, weights.dims, imported) : null;
        process.once('SIGINT', onSigint);
        let lastNote = -Infinity; // the first part is reported at once
        const r = await generate(ctx, weights, lora, promptIds, {
          ...positionLimit(ckpt.config),
          memoryBytes: gpuMemoryBytes ?? null,
          maxNewTokens,
          temperature,
          topP,
          seed,
          eosId: tokenizer.eosId,
          decode: (ids) => tokenizer.decode(ids),
          onToken: (t) => process.stdout.write(t.text),
          onPrompt: (read, total) => {
            // A long prompt takes a while (minutes on a software adapter): say how far it is, every few seconds at most.
            const now = performance.now();
            if (read < total && now - lastNote >= PROMPT_NOTE_EVERY_MS) {
              lastNote = now;
              io.err(`reading the prompt: ${formatCount(read)} of ${formatCounted(total, 'token')}`);
            }
          },
          shouldStop: () => interrupted,
        });
        process.stdout.write('\n');
        io.err(
          JSON.stringify({
            tokens: r.ids.length,
            promptTokens: r.promptTokens,
            stopReason: r.stopReason,
            prefillSeconds: r.prefillSeconds,
            tokensPerSecond: r.tokensPerSecond,
            adapter: lora !== null,
            fromCache: loaded.fromCache,
          }),
        );
        // Stopped by Ctrl-C: the shell's status for it, as train's (a script's `generate && …` must not take the
        // text cut short for the whole answer).
        return interrupted ? SIGNAL_EXIT_CODE.SIGINT : 0;
      } finally {
        process.off('SIGINT', onSigint);
        if (lora) destroyLora(ctx, lora);
        ctx.destroyDevice();
      }
    },
  };
}

export const generateCommand: Command = makeGenerateCommand();
