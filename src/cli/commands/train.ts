import { retryNoteText } from '../../model/source.ts';
import { type Quantization } from '../../core/mistral.ts';
import { formatCounted } from '../../core/units.ts';
import { existsSync, statSync } from 'node:fs';
import { readFile } from 'node:fs/promises';
import { makeFolder } from '../make-folder.ts';
import { basename, join } from 'node:path';
import { HYPERPARAM_FLAG_NAMES, HYPERPARAM_VALUE_FLAGS, hyperparamsFromArgs } from '../../config/flags.ts';
import { FIELDS } from '../../config/hyperparams.ts';
import { FinetuneError, isFinetuneError, thrownMessage } from '../../core/errors.ts';
import { checkDataChecksums, checkTokenizer } from '../../run/saved-run-check.ts';
import { isDamagedRun, isUnfinished, readSavedRun, readStoredCheckpoint, type StoredCheckpoint } from '../../run/saved-run.ts';
import type { HyperparamName, Hyperparams } from '../../config/hyperparams.ts';
import { FinetuneSession, quantizationFor, type TrainEvent } from '../../run/session.ts';
import { maxSeqLenWindowProblem } from '../../model/attention-span.ts';
import { openBaseCheckpoint } from '../../model/checkpoint.ts';
import { adapterBundle, GGUF_FILE, README_FILE } from '../../export/index.ts';
import { ADAPTER_CONFIG_FILE, ADAPTER_WEIGHTS_FILE, type LoraAdapter } from '../../model/lora-adapter.ts';
import { baseModelFlag, checkBaseModelNameFrom } from '../base-model-flag.ts';
import { parseCommandArgs, UsageError, type Command } from '../command.ts';
import { checkDirectory, checkJsonlFile, checkOutputPath } from '../input-file.ts';
import { parseKeepLayers } from '../keep-layers-flag.ts';
import { detectGpuMemory, parseGpuMemoryFlag, type GpuMemoryDetection } from '../gpu-memory.ts';
import { createNodeContext, type NodeContextOptions } from '../node-gpu.ts';
import type { GpuContext, GpuContextOptions } from '../../engine/gpu.ts';
import type { GpuAdapterInfo } from '../../engine/gpu-adapter.ts';
import { isRemoteModelSpec, modelSpec } from '../node-source.ts';
import { checkCacheFolder } from '../cache-dir.ts';
import { defaultCacheDir, nodeWeightCache } from '../node-weight-cache.ts';
import { supersededNote } from '../../run/weight-cache-prune.ts';
import { folderRunStore, removeLeftTemporaries, folderStoreFiles, writeFilesAtomic, type WriteProbe } from '../node-store.ts';
import { lockOutFolder } from '../out-lock.ts';
import { fileKernelTuningCache } from '../../run/kernel-tuning.ts';
import { onStopSignals, SIGNAL_EXIT_CODE, type StopSignal } from '../stop-signals.ts';
import { dataProgressPrinter } from '../data-progress.ts';
import { tokenizerForModelFlag } from './tokenize.ts';
import { loadProgressPrinter } from '../load-progress.ts';
import { trainDoneLine, trainProgressPrinter } from '../train-progress.ts';
import { loadRunData } from '../../data/training-data.ts';
import type { LoadedDataset } from '../../data/dataset.ts';
import { formatProblem } from '../../data/problems.ts';
import { attentionAskFlag, BASE_MATMUL_HELP, gemmAskFlag, INT8_KERNEL_HELP, KERNEL_ASK_HELP, loraAskFlag, parseBaseMatmul, parseInt8Kernel, nodeContextFlags, ROBUSTNESS_HELP, TILED_STAGES_HELP } from '../kernel-flags.ts';
import { quote } from '../../core/quote.ts';

/** How often a validation pass's progress is printed at most (its start and end always are). */
const VALIDATING_EVERY_MS = 2000;

