import { QUANTIZATIONS, type Quantization } from '../../core/mistral.ts';
import { attentionKernelFlag, BASE_MATMUL_HELP, gemmKernelFlag, INT8_KERNEL_HELP, loraKernelFlag, parseBaseMatmul, parseInt8Kernel, nodeContextFlags, ROBUSTNESS_HELP, TILED_STAGES_HELP } from '../kernel-flags.ts';
import { INT8_CHOICES, type Int8Choice } from '../../run/int8-agreement.ts';
import { runGoldenCheck, type CheckReport } from '../../run/check.ts';
import { parseCommandArgs, UsageError, type Command } from '../command.ts';
import { checkDirectory, checkReadableFile } from '../input-file.ts';
import { adapterInput } from '../adapter-input.ts';
import { createNodeContext } from '../node-gpu.ts';
import { isRemoteModelSpec, modelSpec, nodeFileSource } from '../node-source.ts';
import { quote } from '../../core/quote.ts';

const QUANTS: readonly Quantization[] = QUANTIZATIONS;

export const checkCommand: Command = {
  name: 'check',
  summary: 'prove the engine on this GPU against a PyTorch/PEFT golden (loss, logits, hidden states, gradients, AdamW, NF4)',
  usage: `finetune check --model DIR|HUB_ID|URL --adapter PATH --golden FILE [--quant none|nf4|nf4-double] [--stream-layers] [--gemm basic|tiled|tiled-fixed|tiled-warp|tiled-k32|tiled-warp-k32] [--attention rows|tiled]
               [--lora-kernel general|skinny] [--base-matmul fp32|int8|int8-mlp] [--int8-kernel dp4a|subgroup-matrix]
               [--int8-gates int8|int8-mlp|all] [--no-robustness] [--tiled-stages 1|2] [--verbose]

Runs the Mistral engine with the adapter (a PEFT folder, a zip of one, Replicate's training_output.zip, or the
adapter_model file itself) on the golden's input_ids/labels and compares every tensor the golden holds:
loss (relative error ≤ 1e-5), logits_first256, logsumexp, hidden_states/*, grad/*, adamw_step1/* (each ≤ 1e-3 of the
tensor's max-abs), nf4_dequant/* (exact). Prints one JSON object with the worst error per group; exits 0 only when every
group is within tolerance. --verbose adds every compared tensor's error. --stream-layers keeps the layers in CPU memory
and uploads them layer by layer (layer streaming: the same numbers, bit for bit). --gemm picks the GEMM kernel (default
basic; docs/performance.md); --attention the attention kernels (default rows; tiled: shaders/attention_flash.wgsl); --lora-kernel
the kernel of LoRA's rank-r products (default general: the GEMM kernel; skinny: shaders/matmul_skinny.wgsl). --int8-gates CHOICE also runs the same forward and backward with the NF4 base products
as CHOICE says (int8: every projection; int8-mlp: the MLP's three; all: both; docs/int8.md) and reports each one's
agreement with this run: loss relative error (gate ≤ 1e-3) and the cosine between the LoRA gradients (gate ≥ 0.999,
the worst tensor and all of them together); the exit status then needs those gates too.

  ${BASE_MATMUL_HELP}
  ${INT8_KERNEL_HELP}
  ${ROBUSTNESS_HELP}
  ${TILED_STAGES_HELP}

Example:
  finetune check --model test/fixtures/tiny-mistral --adapter test/fixtures/tiny-adapter \\
                 --golden test/fixtures/golden_qlora.safetensors --quant nf4`,
  async run(args, io) {
    const { values } = parseCommandArgs(args, {
      model: { type: 'string' },
      adapter: { type: 'string' },
      golden: { type: 'string' },
      quant: { type: 'string', default: 'none' },
      verbose: { type: 'boolean', default: false },
      gemm: { type: 'string', default: 'basic' },
      attention: { type: 'string', default: 'rows' },
      'lora-kernel': { type: 'string', default: 'general' },
      'stream-layers': { type: 'boolean', default: false },
      'base-matmul': { type: 'string' },
      'int8-gates': { type: 'string' },
      'int8-kernel': { type: 'string' },
      'no-robustness': { type: 'boolean', default: false },
      'tiled-stages': { type: 'string' },
    });
    for (const k of ['model', 'adapter', 'golden'] as const) {
      if (!values[k]) throw new UsageError(`--${k} is required`);
    }
    const quantization = values.quant as Quantization;
    if (!QUANTS.includes(quantization)) throw new UsageError(`--quant must be one of ${QUANTS.join(', ')}, got ${quote(values.quant)}`);
    if (!isRemoteModelSpec(values.model as string)) checkDirectory(values.model as string, '--model');
    checkReadableFile(values.golden as string, '--golden');
    const gemmKernel = gemmKernelFlag('gemm', values.gemm as string);
    const attention = attentionKernelFlag(values.attention as string);
    const loraKernel = loraKernelFlag(values['lora-kernel'] as string);
    const baseMatmul = parseBaseMatmul(values['base-matmul']);
    const int8Kernel = parseInt8Kernel(values['int8-kernel']);
    const nodeOptions = nodeContextFlags(values);
    const gates = values['int8-gates'];
    if (gates !== undefined && gates !== 'all' && !(INT8_CHOICES as readonly string[]).includes(gates)) {
      throw new UsageError(`--int8-gates must be one of ${[...INT8_CHOICES, 'all'].join(', ')}, got ${quote(gates)}`);
    }
    const int8Gates: Int8Choice[] = gates === undefined ? [] : gates === 'all' ? [...INT8_CHOICES] : [gates as Int8Choice];
    if (int8Gates.length && baseMatmul !== 'fp32') throw new UsageError('--int8-gates compares int8 with fp32: leave --base-matmul at fp32');
    if (int8Kernel !== 'dp4a' && baseMatmul === 'fp32' && !int8Gates.length) {
      throw new UsageError('--int8-kernel picks the kernel of the int8 path: give --base-matmul int8 or int8-mlp, or --int8-gates, too');
    }
    // A folder, a zip, or the adapter_model file itself: read as finetune export and generate read it.
    const adapter = await adapterInput(values.adapter as string);
    const { ctx, found } = await createNodeContext({ gemmKernel, attention, loraKernel, baseMatmul, int8Kernel, ...nodeOptions });
    if (found.note) io.err(`note: ${found.note}`);
    const report = await runGoldenCheck(ctx, {
      model: modelSpec(values.model as string, { token: process.env.HF_TOKEN || undefined }).files,
      adapter: adapter.input,
      golden: await nodeFileSource(values.golden as string),
      quantization,
      onProgress: (t) => io.err(t),
      verbose: values.verbose,
      streamLayers: values['stream-layers'],
      int8Gates,
    });
    io.out(JSON.stringify(report, null, 2));
    ctx.destroyDevice();
    // The verdict in words on stderr too, where a person reads (it was only inside the JSON, with exit 1).
    for (const line of checkVerdictLines(report)) io.err(line);
    return report.ok && Object.values(report.int8 ?? {}).every((g) => g.ok) ? 0 : 1;
  },
};

/** "check: passed (7 groups within tolerance)", or a line per group (and int8 gate) that failed, naming its worst tensor. */
export function checkVerdictLines(report: CheckReport): string[] {
  const groups = Object.entries(report.groups);
  const failed = groups.filter(([, g]) => !g.ok).map(([name, g]) => `check: FAILED ${name}: worst error ${g.worst.toExponential(2)} at ${g.where} (tolerance ${g.tolerance.toExponential(0)})`);
  const gates = Object.entries(report.int8 ?? {})
    .filter(([, g]) => g && !g.ok)
    .map(([choice, g]) => `check: FAILED int8 gates for ${choice}: loss relative error ${g!.loss.relError.toExponential(2)}, LoRA-gradient cosine ${g!.gradCosine.all.toFixed(6)} (docs/int8.md)`);
  const lines = [...failed, ...gates];
  return lines.length > 0 ? lines : [`check: passed (${groups.length} groups within tolerance)`];
}
