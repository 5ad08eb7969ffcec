import { QUANTIZATIONS, type Quantization } from '../../core/mistral.ts';
import { destroyLora, uploadLora } from '../../engine/mistral/lora.ts';
import { loadMistralWeights } from '../../engine/mistral/weights.ts';
import { openBaseCheckpoint } from '../../model/checkpoint.ts';
import { readAdapter } from '../../model/lora-adapter.ts';
import { generate } from '../../run/generate.ts';
import { parseCommandArgs, UsageError, type Command } from '../command.ts';
import { checkDirectory } from '../input-file.ts';
import { createNodeContext } from '../node-gpu.ts';
import { isRemoteModelSpec, modelSpec, nodeDirectory } from '../node-source.ts';
import { loadTokenizerFrom } from './tokenize.ts';

/** A number flag: the text must be a whole number / a number, else a usage error naming the flag. */
function numberFlag(v: string | undefined, flag: string, fallback: number, integer: boolean): number {
  if (v === undefined) return fallback;
  const n = Number(v);
  if (v.trim() === '' || !Number.isFinite(n) || (integer && !Number.isInteger(n))) {
    throw new UsageError(`${flag} must be ${integer ? 'a whole number' : 'a number'}, got "${v}"`);
  }
  return n;
}

export const generateCommand: Command = {
  name: 'generate',
  summary: 'continue a prompt with a model (and an adapter), streaming the text as it comes',
  usage: `finetune generate --model DIR|HUB_ID|URL [--adapter DIR] --prompt TEXT [--max-tokens N] [--temperature T]
                  [--top-p P] [--seed N] [--quant none|nf4|nf4-double] [--stream-layers] [--tokenizer DIR]

Continues TEXT (BOS prepended, no chat template: write the layout you trained with) with the KV-cache decoder, printing
each token's text on stdout as it is generated. Stops at </s> or after --max-tokens (default 64). Greedy by default
(reproducible); --temperature > 0 samples, from the most likely tokens up to --top-p (default 1) of the probability,
with --seed (default 0). Without --adapter it is the base model. Ctrl-C stops after the current token. A summary
(tokens, tokens/s, why it stopped) goes to stderr. --stream-layers keeps the layers in CPU memory and uploads each one
for every token (for a GPU too small for the model: the same tokens, much slower).

Example:
  finetune generate --model test/fixtures/tiny-mistral --adapter test/fixtures/tiny-adapter --prompt "def add(" --max-tokens 8`,
  async run(args, io) {
    const { values } = parseCommandArgs(args, {
      model: { type: 'string' },
      adapter: { type: 'string' },
      prompt: { type: 'string' },
      'max-tokens': { type: 'string' },
      temperature: { type: 'string' },
      'top-p': { type: 'string' },
      seed: { type: 'string' },
      quant: { type: 'string', default: 'none' },
      tokenizer: { type: 'string' },
      'stream-layers': { type: 'boolean', default: false },
    });
    if (!values.model) throw new UsageError('--model is required');
    if (values.prompt === undefined) throw new UsageError('--prompt is required');
    const maxNewTokens = numberFlag(values['max-tokens'], '--max-tokens', 64, true);
    const temperature = numberFlag(values.temperature, '--temperature', 0, false);
    const topP = numberFlag(values['top-p'], '--top-p', 1, false);
    const seed = numberFlag(values.seed, '--seed', 0, true);
    const quantization = values.quant as Quantization;
    if (!QUANTIZATIONS.includes(quantization)) throw new UsageError(`--quant must be one of ${QUANTIZATIONS.join(', ')}, got "${values.quant}"`);
    if (!isRemoteModelSpec(values.model)) checkDirectory(values.model, '--model');
    if (values.adapter) checkDirectory(values.adapter, '--adapter');
    const tokenizer = await loadTokenizerFrom(values.tokenizer);

    const { ctx, found } = await createNodeContext();
    if (found.note) io.err(`note: ${found.note}`);
    const ckpt = await openBaseCheckpoint(modelSpec(values.model, { token: process.env.HF_TOKEN || undefined }).files);
    const weights = await loadMistralWeights(ctx, ckpt, { quantization, streamLayers: values['stream-layers'] });
    const lora = values.adapter ? uploadLora(ctx, weights.dims, await readAdapter(nodeDirectory(values.adapter), { base: ckpt.config })) : null;
    let interrupted = false;
    const onSigint = (): void => {
      interrupted = true;
    };
    process.once('SIGINT', onSigint);
    try {
      const r = await generate(ctx, weights, lora, [tokenizer.bosId, ...tokenizer.encode(values.prompt)], {
        maxPositions: ckpt.config.maxPositions,
        maxNewTokens,
        temperature,
        topP,
        seed,
        eosId: tokenizer.eosId,
        decode: (ids) => tokenizer.decode(ids),
        onToken: (t) => process.stdout.write(t.text),
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
        }),
      );
      return 0;
    } finally {
      process.off('SIGINT', onSigint);
      if (lora) destroyLora(ctx, lora);
      ctx.destroyDevice();
    }
  },
};