const USAGE = `finetune train --model DIR|HUB_ID|URL --data FILE.jsonl [--validation FILE.jsonl] [--out DIR] [--resume | --overwrite]
               [--stream-layers | --gpu-memory GB] [--keep-layers N|all] [--keep-attention] [--base-matmul fp32|int8|int8-mlp]
               [--int8-kernel dp4a|subgroup-matrix]
               [--gemm auto|basic|tiled|tiled-fixed|tiled-warp|tiled-k32|tiled-warp-k32] [--attention auto|rows|tiled] [--lora-kernel auto|general|skinny] [--retune-kernels]
               [--no-robustness] [--tiled-stages 1|2] [--recover N] [--base-model NAME] [--revision REV] [--tokenizer DIR]
               [--cache-dir DIR | --no-cache] [--<hyperparameter> VALUE …]

Fine-tunes a LoRA adapter on a Mistral-architecture checkpoint (config.json + safetensors, sharded or not) with the
same engine as the page. Hyperparameters are Replicate's training inputs plus ours, with the same names and defaults
(e.g. --num_train_epochs 3 --learning_rate 2e-4 --lora_rank 16 --peft_method qlora --layout instruct); see the list
below. Prints one JSON line per event (plan, step, validating, eval, checkpoint, sample; a validation pass's progress
at most every 2 s; etaSeconds counts the validation passes still to come), and the same for a person on stderr (a
step line at most every 2 s: loss, learning rate, gradient norm, tokens/s, time left). The run's data and checkpoints live in
OUT/run (--resume continues a stopped run from there); the final adapter is written to OUT/adapter in PEFT format
(adapter_config.json, adapter_model.safetensors) and as adapter.gguf for llama.cpp/Ollama, with a README on loading
them. Ctrl-C (or SIGTERM, SIGHUP) stops at the next step (or between the batches of a validation pass, which it then
leaves unfinished), saves, and exits 130 (143, 129): 0 means the run finished. One train at a time writes an OUT folder: another is refused, naming the process that holds it.

options:
  --model M          the base model: a directory, a Hugging Face id (owner/name; HF_TOKEN is sent for gated
                     repositories) or an http(s) URL of a folder that serves Range requests (HF_TOKEN goes
                     only to huggingface.co over https)
  --data FILE        training data (JSONL: {"text"} or {"prompt","completion"} rows)
  --validation FILE  optional validation data
  --out DIR          where to write the run and the adapter (default: finetune-out)
  --resume           continue the run saved in OUT/run
  --overwrite        start a new run even though OUT holds an earlier one: an unfinished run is kept until the new
                     run saves its first checkpoint; a finished run and its adapter (OUT/adapter) are replaced, and so
                     is an adapter in OUT/adapter without a run. Without it, train refuses an OUT that holds any
  --tokenizer DIR    directory with tokenizer.model (default: the project's public/tokenizer)
  --revision REV     Hub branch, tag or commit of a Hugging Face --model (default main); every file is read at the
                     commit the first one came from, and the run and the adapter name the model owner/name@REV
  --cache-dir DIR    where quantised weights (and kernel choices, in DIR/kernels) are cached between runs
                     (default ~/.cache/finetune)
  --no-cache         neither read nor write the weight cache or the kernel choices
  --base-model NAME  the name the adapter gives its base model (base_model_name_or_path, the README, the GGUF's
                     general.name): default --model's Hub id, or the folder's name for a local model, which PEFT, vLLM
                     and Ollama cannot look up; give the Hub id there (e.g. mistralai/Mistral-7B-Instruct-v0.2).
                     Recorded with the run: a --resume without it, and export --adapter OUT/run, name it too
  --recover N        when the GPU device is lost (a driver reset), get a new one, load the model again and continue
                     from the run's last checkpoint (or start again if it had none yet), at most N times (default 2;
                     0: stop and say how to resume)
  --stream-layers    keep the model's layers in CPU memory and upload them layer by layer as the passes need them:
                     for a GPU too small for the quantised model; the same results, slower (docs/models.md)
  --gpu-memory GB    this GPU's memory, in GB as GPU makers count them (2³⁰ bytes: a card sold as 80 GB is 80; WebGPU
                     cannot tell; on an NVIDIA GPU the default is the free memory nvidia-smi reports, said in a note):
                     when the plan (finetune plan) says the run does not fit with every layer on the GPU but does with
                     the layers streamed, they are streamed, with a note; when it fits with room to spare, layers keep
                     their intermediates instead of recomputing them (faster, same numbers), as many as fit under 85 %
                     of GB
  --keep-layers N    keep the intermediates of the last N layers (or all) from the forward to the backward instead of
                     recomputing them: fewer FLOPs per step, more memory (finetune plan --keep-layers prices it);
                     default: 0, or chosen from the GPU memory (--gpu-memory, or nvidia-smi's)
  --keep-attention   the recomputed layers keep their attention outputs from the forward, so the recomputation skips
                     attention (≈ 1 GB for Mistral-7B at 2048 tokens; same numbers); default: when the GPU memory has room
  ${BASE_MATMUL_HELP}
  ${INT8_KERNEL_HELP}
  ${KERNEL_ASK_HELP}
  ${ROBUSTNESS_HELP}
  ${TILED_STAGES_HELP}

hyperparameters:
${FIELDS.filter((f) => f.type !== 'file')
  .map((f) => `  --${f.name.padEnd(24)} ${String(f.default ?? '').padEnd(14)} ${f.label}`)
  .join('\n')}`;

/** The files of an adapter that `dir` holds (what a new run's adapter would replace there); none when it does not exist. */
function adapterFilesIn(dir: string): string[] {
  return [ADAPTER_CONFIG_FILE, ADAPTER_WEIGHTS_FILE, GGUF_FILE].filter((f) => existsSync(join(dir, f)));
}

/** At most this many of a file's warnings are printed; the rest are counted, and `finetune validate` lists them. */
const DATA_WARNINGS_SHOWN = 10;

/** Whether two paths name one file (the same path, or links to it). */
function sameFile(a: string, b: string): boolean {
  try {
    const [x, y] = [statSync(a), statSync(b)];
    return x.dev === y.dev && x.ino === y.ino;
  } catch {
    return false;
  }
}

/**
 * A file's bytes in pieces of 1 MiB for the data's reader: Node's Blob.stream() hands a file read whole over as one
 * chunk, so the reader's progress (and a stop signal's check) came only at its end.
 */
async function* blobChunks(b: Blob, size = 2 ** 20): AsyncGenerator<Uint8Array> {
  for (let at = 0; at < b.size; at += size) yield new Uint8Array(await b.slice(at, at + size).arrayBuffer());
}

/** Thrown from the data's progress callback when a stop signal came while it was read: not an error of the data. */
const STOPPED_READING = new Error('stopped by a signal while the data was read');

/**
 * The data's warnings, the first DATA_WARNINGS_SHOWN of them, and the validate command that lists them all as this run
 * reads the file (`readAs`: its --layout, --max_seq_len and --tokenizer: validate's defaults read another file than the
 * run's, and told of 60 warnings, it found none).
 */
