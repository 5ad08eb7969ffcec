// The one hyperparameter object as the `input` of a Replicate training (POST …/trainings). Replicate's own fields go
// as they are. Our extras are not inputs of its trainer: each is either what that trainer does anyway (or harmless to
// drop) — then it is stripped with a note saying so — or a choice it cannot honour, which would change what is
// trained — then the conversion is refused, with the reason and what to do instead.

import { FinetuneError } from '../core/errors.ts';
import { FIELDS, defaultHyperparams, defaultQuantization, targetModules, type HyperparamName, type Hyperparams } from './hyperparams.ts';
import { quote } from '../core/quote.ts';

/** Replicate's training inputs (docs/replicate-trainer.md), as sent. */
export interface ReplicateTrainingInput {
  train_data: string;
  num_train_epochs: number;
  train_batch_size: number;
  micro_batch_size: number;
  num_validation_samples: number;
  validation_data?: string;
  validation_batch_size: number;
  run_validation: boolean;
  validation_prompt?: string;
  learning_rate: number;
  pack_sequences: boolean;
  wrap_packed_sequences: boolean;
  chunk_size: number;
  peft_method: 'lora' | 'qlora';
  seed: number;
  lora_rank: number;
  lora_alpha: number;
  lora_dropout: number;
}

/** Where Replicate's trainer cuts a row, in tokens (its first 4096 kept: docs/replicate-trainer.md). */
export const REPLICATE_MAX_SEQ_LEN = 4096;

export const REPLICATE_INPUT_NAMES: readonly HyperparamName[] = FIELDS.filter((f) => f.group === 'replicate').map((f) => f.name);

export interface ReplicateConversion {
  input: ReplicateTrainingInput;
  /** One line per extra left out, saying why that is harmless. */
  notes: string[];
}

const isUrl = (s: string) => /^https?:\/\/\S+$/i.test(s) || /^data:/i.test(s);

/**
 * Our extras against what Replicate's trainer does (docs/replicate-trainer.md: "<s> text </s>", LoRA on q_proj and v_proj, cut at 4096,
 * warmup 3 % then linear decay, NF4 + double quantisation for qlora). Returns a note (stripped) or a refusal.
 */
function judgeExtra(name: HyperparamName, hp: Hyperparams, defaults: Hyperparams): { note: string } | { refuse: string } {
  switch (name) {
    case 'layout':
      return hp.layout === 'replicate'
        ? { note: 'layout replicate is how Replicate\'s trainer lays rows out anyway; not sent' }
        : { refuse: 'layout instruct: Replicate\'s trainer uses the replicate layout (loss on every token, no [INST] tags added). Write the [INST] tags into your prompts and use layout replicate, or train locally.' };
    case 'lora_target_modules': {
      const t = targetModules(hp).join(',');
      return t === 'q_proj,v_proj'
        ? { note: 'lora_target_modules q_proj,v_proj is what Replicate\'s trainer adapts anyway; not sent' }
        : { refuse: `lora_target_modules ${hp.lora_target_modules}: Replicate\'s trainer puts LoRA on q_proj and v_proj only. Use q_proj,v_proj, or train locally.` };
    }
    case 'padding_free':
      return { note: `padding_free ${hp.padding_free}: how this GPU lays out its batches, not what is trained (Replicate's trainer pads its rows); not sent` };
    case 'max_seq_len':
      return hp.max_seq_len === REPLICATE_MAX_SEQ_LEN
        ? { note: `max_seq_len ${REPLICATE_MAX_SEQ_LEN} is where Replicate's trainer cuts rows anyway; not sent` }
        : { refuse: `max_seq_len ${hp.max_seq_len}: Replicate's trainer always cuts rows at ${REPLICATE_MAX_SEQ_LEN} tokens. Use ${REPLICATE_MAX_SEQ_LEN}, or train locally.` };
    case 'lr_scheduler':
      return hp.lr_scheduler === 'linear'
        ? { note: 'lr_scheduler linear is Replicate\'s schedule (warmup, then linear decay); not sent' }
        : { refuse: `lr_scheduler ${hp.lr_scheduler}: Replicate\'s trainer always decays the learning rate linearly after its warmup. Use linear, or train locally.` };
    case 'warmup_ratio':
      return hp.warmup_ratio === 0.03
        ? { note: 'warmup_ratio 0.03 is Replicate\'s warmup (3 % of the steps); not sent' }
        : { refuse: `warmup_ratio ${hp.warmup_ratio}: Replicate\'s trainer always warms up over 3 % of the steps. Use 0.03, or train locally.` };
    case 'weight_decay':
      return hp.weight_decay === 0
        ? { note: 'weight_decay 0 is Replicate\'s setting; not sent' }
        : { refuse: `weight_decay ${hp.weight_decay}: Replicate\'s trainer has no weight decay input. Use 0, or train locally.` };
    case 'max_grad_norm':
      return hp.max_grad_norm === defaults.max_grad_norm
        ? { note: `max_grad_norm is not an input of Replicate\'s trainer; its own clipping setting applies there (not sent)` }
        : { refuse: `max_grad_norm ${hp.max_grad_norm}: Replicate\'s trainer has no gradient clipping input. Leave it at ${defaults.max_grad_norm}, or train locally.` };
    case 'max_steps':
      return hp.max_steps === 0
        ? { note: 'max_steps: Replicate\'s trainer runs every epoch to the end; not sent' }
        : { refuse: `max_steps ${hp.max_steps}: Replicate\'s trainer has no step limit (it trains num_train_epochs whole epochs). Use 0, or lower num_train_epochs, or train locally.` };
    case 'eval_steps':
      return hp.eval_steps === 0
        ? { note: 'eval_steps: Replicate\'s trainer validates once per epoch; not sent' }
        : { refuse: `eval_steps ${hp.eval_steps}: Replicate\'s trainer validates once per epoch only. Use 0, or train locally.` };
    case 'eval_on_start':
      return { note: `eval_on_start ${hp.eval_on_start}: a validation before training changes no weight, and Replicate's trainer validates after its epochs only; not sent` };
    case 'save_steps':
      return { note: 'save_steps: Replicate returns only the final adapter (training_output.zip); intermediate checkpoints are not sent for' };
    case 'save_every_minutes':
      return { note: 'save_every_minutes: Replicate keeps its own checkpoints and returns only the final adapter; not sent' };
    case 'quantization': {
      const implied = defaultQuantization(hp.peft_method);
      return hp.quantization === implied
        ? { note: `quantization ${hp.quantization} is what peft_method ${hp.peft_method} means on Replicate; not sent` }
        : { refuse: `quantization ${hp.quantization}: with peft_method ${hp.peft_method} Replicate's trainer stores the base as ${implied}. Use ${implied}, or train locally.` };
    }
    default:
      return { note: `${name} is not an input of Replicate's trainer; not sent` };
  }
}

