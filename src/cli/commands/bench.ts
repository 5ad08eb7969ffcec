import { benchCacheLoad, benchQuantize } from '../../bench/load.ts';
import { benchAttention } from '../../bench/attention.ts';
import { benchDispatch, benchRecording } from '../../bench/dispatch.ts';
import { benchKernels } from '../../bench/kernels.ts';
import { benchLayer, MISTRAL_7B_LAYER, randomLayer, syntheticConfig } from '../../bench/layer.ts';
import { benchProfile } from '../../bench/profile.ts';
import { kernelCandidates, kernelChoice, kernelStages, kernelsOf, measureKernels, pickKernels, sameKernels, stagedTrials } from '../../run/kernel-tuning.ts';
import { PROJECTIONS } from '../../core/mistral.ts';
import { destroyMistralWeights, loadMistralWeights, moveLayersToHost, type MistralWeights } from '../../engine/mistral/weights.ts';
import { benchMatmul, projectionShapes, squareShapes, type MatmulShape } from '../../bench/matmul.ts';
import { benchSweep } from '../../bench/matmul-sweep.ts';
import { sweepGrid } from '../../bench/matmul-sweep-wgsl.ts';
import type { GemmKernel } from '../../engine/gpu.ts';
import { benchModel, configOf, MISTRAL_7B, randomMistral, timeTrainSteps, type KeptLayersChoice } from '../../bench/model.ts';
import { calibrate, calibrateValidation, forwardShare, trainingPassUploadSeconds } from '../../run/calibrate.ts';
import { parseHyperparams, parseTargetModules, targetModules } from '../../config/index.ts';
import { chooseKeptLayers } from '../../run/kept-layers.ts';
import { parseKeepLayers } from '../keep-layers-flag.ts';
import { benchStream } from '../../bench/stream.ts';
import { benchHead } from '../../bench/head.ts';
import { benchPadding, syntheticRows } from '../../bench/padding.ts';
import { benchValidation } from '../../bench/validation.ts';
import { TrainingData } from '../../data/batches.ts';
import { loadRunData } from '../../data/training-data.ts';
import { openBaseCheckpoint } from '../../model/checkpoint.ts';
import { createAdapter } from '../../model/lora-adapter.ts';
import type { MistralConfig } from '../../model/config.ts';
import { mulberry32 } from '../../engine/reference/common.ts';
import { QUANTIZATIONS, type Quantization } from '../../core/mistral.ts';
import { benchNf4, projectionNf4Shapes, type Nf4BenchShape } from '../../bench/nf4.ts';
import { setFlagsFromString } from 'node:v8';
import { runInNewContext } from 'node:vm';
import { benchData } from '../../bench/data.ts';
import { clampsSummary, compileHotPipelines } from '../../bench/clamps.ts';
import { auditClamps } from '../spirv-audit.ts';
import { writeSync } from 'node:fs';
import { benchGenerate } from '../../bench/generate.ts';
import { benchInt8 } from '../../bench/int8.ts';
import { int8LossAB } from '../../run/int8-ab.ts';
import { FinetuneSession, memoryRunStore } from '../../run/session.ts';
import { attentionKernelFlag, BASE_MATMUL_HELP, gemmKernelFlag, INT8_KERNEL_HELP, loraKernelFlag, parseBaseMatmul, parseInt8Kernel, nodeContextFlags, ROBUSTNESS_HELP, TILED_STAGES_HELP } from '../kernel-flags.ts';
import { checkReadableFile } from '../input-file.ts';
import { modelSpec, type ModelSpec } from '../node-source.ts';
import { readFile } from 'node:fs/promises';
import { basename, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { FinetuneError, thrownMessage } from '../../core/errors.ts';
import { parseCommandArgs, UsageError, type Command } from '../command.ts';
import { parseGpuMemoryFlag } from '../gpu-memory.ts';
import { loadTokenizerFrom } from './tokenize.ts';
import { createNodeContext } from '../node-gpu.ts';
import { quote } from '../../core/quote.ts';

/** What `bench matmul` compares unless --kernels names others (the warp map and the K step of 32 only when named). */
const DEFAULT_MATMUL_KERNELS: readonly GemmKernel[] = ['basic', 'tiled', 'tiled-fixed'];

const WHAT = ['matmul', 'sweep', 'nf4', 'attention', 'kernels', 'layer', 'profile', 'dispatch', 'model', 'stream', 'generate', 'data', 'load', 'int8', 'int8-ab', 'tune', 'estimate', 'clamps', 'spirv', 'padding', 'validation', 'head', 'all'] as const;
type What = (typeof WHAT)[number];

/** Shapes that finish in seconds on SwiftShader (CPU), with Mistral's proportions. */
const SMALL_LAYER = { C: 256, I: 896, nH: 8, nKV: 2, hd: 32, theta: 1e6, eps: 1e-5 };

const USAGE = `finetune bench <what> [options]

what:
  matmul     GFLOP/s of each matmul variant (every transpose, f32 and bf16 B) on each GEMM kernel: the basic one,
             the register-tiled one (both block widths) and the tiled one with sizes compiled in, at square sizes
             and Mistral-7B's projection shapes; each with its ratio to the same kernel's plain product and to the
             basic kernel, and the tiled outputs' largest difference from the basic kernel's
  sweep      a grid of plain fp32 matmul designs generated from their parameters (block, K step, thread tile, thread
             map, unrolled steps, block order; src/bench/matmul-sweep-wgsl.ts), each beside the production tiled
             kernel on the same inputs: GFLOP/s, vsTiled, and its output's difference from the tiled kernel's (a
             config that disagrees is marked agrees: false); at --sizes (default 4096, 256 on SwiftShader), --shapes,
             and with --tokens Mistral-7B's projection shapes; shapes that are not whole blocks are skipped, said so
             (not part of "all")
  nf4        fused NF4 matmuls (forward, input gradient; plain and double-quant; each on the basic and the tiled
             kernel) at Mistral-7B projection shapes, and each dequantised first, then the plain GEMM (deq-first)
  attention  causal GQA attention forward/backward at Mistral-7B's head layout (32 heads, 8 KV heads, head_dim 128);
             the row-split forward and backward (default) and the tiled ones (forward-tiled, backward-tiled; vsRows = the
             tiled rate ÷ the row-split one's, same run); with subgroups, forward-tiled-without-subgroups too
  kernels    RMSNorm, RoPE, SwiGLU, embedding (GB/s), AdamW over the whole adapter, lm_head + cross-entropy (GFLOP/s)
  layer      one Mistral-7B layer (random NF4 weights made on the GPU), LoRA r=8 on all seven projections:
             forward + recomputation + backward; tokens/s, utilisation of the matmul-bound ceiling, peak memory
  dispatch   what recording the GPU work costs the host, bind groups reused between dispatches (the default) and made
             per dispatch, same run: host µs per dispatch of each and the speedup, for 2,000 small dispatches recorded
             alone (record-only), then for one layer's training work recorded and submitted again and again, with its
             wall time including the GPU's work (the demo model's layer, and on a GPU Mistral-7B's too)
  profile    where one layer's training work (as layer runs it) spends its GPU time, from timestamps around each
             dispatch (needs the adapter's timestamp-query feature): a line per kernel variant (its part: base
             products, attention, LoRA products, other; dispatches, ms, share), then a summary by part beside the
             layer's unprofiled wall-clock time (not part of "all")
  model      whole QLoRA training steps of a Mistral-7B-shaped model (32 random NF4 layers made on the GPU, bf16
             embeddings and lm_head): end-to-end tokens/s and peak GPU memory by category (not part of "all")
  stream     layer streaming: the same training steps with the layers resident, then streamed from CPU memory into two
             GPU slots, same weights, same run: tokens/s of each, peak GPU memory, bytes moved per step, whether the
             losses are bit-identical (Mistral-7B's shape on a GPU; 4 small layers on SwiftShader; not part of "all")
  generate   generation tokens/s with the KV cache next to recomputing the whole sequence per token, same run, same
             random model (NF4) with LoRA r=8: Mistral-7B's shape on a GPU (16-token prompt, 32 new tokens), a 2-layer
             small model on SwiftShader (8 + 8)
  data       CPU only: loading a synthetic JSONL for training (read, tokenise, split, pack): peak and retained heap
             and RSS against the file's size
  load       what a model load runs at once its bytes are here: NF4 quantisation on the GPU (GB/s of bf16 in, a
             Mistral-7B MLP projection, plain and double-quant) and loading from the weight cache (parts hashed and
             uploaded from memory, 4 random Mistral-7B layers + embeddings; GB/s)
  int8       the experimental int8 base path (docs/int8.md) against fp32, same run: the plain fp32 product, the raw
             int8 GEMM, the quantiser, and the NF4 forward and input gradient in fp32 and in int8 (quantisation
             included), each int8 line with its ratio to fp32 and its output's relative error (4096³ and Mistral-7B's
             projection shapes on a GPU; small shapes on SwiftShader; not part of "all")
  int8-ab    the int8 path's accuracy on a real model: trains --model on --data twice from the same seed, fp32 then
             int8 base products (--base-matmul int8 or int8-mlp, the default), and prints both loss curves step by
             step, a summary, and the int8 error of every int8 product of the first step by projection (needs
             --model and --data; not part of "all")
  tune       what a training run's kernel choice measures (src/run/kernel-tuning.ts), on one Mistral-7B layer
             (random NF4 weights; small on SwiftShader), LoRA r=8 on all seven projections, at each --tokens: the
             layer's training work under every GEMM × attention × LoRA-product combination, each with its time, its
             speed against the first (the --gemm/--attention/--lora-kernel given, default basic, rows and general),
             and its numbers' largest difference
             from the first's; then the choice a run would make (not part of "all")
  estimate   the time estimate a GPU gets before a run (src/run/calibrate.ts: one layer of each kind and the head at
             the run's shape, added up) next to whole training steps measured on the same random model (Mistral-7B's
             shape on a GPU, 2 small layers on SwiftShader): estimateSeconds, stepSeconds, ratio; the same for a
             validation pass (validationEstimateSeconds, validationSeconds, validationRatio, forwardShare; not part
             of "all");
             with --stream-layers the layers are streamed from CPU memory and the estimate prices their uploads
  clamps     no GPU time: the bounds clamps WGSL's robustness leaves in the hot loops (≥ 4 multiply-adds per
             iteration) of every kernel variant with one (tiled and basic GEMM, NF4 products, skinny LoRA products,
             tiled attention), read from the SPIR-V Dawn compiles (bench spirv in a child process): per compiled
             pipeline, its hot loops and their clamped workgroup, storage and local indices per iteration; then a
             summary line (docs/performance.md, "Bounds clamps"; not part of "all")
  spirv      compiles those pipelines with Dawn's dump_shaders toggle: a JSON marker line per pipeline, then what Dawn
             prints for it (WGSL and SPIR-V disassembly; not part of "all")
  padding    padding-free micro-batches (docs/performance.md) against padded ones on a real model and dataset (--model,
             default the demo model; --data, default the sample dataset): the plan's first --steps steps (default 3)
             of --micro-batch rows (default 4, Replicate's), each layout in turn for --rounds rounds after a warm-up, same
             process, same weights: real tokens/s, the tokens the GPU computed, and the first step's loss of each
             (LoRA dropout off: they agree up to rounding); then the speedup (not part of "all")
  validation a run's validation (Replicate's defaults: 50 rows held out, validation_batch_size 1; --validation-rows) as one forward pass
             per batch, and packed into passes of --micro-batch rows (what a run does; docs/performance.md) on the
             same model, data and options as padding, each in turn for --rounds rounds after a warm-up: passes, the
             tokens computed, real tokens/s and the validation loss of each (equal up to rounding); then the speedup
             (not part of "all")
  head       training steps with the lm_head computed on every token (as before 2026-12-05) and on the tokens with a
             loss alone (what a run does; docs/performance.md) on the same model, data and options as padding (try
             --layout instruct), each in turn for --rounds rounds after a warm-up: real tokens/s, the tokens the head
             computed, the first step's loss of each (equal up to rounding); then the speedup (not part of "all")
  all        everything above but sweep, profile, model, int8, int8-ab, tune, estimate, clamps, spirv, padding,
             validation and head

options:
  --sizes 512,1024,2048,4096   matmul: square sizes (default: those on a GPU, 256,512 on SwiftShader)
  --shapes 2048x1024x4096      matmul: more shapes, MxNxK
  --kernels basic,tiled,tiled-fixed   matmul: the GEMM kernels to compare (default those three; tiled-warp,
                               tiled-k32 and tiled-warp-k32 too when named: the tiled kernel on the warp map, with a
                               K step of 32, both: the same bits)
  --tokens 512,2048            nf4/attention/layer, and matmul's projection shapes (q/o, k/v, gate/up, down): tokens
                               (default: 512,2048 on a GPU, 64 on SwiftShader, where matmul takes projection shapes
                               only when --tokens is given)
  --gemm basic                 the GEMM kernel every benchmark but matmul uses (basic, tiled, tiled-fixed, tiled-warp,
                               tiled-k32, tiled-warp-k32;
                               docs/performance.md): nf4, kernels and layer compare with that kernel's plain product
  --attention rows             the attention kernels layer, model, stream and generate run (rows, the measured default;
                               tiled, shaders/attention_flash.wgsl); bench attention always times both
  --lora-kernel general        what LoRA's rank-r products run on in every benchmark but matmul (general: the GEMM
                               kernel; skinny: shaders/matmul_skinny.wgsl); bench matmul times skinny where it fits
  --small                      nf4/attention/layer at reduced model sizes (default on SwiftShader)
  --min-ms 300                 time measured per result
  --steps 3                    model/stream: timed training steps (after one warm-up step)
  --targets all-linear         model/stream: LoRA target modules (q_proj,v_proj is Replicate's default)
  --keep-layers N|all          model: layers that keep their intermediates instead of being recomputed (default: a
                               checkpointed run, then, with --gpu-memory, the most that fit, as a training run chooses)
  --keep-attention             model: the recomputed layers keep their attention outputs, so the recomputation skips
                               attention (default: a checkpointed run, then, with --gpu-memory, as a run chooses)
  --gpu-memory GB              model: this GPU's memory (2³⁰ bytes a GB, as GPU makers count; WebGPU cannot tell), for
                               the kept-layer choice
  --no-attention-spill         layer/model/estimate: the tiled attention backward recomputes dS (7 products) instead
                               of reading it back from the runner's scratch (5), for the A/B; the memory is the same
  --no-lora-epilogue           layer/model/estimate: LoRA's up-projection and input gradient as GEMMs of their own
                               instead of in the tiled base products' epilogue, for the A/B; the same bits
  --stream-layers              estimate: the layers in CPU memory, uploaded as the passes need them (4 small layers
                               on SwiftShader, so that every pass uploads)
  --data-mb 200                data: size of the synthetic JSONL in MiB
  --model DIR --data FILE      int8-ab, padding, validation, head: the model (an NF4 run is made of it for int8-ab) and the
                               training data
  --micro-batch 4              padding, validation, head: micro_batch_size (and train_batch_size)
  --layout replicate           padding, validation, head: how rows become tokens (replicate, the default: loss on
                               every token; instruct: loss on the completion only)
  --validation-rows 50         validation: num_validation_samples, the rows held out (Replicate's default 50)
  --rounds 3                   padding, validation, head: timed rounds of each side after its warm-up (the figures are
                               the median round's; more rounds, less noise)
  --synthetic                  padding, validation, head: instead of --model and --data, Mistral-7B's shape with random NF4
                               weights on a GPU (2 small layers on SwiftShader) and rows of random ids whose lengths
                               are log-normal (median 512 tokens, σ 0.6, at most 2048; 24 and 96 small): --steps ×
                               --micro-batch of them to train on, and --validation-rows to validate on
  --steps 3                    int8-ab: optimizer steps per run (default 20 there)
  --quant nf4                  int8-ab: nf4 or nf4-double; padding, validation, head: none (the default), nf4 or nf4-double
  ${BASE_MATMUL_HELP}
                               (layer, model, stream, generate, nf4, kernels)
  ${INT8_KERNEL_HELP}
                               (int8 then times each int8 product on both kernels, side by side)
  ${ROBUSTNESS_HELP}
  ${TILED_STAGES_HELP}

Prints one JSON line per result as soon as it is measured; memory figures come from the engine's ledger.`;

/** The demo model and sample dataset the real padding, validation and head benches read unless told otherwise. */
const DEFAULT_BENCH_MODEL = projectPath('public/models/mistral-nano-demo');
const DEFAULT_BENCH_DATA = projectPath('public/datasets/sample.jsonl');

/**
 * A path in this project, wherever the command runs: relative to the working directory, the defaults were not found
 * from any other folder (the default tokenizer is found so too, tokenize.ts).
 */
function projectPath(rel: string): string {
  return resolve(fileURLToPath(new URL(`../../../${rel}`, import.meta.url)));
}

/**
 * The real model and dataset of bench padding, validation and head: the paths given (relative to the working
 * directory, as any path on the command line) or the project's defaults, both checked, so that each wrong one is
 * named (a wrong --model was reported as the --data error, which was checked first).
 */
export function benchRealInputs(values: { model?: string; data?: string }): { modelDir: string; dataPath: string; model: ModelSpec } {
  const modelDir = values.model ?? DEFAULT_BENCH_MODEL;
  const dataPath = values.data ?? DEFAULT_BENCH_DATA;
  const failures: unknown[] = [];
  let model: ModelSpec | null = null;
  try {
    model = modelSpec(modelDir);
  } catch (e) {
    failures.push(e);
  }
  try {
    checkReadableFile(dataPath, '--data');
  } catch (e) {
    failures.push(e);
  }
  if (model !== null && failures.length === 0) return { modelDir, dataPath, model };
  // Both wrong: both said, in one line, as the user's mistake (each check throws bad-input).
  throw failures.length === 1 ? failures[0] : new FinetuneError('bad-input', failures.map((e) => thrownMessage(e)).join('; '));
}

function intList(flag: string, v: string): number[] {
  return v.split(',').map((s) => {
    const n = Number(s);
    if (!Number.isInteger(n) || n < 1) throw new UsageError(`--${flag}: "${s}" is not a positive integer`);
    return n;
  });
}

function shapeList(v: string): MatmulShape[] {
  return v.split(',').map((s) => {
    const dims = s.split('x').map(Number);
    if (dims.length !== 3 || !dims.every((n) => Number.isInteger(n) && n >= 1)) {
      throw new UsageError(`--shapes: "${s}" is not MxNxK with three positive integers`);
    }
    const [M, N, K] = dims;
    return { M, N, K };
  });
}

export const benchCommand: Command = {
  name: 'bench',
  summary: "measure kernels and a training layer on this machine's GPU (one JSON line per result)",
  usage: USAGE,
  async run(args, io) {
    const { values, positionals } = parseCommandArgs(
      args,
      {
        sizes: { type: 'string' },
        tokens: { type: 'string' },
        small: { type: 'boolean' },
        'min-ms': { type: 'string' },
        steps: { type: 'string' },
        targets: { type: 'string' },
        'data-mb': { type: 'string' },
        shapes: { type: 'string' },
        kernels: { type: 'string' },
        gemm: { type: 'string' },
        attention: { type: 'string' },
        'lora-kernel': { type: 'string' },
        'keep-layers': { type: 'string' },
        'keep-attention': { type: 'boolean' },
        'stream-layers': { type: 'boolean' },
        'gpu-memory': { type: 'string' },
        'base-matmul': { type: 'string' },
        'int8-kernel': { type: 'string' },
        model: { type: 'string' },
        data: { type: 'string' },
        quant: { type: 'string' },
        'micro-batch': { type: 'string' },
        'validation-rows': { type: 'string' },
        rounds: { type: 'string' },
        synthetic: { type: 'boolean' },
        layout: { type: 'string' },
        'no-robustness': { type: 'boolean' },
        'tiled-stages': { type: 'string' },
        'no-attention-spill': { type: 'boolean' },
        'no-lora-epilogue': { type: 'boolean' },
      },
      true,
    );
    const what = positionals[0] as What | undefined;
    if (!what) throw new UsageError(`name a benchmark: one of ${WHAT.join(', ')}`);
    if (!WHAT.includes(what)) throw new UsageError(`unknown benchmark "${what}"; expected one of: ${WHAT.join(', ')}`);
    if (positionals.length > 1) throw new UsageError(`one benchmark at a time (got ${positionals.join(' ')})`);
    const minMs = values['min-ms'] ? Number(values['min-ms']) : 300;
    if (!(Number.isFinite(minMs) && minMs > 0)) throw new UsageError(`--min-ms must be a positive number, got ${quote(values['min-ms'])}`);
    const sizesGiven = values.sizes ? intList('sizes', values.sizes) : null;
    const tokensGiven = values.tokens ? intList('tokens', values.tokens) : null;
    const steps = values.steps ? intList('steps', values.steps)[0] : 3;
    const rounds = values.rounds ? intList('rounds', values.rounds)[0] : 3;
    const targets = parseTargetModules(values.targets ?? 'all-linear');
    if (typeof targets === 'string') throw new UsageError(`--targets: ${targets}`);
    const dataMb = values['data-mb'] === undefined ? 200 : Number(values['data-mb']);
    if (!(dataMb > 0 && dataMb <= 64 * 1024)) throw new UsageError(`--data-mb must be a number of MiB above 0, got ${quote(values['data-mb'])}`);
    const shapesGiven = values.shapes ? shapeList(values.shapes) : [];
    const gemmKernel = gemmKernelFlag('gemm', values.gemm ?? 'basic');
    const attention = attentionKernelFlag(values.attention ?? 'rows');
    const loraKernel = loraKernelFlag(values['lora-kernel'] ?? 'general');
    const kernels = values.kernels ? values.kernels.split(',').map((k) => gemmKernelFlag('kernels', k)) : DEFAULT_MATMUL_KERNELS;
    const keepLayers = parseKeepLayers(values['keep-layers']);
    const keepAttention = values['keep-attention'] ?? false;
    // Train's, plan's and generate's parser: the same values taken and refused in the same words (this one took Infinity).
    const gpuMemoryBytes = parseGpuMemoryFlag(values['gpu-memory']);
    const nodeOptions = nodeContextFlags(values);
    const print = (r: unknown): void => io.out(JSON.stringify(r));
    if (what === 'data') {
      print(await dataBench(dataMb));
      return 0;
    }
    if (what === 'spirv') {
      const { ctx, found } = await createNodeContext({ ...nodeOptions, dumpShaders: true });
      if (found.note) io.err(`note: ${found.note}`);
      try {
        // Written synchronously to descriptor 1, so each marker lands before what Dawn prints for its pipeline.
        await compileHotPipelines(ctx, (line) => writeSync(1, `${line}\n`));
      } finally {
        ctx.destroyDevice();
      }
      return 0;
    }
    if (what === 'clamps') {
      const { results, pipelines } = await auditClamps({ robustness: nodeOptions.robustness });
      for (const r of results) print(r);
      print(clampsSummary(results, pipelines, nodeOptions.robustness !== false));
      return 0;
    }
    const baseMatmul = parseBaseMatmul(values['base-matmul']);
    const int8Kernel = parseInt8Kernel(values['int8-kernel']);
    if (what === 'padding' || what === 'validation' || what === 'head') {
      const synthetic = values.synthetic ?? false;
      if (synthetic && (values.model !== undefined || values.data !== undefined || values.layout !== undefined)) throw new UsageError(`bench ${what} --synthetic makes its own model and rows of token ids: give it no --model, --data or --layout`);
      const quantization = (values.quant ?? (synthetic ? 'nf4-double' : 'none')) as Quantization;
      if (!QUANTIZATIONS.includes(quantization) || (synthetic && quantization === 'none')) throw new UsageError(`--quant must be one of ${QUANTIZATIONS.join(', ')}${synthetic ? ' but none (--synthetic makes NF4 weights)' : ''}, got ${quote(values.quant)}`);
      const mbs = values['micro-batch'] ? intList('micro-batch', values['micro-batch'])[0] : 4;
      const validationRows = values['validation-rows'] ? intList('validation-rows', values['validation-rows'])[0] : 50;
      // padding times training steps alone; validation holds out --validation-rows rows (Replicate's default 50) in
      // Replicate's batches of one.
      const hp = parseHyperparams({ micro_batch_size: mbs, train_batch_size: mbs, lora_dropout: 0, run_validation: what === 'validation', num_validation_samples: validationRows, lora_target_modules: values.targets ?? 'q_proj,v_proj', num_train_epochs: 1, layout: values.layout ?? 'replicate' });
      // A real model and dataset are checked and read before the GPU is asked for: a wrong path is one line at once.
      const inputs = synthetic ? null : benchRealInputs(values);
      const real = inputs === null ? null : { ...inputs, bytes: new Uint8Array(await readFile(inputs.dataPath)), tokenizer: await loadTokenizerFrom(), ckpt: await openBaseCheckpoint(inputs.model.files) };
      const { ctx, found } = await createNodeContext({ gemmKernel, attention, loraKernel, ...nodeOptions });
      if (found.note) io.err(`note: ${found.note}`);
      try {
        const adapterLine = { bench: 'adapter', via: found.via, vendor: ctx.report.vendor, architecture: ctx.report.architecture, description: ctx.report.description, gemm: gemmKernel, attention, loraKernel, robustness: found.robustness, quantization };
        let setup: { weights: MistralWeights; config: MistralConfig; plan: (paddingFree: boolean) => Promise<TrainingData> };
        if (real) {
          print({ ...adapterLine, model: basename(real.modelDir), data: basename(real.dataPath), layout: hp.layout });
          setup = {
            weights: await loadMistralWeights(ctx, real.ckpt, { quantization }),
            config: real.ckpt.config,
            plan: async (paddingFree) => (await loadRunData({ train: new Blob([real.bytes]).stream(), trainName: basename(real.dataPath) }, real.tokenizer, { ...hp, padding_free: paddingFree })).data,
          };
        } else {
          // Mistral-7B's shape with random NF4 weights on a GPU (small on SwiftShader), and log-normal rows of random
          // ids: what a GPU machine without the model or network can measure.
          const small = values.small ?? ctx.report.software;
          const dims = small ? { ...SMALL_LAYER, L: 2, V: 1000 } : MISTRAL_7B;
          const lengths = small ? { median: 24, sigma: 0.6, max: 96 } : { median: 512, sigma: 0.6, max: 2048 };
          const rows = syntheticRows({ count: steps * mbs, ...lengths, vocab: dims.V, seed: 5 });
          const validation = what === 'validation' ? syntheticRows({ count: hp.num_validation_samples, ...lengths, vocab: dims.V, seed: 6 }) : [];
          print({ ...adapterLine, model: small ? 'small (random)' : 'Mistral-7B (random)', layers: dims.L, data: 'synthetic', rows: rows.length, validationRows: validation.length, ...lengths });
          setup = {
            weights: await randomMistral(ctx, dims, quantization === 'nf4-double'),
            config: configOf(dims),
            plan: async (paddingFree) => new TrainingData(rows, validation, { ...hp, padding_free: paddingFree }),
          };
        }
        const adapter = createAdapter(setup.config, { r: hp.lora_rank, alpha: hp.lora_alpha, dropout: 0, targetModules: targetModules(hp), random: mulberry32(hp.seed) });
        if (what === 'padding') for await (const line of benchPadding(ctx, setup.weights, adapter, hp, setup.plan, { steps, rounds })) print(line);
        else if (what === 'head') for await (const line of benchHead(ctx, setup.weights, adapter, hp, await setup.plan(true), { steps, rounds })) print(line);
        else for await (const line of benchValidation(ctx, setup.weights, adapter, await setup.plan(true), { rounds, seed: hp.seed })) print(line);
      } finally {
        real?.tokenizer.dispose();
        ctx.destroyDevice();
      }
      return 0;
    }
    if (what === 'int8-ab') {
      if (!values.model || !values.data) throw new UsageError('bench int8-ab needs --model DIR and --data FILE.jsonl');
      const quantization = values.quant ?? 'nf4';
      if (quantization !== 'nf4' && quantization !== 'nf4-double') throw new UsageError(`--quant must be nf4 or nf4-double, got ${quote(quantization)}`);
      checkReadableFile(values.data, '--data');
      const tokenizer = await loadTokenizerFrom();
      const { ctx, found } = await createNodeContext({ gemmKernel, attention, loraKernel, int8Kernel, ...nodeOptions });
      if (found.note) io.err(`note: ${found.note}`);
      try {
        const session = new FinetuneSession(ctx, tokenizer, memoryRunStore());
        const spec = modelSpec(values.model, { token: process.env.HF_TOKEN || undefined });
        await session.loadModel(spec.files, spec.label, quantization);
        print({ bench: 'adapter', via: found.via, vendor: ctx.report.vendor, architecture: ctx.report.architecture, description: ctx.report.description, gemm: gemmKernel, attention, loraKernel, robustness: found.robustness, tiledStages: ctx.tiledStages });
        const hp = { quantization, peft_method: 'qlora', lora_target_modules: values.targets ?? 'all-linear', max_steps: values.steps ? steps : 20, num_train_epochs: 100, run_validation: false };
        const files = { train: new Blob([new Uint8Array(await readFile(values.data))]), trainName: basename(values.data), validation: null, validationName: null };
        const ab = await int8LossAB(ctx, session, hp, files, baseMatmul === 'fp32' ? 'int8-mlp' : baseMatmul, (t) => io.err(t));
        for (const line of [...ab.steps, ...ab.probe, ab.summary]) print(line);
      } finally {
        tokenizer.dispose();
        ctx.destroyDevice();
      }
      return 0;
    }
    const { ctx, found } = await createNodeContext({ gemmKernel, attention, loraKernel, baseMatmul, int8Kernel, ...nodeOptions });
    if (found.note) io.err(`note: ${found.note}`);
    if (values['no-attention-spill']) ctx.attentionSpill = false;
    if (values['no-lora-epilogue']) ctx.loraEpilogue = false;
    const software = ctx.report.software;
    const small = values.small ?? software;
    const sizes = sizesGiven ?? (software ? [256, 512] : [512, 1024, 2048, 4096]);
    const tokens = tokensGiven ?? (software ? [64] : [512, 2048]);
    const layerDims = small ? SMALL_LAYER : MISTRAL_7B_LAYER;
    print({ bench: 'adapter', via: found.via, vendor: ctx.report.vendor, architecture: ctx.report.architecture, description: ctx.report.description, small, gemm: gemmKernel, attention, loraKernel, baseMatmul, int8Kernel, robustness: found.robustness, tiledStages: ctx.tiledStages, attentionSpill: ctx.attentionSpill, loraEpilogue: ctx.loraEpilogue });
    const run = (w: What): boolean => what === 'all' || what === w;
    if (run('matmul')) {
      const projections = tokensGiven || !small ? projectionShapes(tokens, layerDims) : [];
      const shapes = [...squareShapes(sizes), ...projections, ...shapesGiven];
      for await (const r of benchMatmul(ctx, shapes, minMs, kernels)) print(r);
    }
    if (run('nf4')) {
      const shapes: Nf4BenchShape[] = projectionNf4Shapes(tokens, layerDims);
      for await (const r of benchNf4(ctx, shapes, minMs)) print(r);
    }
    if (run('attention')) {
      for (const T of tokens) for await (const r of benchAttention(ctx, { T, nH: layerDims.nH, nKV: layerDims.nKV, hd: layerDims.hd, minMs })) print(r);
    }
    if (run('kernels')) {
      const dims = small ? { ...layerDims, L: 2, V: 1000 } : { ...MISTRAL_7B_LAYER, L: 32, V: 32000 };
      for (const T of tokens) for await (const r of benchKernels(ctx, dims, T, minMs)) print(r);
    }
    if (run('layer')) {
      for (const T of tokens) {
        const r = await benchLayer(ctx, { dims: layerDims, T, minMs });
        print(r);
        if (!small) {
          // 32 such layers make Mistral-7B (the lm_head and embedding add ~2 % of the FLOPs, not counted here).
          print({ bench: 'model-estimate', model: 'Mistral-7B', T, tokensPerSecond: r.tokensPerSecond / 32, basis: '32 × layer time' });
        }
      }
    }
    if (what === 'sweep') {
      const projections = tokensGiven ? projectionShapes(tokens, layerDims) : [];
      const shapes = [...squareShapes(sizesGiven ?? (software ? [256] : [4096])), ...projections, ...shapesGiven];
      for await (const r of benchSweep(ctx, shapes, sweepGrid(), values['min-ms'] ? minMs : 200)) print(r);
    }
    if (what === 'profile') {
      for (const T of tokens) {
        const { kernels, summary } = await benchProfile(ctx, { dims: layerDims, T, minMs });
        for (const line of kernels) print(line);
        print(summary);
      }
    }
    if (run('dispatch')) {
      for await (const r of benchRecording(ctx, 2000, minMs)) print(r);
      // The demo model's layer always (where the host is most likely the limit), Mistral-7B's on a GPU.
      for (const dims of small ? [SMALL_LAYER] : [SMALL_LAYER, MISTRAL_7B_LAYER]) {
        for (const T of tokens) for await (const r of benchDispatch(ctx, dims, T, minMs)) print(r);
      }
    }
    if (run('generate')) {
      const dims = small ? { ...layerDims, L: 2, V: 1000 } : MISTRAL_7B;
      for await (const r of benchGenerate(ctx, { dims, promptTokens: small ? 8 : 16, newTokens: small ? 8 : 32 })) print(r);
    }
    if (run('load')) {
      // First load: NF4 quantisation of bf16 weights on the GPU; later loads: the weight cache, hashed and uploaded.
      const shape = small ? { rows: layerDims.I, cols: layerDims.C } : { rows: MISTRAL_7B_LAYER.I, cols: MISTRAL_7B_LAYER.C };
      for (const dq of [false, true]) print(await benchQuantize(ctx, shape.rows, shape.cols, dq, minMs));
      print(await benchCacheLoad(ctx, small ? { ...layerDims, L: 2, V: 1000 } : { ...MISTRAL_7B_LAYER, L: 4, V: 32000 }));
    }
    if (what === 'model') {
      const dims = small ? { ...layerDims, L: 2, V: 1000 } : MISTRAL_7B;
      // Each mode on its own line, with its own peak: checkpointed first, then what the memory allows (as a run picks it).
      const modes: (number | 'auto')[] = keepLayers !== undefined ? [keepLayers === 'all' ? dims.L : keepLayers] : gpuMemoryBytes === undefined ? [0] : [0, 'auto'];
      for (const T of tokens) {
        for (const m of modes) {
          const keptLayers: KeptLayersChoice =
            m === 'auto' ? (inUse) => chooseKeptLayers(dims, { B: 1, T, r: 8, targets }, { askedAttention: keepAttention || undefined, memoryBytes: gpuMemoryBytes ?? 0, inUseBytes: inUse }) : m;
          print(await benchModel(ctx, { dims, T, steps, targets, keptLayers, keptAttention: keepAttention }));
        }
      }
    }
    if (what === 'int8') {
      // A square product, then the layer's four projection shapes (q/o, k/v, gate/up, down): the same as bench nf4's.
      const shapes: Nf4BenchShape[] = small ? [{ M: 256, N: 256, K: 256 }, ...projectionNf4Shapes(tokens, layerDims)] : [{ M: 4096, N: 4096, K: 4096 }, ...projectionNf4Shapes(tokens)];
      for await (const r of benchInt8(ctx, shapes, minMs)) print(r);
    }
    if (what === 'tune') {
      for (const T of tokens) {
        const weights = await randomLayer(ctx, layerDims, true);
        try {
          const lora = { r: 8, alpha: 16, dropout: 0.05, targets: PROJECTIONS };
          const trials = await measureKernels(ctx, weights, syntheticConfig(layerDims), lora, { B: 1, T }, kernelCandidates({}, kernelsOf(ctx)), { minMs });
          const reference = trials[0];
          for (const t of trials) {
            const timed = Number.isFinite(t.ms);
            print({ bench: 'tune', T, ...t.kernels, ms: timed ? t.ms : null, reps: t.reps, layerTokensPerSecond: timed ? T / (t.ms / 1000) : null, vsFirst: timed ? reference.ms / t.ms : null, relDiff: t.relDiff, agrees: t.agrees });
          }
          const pick = pickKernels(trials);
          // What a run picks: it measures in stages (kernelStages), not every combination; the line says whether the
          // staged choice is the one the full grid gives.
          const staged = pickKernels(stagedTrials(trials, kernelStages({}, reference.kernels)));
          print({ bench: 'tune-choice', T, ...pick.chosen, speedup: pick.speedup, refused: pick.refused, staged: kernelChoice(staged.chosen), stagedSpeedup: staged.speedup, stagedAgrees: sameKernels(staged.chosen, pick.chosen) });
        } finally {
          destroyMistralWeights(ctx, weights);
        }
      }
    }
    if (what === 'estimate') {
      const streamed = values['stream-layers'] === true;
      // Streamed, four small layers at least: with two, both stay in the slots and nothing is uploaded.
      const dims = small ? { ...layerDims, L: streamed ? 4 : 2, V: 1000 } : MISTRAL_7B;
      let weights = await randomMistral(ctx, dims, true);
      try {
        if (streamed) weights = await moveLayersToHost(ctx, weights);
        const hp = parseHyperparams({ lora_rank: 8, lora_alpha: 16, lora_target_modules: targets.join(',') });
        for (const T of tokens) {
          const c = await calibrate(ctx, weights, configOf(dims), hp, { shape: { B: 1, T }, method: 'layers' });
          // A step of one micro-batch: its compute plus the uploads of one training pass.
          const uploadSeconds = trainingPassUploadSeconds(c);
          const estimateSeconds = c.measuredSeconds + uploadSeconds;
          // A validation batch of the same shape: its forward, plus the uploads of one forward pass.
          const forward = await calibrateValidation(ctx, weights, configOf(dims), hp, { B: 1, T }, { method: 'layers', uploadSeconds: c.uploads?.seconds });
          const validationEstimateSeconds = forward.seconds + (c.uploads ? c.uploads.perValidationPass * c.uploads.seconds : 0);
          const t = await timeTrainSteps(ctx, weights, { T, steps, r: 8, targets, validationPasses: steps });
          const stepSeconds = t.stepMs / 1000;
          const validationSeconds = (t.validationMs ?? 0) / 1000;
          print({
            bench: 'estimate',
            layers: dims.L,
            T,
            streamed,
            estimateSeconds,
            parts: c.parts,
            ...(c.uploads ? { uploads: c.uploads, uploadSeconds, uploadsPerStep: t.uploadsPerStep } : {}),
            stepSeconds,
            ratio: estimateSeconds / stepSeconds,
            validationEstimateSeconds,
            validationSeconds,
            validationRatio: validationEstimateSeconds / validationSeconds,
            forwardParts: forward.parts,
            forwardShare: forwardShare({ ...c, forward }),
          });
        }
      } finally {
        destroyMistralWeights(ctx, weights);
      }
    }
    if (what === 'stream') {
      // Four layers at least, so that the two slots are rewritten in every pass.
      const dims = small ? { ...layerDims, L: 4, V: 1000 } : MISTRAL_7B;
      for await (const r of benchStream(ctx, { dims, tokens, steps, targets })) print(r);
    }
    ctx.destroyDevice();
    if (what === 'all') print(await dataBench(dataMb));
    return 0;
  },
};

/** The data benchmark with Node's memory figures and a real garbage collection between phases. */
async function dataBench(megabytes: number): Promise<unknown> {
  // Exposes gc() without a command-line flag, so the baseline and the retained figure are not blurred by garbage.
  setFlagsFromString('--expose-gc');
  const gc = runInNewContext('gc') as () => void;
  const tokenizer = await loadTokenizerFrom();
  try {
    const memory = () => {
      const m = process.memoryUsage();
      // Typed arrays' backing stores are outside the JS heap: count them with it.
      return { heapUsed: m.heapUsed + m.arrayBuffers, rss: m.rss };
    };
    return await benchData({ megabytes, tokenizer, memory, gc });
  } finally {
    tokenizer.dispose();
  }
}