function printDataWarnings(io: { err(line: string): void }, what: string, file: string, d: LoadedDataset, readAs: string): void {
  const warnings = d.problems.shown.filter((p) => p.severity !== 'error');
  if (warnings.length === 0) return;
  const total = d.problems.warningCount + d.problems.noteCount;
  io.err(`warning: ${what} has ${formatCounted(d.problems.warningCount, 'warning')}${d.problems.noteCount ? ` and ${formatCounted(d.problems.noteCount, 'note')}` : ''}:`);
  for (const p of warnings.slice(0, DATA_WARNINGS_SHOWN)) io.err(`  ${formatProblem(p)}`);
  if (total > DATA_WARNINGS_SHOWN) io.err(`  … and ${formatCounted(total - DATA_WARNINGS_SHOWN, 'more', 'more')} (finetune validate ${quote(file)} ${readAs} lists them)`);
}

/**
 * What --resume is given beside it must be what the saved run was trained with: the same data files (byte for byte) and
 * the same value for every hyperparameter flag given. Anything else is refused, naming it, before the GPU is touched.
 */
async function checkResumeArgs(
  stored: StoredCheckpoint,
  o: { data?: string; validation?: string; hp: Hyperparams; given: readonly HyperparamName[]; runDir: string },
): Promise<void> {
  const other: string[] = [];
  const sameBytes = async (path: string, bytes: Uint8Array | null): Promise<boolean> => bytes !== null && Buffer.from(await readFile(path)).equals(Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength));
  // The paths given, the record's file names and a text hyperparameter (validation_prompt) quoted, as names are
  // elsewhere: a line break in one started a line of its own, and a bidi control reordered the sentence.
  const runDir = quote(o.runDir);
  if (o.data && !(await sameBytes(o.data, stored.data.train))) other.push(`--data ${quote(o.data)} (the run trains on ${quote(stored.run.trainName)} as stored in ${runDir})`);
  if (o.validation && !(await sameBytes(o.validation, stored.data.validation))) {
    other.push(`--validation ${quote(o.validation)} (${stored.run.validationName ? `the run validates on ${quote(stored.run.validationName)} as stored in ${runDir}` : 'the run has no validation file'})`);
  }
  const shown = (v: unknown): string => (v === undefined || v === null ? 'none' : typeof v === 'string' ? quote(v) : String(v));
  for (const name of o.given) {
    const now = o.hp[name];
    const then = stored.run.hp[name];
    if (JSON.stringify(now) !== JSON.stringify(then)) other.push(`--${name} ${shown(now)} (the run's: ${shown(then)})`);
  }
  if (other.length) {
    throw new FinetuneError('bad-input', `--resume continues the saved run with its own data and hyperparameters, and these differ: ${other.join('; ')}. Drop them to resume it, or start a new run over it with --overwrite`);
  }
}

/**
 * `finetune train`; `newContext` makes each attempt's GPU context (tests hand in one whose device they can lose) and
 * `detectMemory` finds the GPU's memory when --gpu-memory is not given (tests hand in what a machine would say).
 */