/**
 * The `input` of a Replicate training for these hyperparameters. `files` gives the URLs of the uploaded data
 * (Replicate's POST /files → urls.get), overriding train_data / validation_data. Throws FinetuneError('bad-input')
 * listing every extra Replicate cannot honour.
 */
export function toReplicateInput(hp: Hyperparams, files: { train_data?: string; validation_data?: string } = {}): ReplicateConversion {
  const defaults = defaultHyperparams();
  const notes: string[] = [];
  const refusals: string[] = [];
  for (const f of FIELDS) {
    if (f.group !== 'extra') continue;
    const verdict = judgeExtra(f.name, hp, defaults);
    if ('note' in verdict) notes.push(verdict.note);
    else refusals.push(verdict.refuse);
  }
  const trainData = files.train_data ?? hp.train_data;
  if (!trainData) refusals.push('train_data: Replicate needs the training data as a URL (upload the file first)');
  else if (!isUrl(trainData)) refusals.push(`train_data ${quote(trainData)} is not a URL: Replicate fetches the data itself, so upload the file first`);
  const validationData = files.validation_data ?? hp.validation_data;
  if (validationData !== undefined && !isUrl(validationData)) refusals.push(`validation_data ${quote(validationData)} is not a URL: upload the file first`);
  if (refusals.length > 0) {
    throw new FinetuneError('bad-input', `these settings cannot be sent to Replicate: ${refusals.join(' | ')}`, { refusals });
  }
  const input: ReplicateTrainingInput = {
    train_data: trainData as string,
    num_train_epochs: hp.num_train_epochs,
    train_batch_size: hp.train_batch_size,
    micro_batch_size: hp.micro_batch_size,
    num_validation_samples: hp.num_validation_samples,
    validation_batch_size: hp.validation_batch_size,
    run_validation: hp.run_validation,
    learning_rate: hp.learning_rate,
    pack_sequences: hp.pack_sequences,
    wrap_packed_sequences: hp.wrap_packed_sequences,
    chunk_size: hp.chunk_size,
    peft_method: hp.peft_method,
    seed: hp.seed,
    lora_rank: hp.lora_rank,
    lora_alpha: hp.lora_alpha,
    lora_dropout: hp.lora_dropout,
  };
  if (validationData !== undefined) input.validation_data = validationData;
  if (hp.validation_prompt !== undefined) input.validation_prompt = hp.validation_prompt;
  return { input, notes };
}