export function makeTrainCommand(
  newContext: (o: NodeContextOptions) => Promise<{ ctx: GpuContext; found: { note?: string } }> = createNodeContext,
  detectMemory: (adapter: GpuAdapterInfo) => Promise<GpuMemoryDetection | null> = detectGpuMemory,
  /** Called before each step of a run-store write (tests fail a checkpoint there). */
  storeProbe?: WriteProbe,
): Command {
  return {
    name: 'train',
    valueFlags: HYPERPARAM_VALUE_FLAGS,
    summary: 'fine-tune a LoRA adapter on a local checkpoint with Replicate-named hyperparameters (JSON line per event)',
    usage: USAGE,
    async run(args, io) {
      const { hp, rest, warnings, given } = hyperparamsFromArgs(args);
      for (const w of warnings) io.err(`warning: ${w}`);
      const { values } = parseCommandArgs(rest, {
        model: { type: 'string' },
        data: { type: 'string' },
        validation: { type: 'string' },
        out: { type: 'string', default: 'finetune-out' },
        resume: { type: 'boolean', default: false },
        overwrite: { type: 'boolean', default: false },
        tokenizer: { type: 'string' },
        revision: { type: 'string' },
        'cache-dir': { type: 'string' },
        'no-cache': { type: 'boolean', default: false },
        'stream-layers': { type: 'boolean', default: false },
        'no-robustness': { type: 'boolean', default: false },
        'tiled-stages': { type: 'string' },
        'gpu-memory': { type: 'string' },
        'keep-layers': { type: 'string' },
        'keep-attention': { type: 'boolean' },
        'base-matmul': { type: 'string' },
        'int8-kernel': { type: 'string' },
        gemm: { type: 'string' },
        attention: { type: 'string' },
        'lora-kernel': { type: 'string' },
        'retune-kernels': { type: 'boolean', default: false },
        recover: { type: 'string' },
        'base-model': { type: 'string' },
      }, false, { otherFlags: HYPERPARAM_FLAG_NAMES });
      if (!values.model) throw new UsageError('--model is required');
      const baseModel = baseModelFlag(values['base-model']);
      const baseMatmul = parseBaseMatmul(values['base-matmul']);
      const int8Kernel = parseInt8Kernel(values['int8-kernel']);
      const nodeOptions = nodeContextFlags(values);
      if (int8Kernel !== 'dp4a' && baseMatmul === 'fp32') throw new UsageError(`--int8-kernel picks the kernel of the int8 path: give --base-matmul int8 or int8-mlp too`);
      const kernels = { gemm: gemmAskFlag(values.gemm), attention: attentionAskFlag(values.attention), lora: loraAskFlag(values['lora-kernel']), retune: values['retune-kernels'] as boolean };
      const keepLayers = parseKeepLayers(values['keep-layers']);
      const gpuMemoryGiven = parseGpuMemoryFlag(values['gpu-memory']);
      if (values['stream-layers'] && gpuMemoryGiven !== undefined) throw new UsageError('--stream-layers streams the layers whatever the plan says; --gpu-memory lets the plan decide: give one of them');
      if (!values.data && !values.resume) throw new UsageError('--data is required');
      // Every named file is checked before the GPU or the model is touched: a typo costs a second, not a model load.
      if (!isRemoteModelSpec(values.model)) checkDirectory(values.model, '--model');
      if (values.data) await checkJsonlFile(values.data, '--data');
      if (values.validation) await checkJsonlFile(values.validation, '--validation');
      const out = values.out as string;
      checkOutputPath(out, '--out', 'folder');
      // The adapter is written last, into OUT/adapter: a file there was found only after every step had trained.
      const adapterDir = join(out, 'adapter');
      if (existsSync(adapterDir) && !statSync(adapterDir).isDirectory()) throw new FinetuneError('bad-input', `--out: ${quote(adapterDir)} is a file, where train writes the adapter's folder: move it away, or give --out another folder`);
      // So is the run's folder: a file there gave Node's bare ENOTDIR when the saved run was looked for.
      const runDir = join(out, 'run');
      if (existsSync(runDir) && !statSync(runDir).isDirectory()) throw new FinetuneError('bad-input', `--out: ${quote(runDir)} is a file, where train keeps the run's checkpoints: move it away, or give --out another folder`);
      if (values.resume && values.overwrite) throw new UsageError('--resume continues the saved run and --overwrite starts a new one: give one of them');
      // The cache folder too: a file there was found when the weights' write failed, after the load.
      const cacheDir = values['cache-dir'] ?? defaultCacheDir();
      if (!values['no-cache']) await checkCacheFolder(cacheDir, { given: values['cache-dir'] !== undefined, noCacheFlag: true });
      // A directory, a Hub id (HF_TOKEN is sent for gated repositories) or an http(s) URL of a folder.
      const spec = modelSpec(values.model, { token: process.env.HF_TOKEN || undefined, revision: values.revision, cacheDir: values['no-cache'] ? null : cacheDir, onRetry: (r) => io.err(`note: ${retryNoteText(r)}`) });
      // One train at a time writes OUT (src/cli/out-lock.ts): taken before the folder is read, so that of two started
      // at once the second is refused before it reads or changes anything. Freed when train ends, whichever way.
      // What the flags change, said before anything can fail. Saved with the run: a resume without the flag continues
      // the way the run was trained (the int8 numbers differ).
      // A resume says how its base products run against the saved run's (the session's note: "its numbers change from
      // here" where they differ); a new run, that a resume of it will continue so.
      if (baseMatmul !== 'fp32' && !values.resume) io.err(`note: NF4 base products in int8 (--base-matmul ${baseMatmul}, experimental, docs/int8.md); a resume continues in it`);
      if (values['no-robustness']) io.err("note: shaders compiled without Dawn's bounds clamps (--no-robustness): the same numbers, faster; docs/performance.md");
      const lock = lockOutFolder(out);
      if (lock.note) io.err(`note: ${lock.note}`);
      const releaseAtExit = (): void => lock.release(); // a second Ctrl-C ends the process with process.exit
      process.once('exit', releaseAtExit);
      let removeSignalHandlers = (): void => {};
      try {
        // The run folder is read before the GPU is touched: a resume needs a complete checkpoint, and a new run does not
        // silently take the place of an earlier one, unfinished (its checkpoint) or finished (its run and, at the new
        // run's end, the adapter in OUT/adapter: the result of the earlier run would be lost).
        // One device, session and model per attempt (below); these say where the run is for the stop signals, which
        // are handled from here on: a Ctrl-C while the data was read once killed the process at once, leaving the lock.
        let session: FinetuneSession | null = null;
        let stopSignal: StopSignal | null = null;
        let planned = false; // the run has begun (its plan event): a stop then ends it after a step
        let loading = false; // the model is loading, which a stop does not cut short
        let savedStep: number | null = null;
        // What the next attempt continues from: the saved run asked for, or this run's own checkpoint once it has one
        // (until then the folder may still hold an older run's, which must not be resumed).
        const hasCheckpoint = (): boolean => values.resume || savedStep !== null;
        // Ctrl-C, SIGTERM and SIGHUP stop after the current step and save it, so that --resume continues from there;
        // before the model's load they stop at once (the data's reading ends at its next chunk).
        removeSignalHandlers = onStopSignals(process, {
          stop: (signal) => {
            io.err(
              planned
                ? `${signal}: stopping after this step and saving it (again to abort at once)…`
                : `${signal}: stopping before the first step${loading ? ', once the model has loaded (again to abort at once)' : ' (again to abort at once)'}…`,
            );
            stopSignal = signal;
            session?.stop();
          },
          abort: (signal) => {
            // Only a checkpoint of this run (or the run asked to resume) can be resumed; before its first one there is none.
            io.err(
              hasCheckpoint()
                ? `${signal}: stopping now; the last complete checkpoint in ${quote(runDir)} is kept (continue with --resume)`
                : `${signal}: stopping now; this run had saved no checkpoint, so there is nothing of it to resume: run the same command again to start it`,
            );
            // The GPU device first: destroying it waits for the work in flight, and exiting while Dawn's threads still
            // ran it ended the process by SIGSEGV now and then (about 1 abort in 10 during a step, on SwiftShader).
            try {
              session?.ctx.device.destroy();
            } catch {
              // exiting either way
            }
            process.exit(SIGNAL_EXIT_CODE[signal]);
          },
        });
        // A stop by a signal exits with the shell's status for it (130 for Ctrl-C), after saving: a scheduler's SIGTERM
        // or a script's `train && upload` must not take a run cut short for a finished one (it exited 0).
        const exitCode = (): number => (stopSignal ? SIGNAL_EXIT_CODE[stopSignal] : 0);
        // Messages about the saved run quote its folder and what its record says (a model's or a data file's name), as
        // names are quoted elsewhere: a line break or a bidi control in one shows as an escape.
        // A run there that cannot be read is not "no run": resuming it is refused, and so is replacing it without --overwrite.
        const { run: previous, damaged } = await readSavedRun(folderRunStore(runDir), runDir).then(
          (run) => ({ run, damaged: null }),
          (e: unknown) => {
            if (isDamagedRun(e)) return { run: null, damaged: e };
            throw e;
          },
        );
        // A first checkpoint cut short (a kill before its commit) saved no run: a new run goes on over it, saying so.
        const cutShort = damaged?.details?.firstCommitCutShort === true;
        if (damaged && values.resume) {
          throw new FinetuneError('bad-input', cutShort ? `${damaged.message}: there is no run to resume; drop --resume to start one` : `${damaged.message}: it cannot be resumed; start a new run over it with --overwrite, or give --out another folder`);
        }
        if (damaged && !values.overwrite && !cutShort) throw new FinetuneError('bad-input', `${damaged.message}: a new run there would replace it at its first checkpoint; give --out another folder to keep it, or --overwrite to replace it`);
        if (damaged) io.err(`note: ${damaged.message}; ${cutShort ? 'this run' : '--overwrite: this run'} replaces it at its first checkpoint`);
        if (values.resume) {
          if (!previous) throw new FinetuneError('bad-input', `there is no saved run in ${quote(runDir)} (a run saves its first checkpoint after save_steps steps, or at its first epoch's end): drop --resume to start one, or give --out the folder of the run to continue`);
          // A checkpoint that cannot be read (a truncated state file) is said with where it is and what can be done, as a
          // record that cannot be read is.
          // Its data too, before --data is compared with it: a damaged copy in OUT/run was blamed on the --data given.
          const stored = await readStoredCheckpoint(folderRunStore(runDir))
            .then(async (s) => {
              await checkDataChecksums(s.run, s.data.train, s.data.validation);
              return s;
            })
            .catch((e: unknown) => {
              if (!isDamagedRun(e)) throw e;
              const held = adapterFilesIn(adapterDir).length > 0 ? ` (${quote(adapterDir)} holds the adapter the run wrote last)` : '';
              const cannot = e.message.includes('cannot be resumed') ? '' : ': it cannot be resumed';
              throw new FinetuneError('bad-input', `${quote(runDir)}: ${e.message}${cannot}${held}; start a new run over it with --overwrite, or give --out another folder`);
            });
          // A resume continues the run as it was trained: other data or hyperparameters given beside --resume would be
          // ignored, and a user who meant them would never know (they once were, without a word). The same ones, as
          // when the first command is run again with --resume added, are fine.
          await checkResumeArgs(stored, { data: values.data, validation: values.validation, hp, given, runDir });
          // A finished run resumed trains nothing: said at once (its summary at the end repeats the run's own time).
          if (!isUnfinished(previous)) io.err(`note: the run saved in ${quote(runDir)} had finished (${formatCounted(previous.step, 'step')}): --resume trains nothing and writes its adapter again`);
          // The run's model, asked before a load that can take minutes (Mistral-7B) only to be refused after it.
          if (spec.label !== previous.modelSource) {
            throw new FinetuneError('bad-input', `the run saved in ${quote(runDir)} was trained on the model ${quote(previous.modelSource)}; --model ${quote(values.model)} is ${quote(spec.label)}: give the run's model to resume it`);
          }
        } else if (previous && isUnfinished(previous)) {
          const which = `${quote(runDir)} holds an unfinished run (${quote(previous.trainName)}, step ${previous.step} of ${previous.totalSteps})`;
          if (!values.overwrite) throw new FinetuneError('bad-input', `${which}: continue it with --resume, or start a new run over it with --overwrite`);
          io.err(`note: ${which}; it is kept until this run saves its first checkpoint`);
        } else if (previous) {
          const its = existsSync(adapterDir) ? ` and its adapter (${quote(adapterDir)})` : '';
          const which = `${quote(out)} holds a finished run (${quote(previous.trainName)}, ${formatCounted(previous.step, 'step')})${its}`;
          if (!values.overwrite) throw new FinetuneError('bad-input', `${which}: give --out another folder to keep it, or --overwrite to replace it`);
          io.err(`note: ${which}; --overwrite: this run replaces it (the run with its first checkpoint, the adapter at its end)`);
        } else if (!values.resume && !damaged) {
          // No run, but an adapter (one exported here, or a run's whose OUT/run was removed): the new run's replaces it.
          const held = adapterFilesIn(adapterDir);
          // A README.md without an adapter is a person's, not an earlier export's: the run's would replace it.
          if (held.length === 0 && existsSync(join(adapterDir, README_FILE))) {
            const which = `${quote(adapterDir)} holds a ${README_FILE} and no adapter`;
            if (!values.overwrite) throw new FinetuneError('bad-input', `${which}: this run would replace it with its adapter's at its end; give --out another folder to keep it, or --overwrite to replace it`);
            io.err(`note: ${which}; --overwrite: this run replaces it at its end`);
          }
          if (held.length > 0) {
            const which = `${quote(adapterDir)} holds an adapter (${held.join(', ')})`;
            if (!values.overwrite) throw new FinetuneError('bad-input', `${which} that this run would replace at its end: give --out another folder to keep it, or --overwrite to replace it`);
            io.err(`note: ${which}; --overwrite: this run replaces it at its end`);
          }
        }
        // Without --base-model the adapter names its base model by the model's name (a folder's, from the file system),
        // or, resumed, by the name the run was given (its record's): checked now, as a typed one is, not found wanting
        // when the adapter is written at the run's end.
        if (baseModel === undefined && !(values.resume && typeof previous?.baseModelName === 'string')) {
          const folder = spec.kind === 'directory';
          checkBaseModelNameFrom(spec.label, `--model ${quote(values.model)}: its ${folder ? "folder's " : ''}name ${quote(spec.label)} is the base model's name the adapter gives (base_model_name_or_path) without --base-model`, folder ? 'rename the folder' : undefined);
        }
        const recover = values.recover === undefined ? 2 : Number(values.recover);
        if (!(Number.isInteger(recover) && recover >= 0)) throw new UsageError(`--recover must be a whole number ≥ 0, got ${quote(values.recover)}`);
        // The model's config.json and safetensors headers before the data (a large dataset takes a while to read and
        // tokenise) and the GPU: a folder without config.json or weights, a Hub id that does not exist, a model of
        // another vocabulary without a tokenizer of its own is said at once. The load below uses what was opened here.
        const checkpoint = await openBaseCheckpoint(spec.files);
        // The layers to keep are counted against the model's, known from its config.json: said now, not after its load.
        if (typeof keepLayers === 'number' && keepLayers > checkpoint.config.layers) {
          throw new UsageError(`--keep-layers ${keepLayers}: this model has ${formatCounted(checkpoint.config.layers, 'layer')}: give a number from 0 to ${checkpoint.config.layers}, or all`);
        }
        const tokenizer = await tokenizerForModelFlag(values.tokenizer, spec.files, checkpoint.config, (l) => io.err(l));
        // Another tokenizer than the run's (a --tokenizer left out, say) is refused before the model's load.
        const tokenizerNote = values.resume && previous ? checkTokenizer(previous, tokenizer.identity, "Resume with --tokenizer naming the run's tokenizer.model (no --tokenizer for the default one), or start a new run over it with --overwrite") : null;
        if (tokenizerNote) io.err(`note: ${tokenizerNote}`);
        const runHp = values.resume && previous ? previous.hp : hp;
        // A sliding window shorter than max_seq_len (Mistral-7B v0.1 and its fine-tunes) is said before the model's load.
        const windowWhy = maxSeqLenWindowProblem(checkpoint.config, runHp.max_seq_len);
        if (windowWhy) throw new FinetuneError('bad-input', windowWhy);
        const askedBase = values['base-matmul'] === undefined ? undefined : baseMatmul;
        const quantization: Quantization = values.resume && previous ? previous.quantization : quantizationFor(hp);
        const print = (o: unknown): void => io.out(JSON.stringify(o));
        const read = async (p: string): Promise<Blob> => new Blob([new Uint8Array(await readFile(p))]);
        const data = values.resume
          ? null
          : {
              train: await read(values.data as string),
              trainName: basename(values.data as string),
              validation: values.validation ? await read(values.validation) : null,
              validationName: values.validation ? basename(values.validation) : null,
            };
        // The data and its plan are checked before the GPU and the model are touched (a model load can take minutes: the
        // cache, or Mistral-7B's download): a bad row or a plan that cannot be made is refused at once, with its lines.
        // Named in messages as given, with the flag: two files of one name (data/train.jsonl, val/train.jsonl) were told
        // apart by nothing. The run records the files' own names (data.trainName).
        const dataWhat = `--data ${quote(values.data ?? '')}`;
        const validationWhat = `--validation ${quote(values.validation ?? '')}`;
        if (data?.validation && !hp.run_validation) io.err(`note: ${validationWhat} is not read: run_validation is false`);
        // The same file twice validates on rows the run trains on: a loss that says nothing of rows it has not seen.
        if (values.data && values.validation && sameFile(values.data, values.validation)) {
          io.err(`warning: ${validationWhat} is the training file: the validation loss is measured on rows the run trains on; leave --validation out to hold rows out of the training file instead`);
        }
        // A large file takes a while to read and tokenise (about 5 MB/s on two cores): said as the model's load is, and
        // a stop signal ends it at the next chunk.
        const readData = async (d: NonNullable<typeof data>) => {
          const printers = { train: dataProgressPrinter((l) => io.err(l), dataWhat, d.train.size), validation: dataProgressPrinter((l) => io.err(l), validationWhat, d.validation?.size ?? 0) };
          const sources = { train: blobChunks(d.train), validation: d.validation && blobChunks(d.validation), trainName: dataWhat, validationName: validationWhat };
          const onProgress = (file: 'train' | 'validation', bytes: number): void => {
            if (stopSignal) throw STOPPED_READING;
            printers[file](bytes);
          };
          // The rows' warnings (truncated at max_seq_len, an unknown field ignored…), as validate prints them: a run once
          // trained on rows cut to 8 tokens without a word. Said as each file is read, before the plan: a plan that
          // refuses the data for what they name ("the dataset's warnings name them") once came without them.
          const readAs = `--layout ${hp.layout} --max_seq_len ${hp.max_seq_len}${values.tokenizer ? ` --tokenizer ${quote(values.tokenizer)}` : ''}`;
          const onLoaded = (file: 'train' | 'validation', loaded: LoadedDataset): void => {
            if (file === 'train') printDataWarnings(io, dataWhat, values.data as string, loaded, readAs);
            else if (values.validation) printDataWarnings(io, validationWhat, values.validation, loaded, readAs);
          };
          return loadRunData(sources, tokenizer, hp, { onProgress, onLoaded }).catch((e: unknown) => {
            if (e === STOPPED_READING) return null;
            throw e;
          });
        };
        const loaded = data ? await readData(data) : null;
        if (stopSignal) {
          io.err(`note: stopped before the model was loaded: nothing was trained${previous ? `, and ${quote(runDir)} was left as it was` : ''}`);
          return exitCode();
        }
        const prepared = loaded?.data ?? null;
        // The GPU's memory, for the plan (streaming) and the kept layers: --gpu-memory, else what nvidia-smi says of an
        // NVIDIA GPU (asked once, on the first device), else unknown.
        let gpuMemoryBytes = gpuMemoryGiven;
        const keptLayersAsked = (layers: number): number | undefined => (keepLayers === 'all' ? layers : keepLayers);
        const keptAttention = values['keep-attention'] ? true : undefined;

        // One device, session and model per attempt: after a lost device (a driver reset, an Xid on a server) a new one
        // is made, the model loaded again (from the weight cache), and the run continues from its last checkpoint — or,
        // lost before this run saved one (while its kernels were measured, say), starts again. --recover attempts at most.
        // Made once: every attempt reads and writes the same caches.
        const weightCache = values['no-cache'] ? null : nodeWeightCache(cacheDir);
        const kernelDir = join(cacheDir, 'kernels');
        const kernelCache = values['no-cache'] ? null : fileKernelTuningCache(folderStoreFiles(kernelDir), kernelDir);
        // PEFT files (PEFT, vLLM, Ollama) and a GGUF LoRA (llama.cpp, Ollama) side by side, with a README on loading them.
        const writeAdapter = async (s: FinetuneSession): Promise<{ adapter: LoraAdapter; dir: string }> => {
          // Named by --base-model, or the run's record's name on a resume without it (the session names the adapter so).
          const adapter = await s.adapterNow();
          const files = adapterBundle(adapter, s.baseConfig, { name: s.baseModelName, training: s.trainingCard() });
          const dir = join(out, 'adapter');
          await makeFolder(dir);
          // What a kill during an earlier write of the set left (tens of MB of a GGUF): OUT is this run's, under its lock.
          await removeLeftTemporaries(dir, Object.keys(files));
          // As one set, each file through a temporary one renamed over it: a full disk keeps the earlier set whole (an
          // --overwrite run's adapter); a kill between the renames leaves no adapter_config.json, never one adapter's
          // config beside another's weights.
          await writeFilesAtomic(dir, files, undefined, ADAPTER_CONFIG_FILE);
          return { adapter, dir };
        };
        let validatingPrinted = 0;
        // The same events for a person, on stderr (step lines at most every 2 s).
        const say = trainProgressPrinter((l) => io.err(l));
        const onEvent = (e: TrainEvent): void => {
          // A signal that came before the run had started: stop it as soon as it exists.
          if (e.type === 'plan') planned = true;
          if (e.type === 'plan' && stopSignal) session?.stop();
          if (e.type === 'checkpoint') savedStep = e.step;
          // What the plan says about the data (e.g. a validation split larger than what is left to train on).
          if (e.type === 'plan') for (const n of e.stats.notices ?? []) io.err(`note: ${n}`);
          if (e.type === 'validating') {
            // Reported per forward pass: printed as it starts and ends, and at most every VALIDATING_EVERY_MS between.
            const t = Date.now();
            if (e.done > 0 && e.done < e.passes && t - validatingPrinted < VALIDATING_EVERY_MS) return;
            validatingPrinted = t;
          }
          print(e);
          say(e);
        };
        for (let attempt = 0; ; attempt++) {
          const { ctx, found } = await newContext({ baseMatmul, int8Kernel, ...nodeOptions });
          if (attempt === 0 && found.note) io.err(`note: ${found.note}`);
          if (attempt === 0 && gpuMemoryBytes === undefined && !values['stream-layers']) {
            const detected = await detectMemory(ctx.report);
            if (detected) io.err(`note: ${detected.note}`);
            if (detected?.bytes) gpuMemoryBytes = detected.bytes;
          }
          const s = new FinetuneSession(ctx, tokenizer, folderRunStore(runDir, storeProbe));
          session = s;
          if (gpuMemoryBytes !== undefined) s.gpuMemoryBytes = gpuMemoryBytes;
          // The quantised weights are cached: the next run of the same model loads them without downloading or quantising.
          s.weightCache = weightCache;
          // So are the kernel choices measured on this GPU (src/run/kernel-tuning.ts), in a folder of their own.
          s.kernelCache = kernelCache;
          // Streamed layers when asked for, or when the plan for this GPU's memory says only streaming fits.
          const limits = { maxBufferSize: ctx.device.limits.maxBufferSize, maxStorageBufferBindingSize: ctx.device.limits.maxStorageBufferBindingSize };
          const streamLayers = values['stream-layers'] ? true : gpuMemoryBytes !== undefined ? { hp: runHp, gpu: { ...limits, memoryBytes: gpuMemoryBytes } } : false;
          let result;
          try {
            loading = true;
            // The load's progress on stderr, where the notes go (stdout stays one JSON event a line).
            const onProgress = loadProgressPrinter((l) => io.err(l), spec.label, { local: spec.kind === 'directory' });
            const model = await s.loadModel(spec.files, spec.label, quantization, onProgress, { streamLayers, checkpoint, cacheSource: spec.cacheSource, formerCacheSources: spec.formerCacheSources }).finally(() => (loading = false));
            if (attempt === 0) {
              for (const n of model.notices ?? []) io.err(`note: ${n}`);
              // On stderr too, where people look (a rebuilt cache entry was once only inside the model line's JSON).
              for (const w of model.warnings) io.err(`warning: ${w}`);
              const older = weightCache ? supersededNote(await weightCache.list(), spec.cacheSource, quantization, 'finetune cache prune') : null;
              if (older) io.err(`note: ${older}`);
              print({ type: 'model', ...model });
            }
            // --base-model is recorded with the run: a resume without it, and export --adapter OUT/run, name it too.
            const options = { keptLayers: keptLayersAsked(model.layers), keptAttention, kernels, baseMatmul: askedBase, replaceDamaged: values.overwrite as boolean, ...(baseModel !== undefined ? { baseModelName: baseModel } : {}) };
            result = await (data && !hasCheckpoint() ? s.train(hp, data, onEvent, { ...options, prepared: prepared ?? undefined }) : s.train({}, null, onEvent, { ...options, resume: true }));
          } catch (e) {
            // A checkpoint that could not be written (a full disk): the adapter trained so far is still written, then
            // the error says what is kept and how to go on.
            if (isFinetuneError(e) && e.details?.checkpointFailed) {
              const how = Number(e.details.lastSaved) > 0 ? ' (finetune train with --model and --out as before and --resume)' : '';
              await writeAdapter(s).then(
                ({ dir }) => io.err(`note: the adapter trained up to step ${String(e.details?.step)} was written to ${quote(dir)} all the same`),
                (w: unknown) => io.err(`note: the adapter trained so far could not be written either: ${thrownMessage(w)}`),
              );
              throw new FinetuneError(e.kind, `${e.message}${how}`, e.details);
            }
            if (!isFinetuneError(e, 'device-lost')) throw e;
            const lostWhileMeasuring = typeof e.details?.kernelsLost === 'string';
            if (attempt >= recover || stopSignal) {
              // Lost while the kernels were measured (before the first step): nothing to resume; the message says what
              // the next run does.
              if (lostWhileMeasuring && !hasCheckpoint()) throw new FinetuneError('device-lost', `${e.message}: run the same command again`, e.details);
              throw new FinetuneError('device-lost', `${e.message}. The last checkpoint in ${quote(runDir)} is kept: run finetune train again with --model and --out as before and --resume to continue`);
            }
            const from = hasCheckpoint() ? `continuing from the checkpoint${savedStep !== null ? ` at step ${savedStep}` : ''}` : 'starting the run again (it had no checkpoint yet)';
            print({ type: 'device-lost', attempt: attempt + 1, of: recover, message: e.message, resumeAt: savedStep });
            io.err(`${e.message}: getting a new GPU device and ${from} (attempt ${attempt + 1} of ${recover})`);
            continue;
          }
          // Stopped before its first step: nothing was trained, and OUT/adapter (a finished run's, maybe, kept with
          // its run until this one's first checkpoint) is left as it is. It was once replaced by an untrained adapter.
          if (result.steps === 0) {
            io.err(`note: stopped before the first step: nothing was trained, and ${quote(join(out, 'adapter'))} was left as it was`);
            print({ type: 'done', ...result, adapter: null });
            io.err(trainDoneLine(result, null));
            ctx.destroyDevice();
            return exitCode();
          }
          // The run's last state is saved by now: a failed write of the adapter (a full disk) says so, and how to get it.
          const { adapter, dir } = await writeAdapter(s).catch((e: unknown) => {
            const how = result.stopped ? 'run the same command with --resume: it continues the run and writes the adapter at its end' : 'run the same command with --resume: it writes the adapter again, training nothing';
            throw new FinetuneError('bad-input', `${thrownMessage(e)}. The run itself is saved in ${quote(runDir)} (step ${result.steps}): ${(e as { code?: unknown }).code === 'ENOSPC' ? 'once there is room' : 'once the folder can be written'}, ${how}`, { code: (e as { code?: unknown }).code });
          });
          // A local folder's name is no Hub id: PEFT's AutoPeftModelForCausalLM, vLLM and Ollama could not find the base.
          if (baseModel === undefined && adapter.config.baseModel === spec.label && !isRemoteModelSpec(values.model as string)) {
            io.err(`note: the adapter names its base model ${quote(adapter.config.baseModel)}, the model folder's name, which PEFT, vLLM and Ollama look up on the Hugging Face Hub: give train --base-model owner/name, or write a renamed copy with finetune export --adapter ${quote(dir)} --format peft --out DIR --base-model owner/name`);
          }
          if (result.stopped) io.err(`note: stopped after step ${result.steps}, saved in ${quote(runDir)}; the adapter so far is in ${quote(dir)}. Continue with the same command and --resume`);
          print({ type: 'done', ...result, adapter: dir });
          io.err(trainDoneLine(result, dir));
          ctx.destroyDevice();
          return exitCode();
        }
      } finally {
        removeSignalHandlers();
        process.off('exit', releaseAtExit);
        lock.release();
      }
    },
  };
}

export const trainCommand: Command = makeTrainCommand();
