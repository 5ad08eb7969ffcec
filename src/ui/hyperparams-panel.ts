// The hyperparameter form, generated from the one schema (src/config FIELDS): Replicate's training inputs with their
// exact names and defaults, then ours. Every keystroke is validated with safeParseHyperparams and each message shows
// under each field it names. A changed value shows Replicate's default beside it, with a reset.
//
// Values are kept as typed (strings for numbers) and saved in localStorage, so a reload or an error never loses them.
// The Hugging Face token is not a hyperparameter and is never saved.

import { FIELDS, HYPERPARAM_NAMES, defaultQuantization, hyperparamWarnings, safeParseHyperparams, type FieldMeta, type PeftMethod } from '../config/index.ts';
import { visibleText } from '../core/quote.ts';
import { h, replaceChildren } from './dom.ts';
import { runBusy, type DataFile, type FormState, type Shared } from './state.ts';

const STORAGE_KEY = 'finetune.form.v1';

/**
 * The presets' validation_prompt: the prompt of the sample dataset's last row, held out for validation by both presets,
 * as the replicate layout reads a row up to its completion (the "\n" between them is left to the model).
 */
export const SAMPLE_PROMPT = '# Return True if a path points to an existing directory.';

/** What the page starts with for the demo model and the 62-row sample: a run of a few steps that shows everything. */
export const DEMO_PRESET: Readonly<Record<string, string | boolean>> = {
  num_validation_samples: '6',
  num_train_epochs: '1',
  train_batch_size: '4',
  micro_batch_size: '4',
  lora_target_modules: 'q_proj,v_proj',
  max_seq_len: '256',
  layout: 'replicate',
  // Ten times Replicate's 1e-4, which moves a 20 M-parameter model's validation loss by a few thousandths in 14 steps
  // (3.927 → 3.912 on the sample, measured from the command line): at 1e-3 the same run goes 3.906 → 3.637, which the
  // chart shows as learning.
  learning_rate: '0.001',
  // A checkpoint every 4 of the run's 14 steps, so a reload mid-run can resume (0 would save only at the epoch end).
  save_steps: '4',
  // What the adapter writes after each validation, for a row it never trains on (the sample's last: held out).
  validation_prompt: SAMPLE_PROMPT,
  // The loss and sample before the first step: what the run's curve and samples are read against.
  eval_on_start: true,
};

/**
 * For a software adapter (or a slow GPU): a run of eight short steps on the demo model that finishes in minutes there,
 * with two validations and a checkpoint at each, so every part of the page can be seen working and the loss moving.
 */
export const QUICK_PRESET: Readonly<Record<string, string | boolean>> = {
  num_validation_samples: '4',
  num_train_epochs: '1',
  train_batch_size: '2',
  micro_batch_size: '2',
  learning_rate: '0.002',
  lora_target_modules: 'q_proj,v_proj',
  max_seq_len: '32',
  layout: 'replicate',
  max_steps: '8',
  eval_steps: '4',
  save_steps: '4',
  validation_prompt: SAMPLE_PROMPT,
  eval_on_start: true,
};

/** Whether these hyperparameters already hold the quick preset's values (the page then does not offer it again). */
export function isQuickPreset(hp: Readonly<Record<string, unknown>> | null): boolean {
  return hp !== null && Object.entries(QUICK_PRESET).every(([k, v]) => String(hp[k]) === String(v));
}

/** The form's values for a preset: Replicate's defaults with the preset's values over them. */
export function presetForm(preset: Readonly<Record<string, string | boolean>>): Record<string, string | boolean> {
  return { ...defaultForm(), ...preset };
}

/** The form value of a field at its default (quantization: '' = follow peft_method). */
function defaultRaw(f: FieldMeta): string | boolean {
  if (f.name === 'quantization') return '';
  if (f.type === 'bool') return f.default;
  if (f.default === undefined) return '';
  return String(f.default);
}

export function defaultForm(): Record<string, string | boolean> {
  const raw: Record<string, string | boolean> = {};
  for (const f of FIELDS) if (f.type !== 'file') raw[f.name] = defaultRaw(f);
  return raw;
}

function defaultText(f: FieldMeta): string {
  if (f.name === 'quantization') return 'follows peft_method';
  if (f.default === undefined) return 'empty';
  return String(f.default);
}

/**
 * The fields a message is about: every field name it mentions, in the order it first mentions them ("lora_rank must
 * be …" is lora_rank's; "train_batch_size (4) must be a multiple of micro_batch_size (8)" is both fields').
 */
export function fieldsOfMessage(message: string): string[] {
  const found: { name: string; at: number }[] = [];
  for (const name of HYPERPARAM_NAMES) {
    const m = new RegExp(`(^|[^a-z_])${name}([^a-z_]|$)`).exec(message);
    if (m) found.push({ name, at: m.index });
  }
  return found.sort((a, b) => a.at - b.at).map((f) => f.name);
}

/**
 * The messages by field ('' for those that name none: said above the form). A message that names several fields (a
 * rule between them: the batch sizes, peft_method and quantization) is listed under each of them: it was shown under
 * the first one named alone, so the micro-batch size typed wrong said nothing under itself, and the message stood
 * under the batch size, a screen above on a phone. Under each, it is beside whichever field the person just changed.
 */
export function groupMessages(messages: readonly string[]): Record<string, string[]> {
  const out: Record<string, string[]> = {};
  for (const m of messages) {
    const fields = fieldsOfMessage(m);
    for (const f of fields.length > 0 ? fields : ['']) (out[f] ??= []).push(m);
  }
  return out;
}

/**
 * The input object for safeParseHyperparams / the worker: form strings as typed; optional strings left out when empty.
 * A text with a default (lora_target_modules) stays in when emptied, so the form says it is empty.
 */
export function hyperparamInput(raw: Readonly<Record<string, string | boolean>>): Record<string, unknown> {
  const out: Record<string, unknown> = {};
  for (const f of FIELDS) {
    if (f.type === 'file') continue;
    const v = raw[f.name];
    if (v === undefined) continue;
    if (((f.type === 'string' && f.default === undefined) || f.name === 'quantization') && v === '') continue;
    out[f.name] = v;
  }
  return out;
}

export function formState(raw: Record<string, string | boolean>): FormState {
  const r = safeParseHyperparams(hyperparamInput(raw));
  return r.ok ? { raw, hp: r.value, errors: {} } : { raw, hp: null, errors: groupMessages(r.errors) };
}

function loadSaved(): Record<string, string | boolean> | null {
  try {
    const text = localStorage.getItem(STORAGE_KEY);
    if (!text) return null;
    const saved = JSON.parse(text) as Record<string, unknown>;
    const raw = defaultForm();
    for (const k of Object.keys(raw)) {
      const v = saved[k];
      if (typeof v === 'string' || typeof v === 'boolean') raw[k] = v;
    }
    return raw;
  } catch {
    return null;
  }
}

function save(raw: Record<string, string | boolean>): void {
  try {
    localStorage.setItem(STORAGE_KEY, JSON.stringify(raw));
  } catch {
    // Storage full or refused: the form still works, it just is not remembered.
  }
}

/** The form values the page starts with: the saved ones, or the defaults with the demo preset. */
export function initialForm(): Record<string, string | boolean> {
  return loadSaved() ?? { ...defaultForm(), ...DEMO_PRESET };
}

interface FieldView {
  field: FieldMeta;
  input: HTMLInputElement | HTMLSelectElement | null;
  row: HTMLElement;
  defaultNote: HTMLElement;
  error: HTMLElement;
  warning: HTMLElement;
}

function makeInput(f: FieldMeta): HTMLInputElement | HTMLSelectElement | null {
  switch (f.type) {
    case 'bool':
      return h('input', { type: 'checkbox', id: f.name, name: f.name });
    case 'enum': {
      const options = f.name === 'quantization' ? ['', ...f.choices] : [...f.choices];
      return h('select', { id: f.name, name: f.name }, ...options.map((c) => h('option', { value: c }, c === '' ? 'auto (follows peft_method)' : c)));
    }
    case 'int':
    case 'float':
      return h('input', { type: 'text', id: f.name, name: f.name, inputmode: f.type === 'int' ? 'numeric' : 'decimal', autocomplete: 'off', spellcheck: 'false' });
    case 'string':
      return h('input', { type: 'text', id: f.name, name: f.name, autocomplete: 'off', spellcheck: 'false', placeholder: f.default === undefined ? 'optional' : '' });
    case 'file':
      return null;
  }
}

export function hyperparamsPanel(shared: Shared): { element: HTMLElement; setValues(values: Record<string, string | boolean>): void } {
  const views: FieldView[] = [];
  const general = h('div', { class: 'form-errors', 'data-testid': 'form-errors' });
  const changedCount = h('span', { class: 'hint', 'data-testid': 'changed-count' });

  const commit = (raw: Record<string, string | boolean>): void => {
    save(raw);
    shared.form.set(formState(raw));
  };

  const readInputs = (): Record<string, string | boolean> => {
    const raw = { ...shared.form.value.raw };
    for (const v of views) {
      if (!v.input) continue;
      raw[v.field.name] = v.input instanceof HTMLInputElement && v.input.type === 'checkbox' ? v.input.checked : v.input.value;
    }
    return raw;
  };

  const writeInputs = (raw: Record<string, string | boolean>): void => {
    for (const v of views) {
      if (!v.input) continue;
      const value = raw[v.field.name];
      if (v.input instanceof HTMLInputElement && v.input.type === 'checkbox') v.input.checked = value === true;
      else v.input.value = String(value ?? '');
    }
  };

  for (const f of FIELDS) {
    const input = makeInput(f);
    const defaultNote = h('span', { class: 'default', 'data-testid': `default-${f.name}` });
    const error = h('p', { class: 'field-error', id: `error-${f.name}`, 'data-testid': `error-${f.name}`, role: 'alert' });
    // Legal but doubtful values (learning_rate above 0.1): said beside the field, without blocking the run.
    const warning = h('p', { class: 'field-warning', id: `warning-${f.name}`, 'data-testid': `warning-${f.name}`, role: 'status' });
    // Human words first; Replicate's field name stays visible beneath as the secondary label.
    const nameLine = h('span', { class: 'name' }, f.name);
    // Every field's control has id f.name, the file fields' <output> too: the label names it for assistive technology.
    const label = h('label', { for: f.name, id: `label-${f.name}`, title: f.help }, h('span', { class: 'label' }, f.label), nameLine);
    const help = h('p', { class: 'help', id: `help-${f.name}`, title: f.help }, f.help);
    // The error, warning and help texts are read out with the input they belong to.
    input?.setAttribute('aria-describedby', `error-${f.name} warning-${f.name} help-${f.name}`);
    let control: HTMLElement;
    if (input) {
      input.addEventListener(f.type === 'bool' || f.type === 'enum' ? 'change' : 'input', () => commit(readInputs()));
      if (input instanceof HTMLInputElement && input.type === 'checkbox') {
        // A checkbox has two labels, the card's heading and the words beside the box (both toggle it), and a name made
        // of every label said "Run validation run_validation Run validation". Named by the heading alone, it reads as
        // every other field does ("Micro-batch size micro_batch_size").
        input.setAttribute('aria-labelledby', `label-${f.name}`);
        control = h('label', { class: 'check', for: f.name }, input, h('span', { class: 'hint' }, f.label));
      } else control = input;
    } else {
      // train_data / validation_data: the files picked in the Dataset panel.
      control = h('output', { class: 'file-ref', id: f.name, 'data-testid': `file-${f.name}` }, '—');
    }
    const reset = h('button', { type: 'button', class: 'link', title: `Reset ${f.name} to its default` }, 'reset');
    reset.addEventListener('click', () => {
      const raw = { ...shared.form.value.raw, [f.name]: defaultRaw(f) };
      writeInputs(raw);
      commit(raw);
    });
    const row = h(
      'div',
      { class: `field field-${f.type}`, 'data-field': f.name },
      label,
      control,
      h('div', { class: 'meta' }, defaultNote, input ? reset : null),
      help,
      error,
      warning,
    );
    views.push({ field: f, input, row, defaultNote, error, warning });
  }

  const fieldset = h(
    'fieldset',
    { class: 'hp-form' },
    h('h3', {}, "Replicate's training inputs"),
    h('div', { class: 'fields' }, ...views.filter((v) => v.field.group === 'replicate').map((v) => v.row)),
    h('h3', {}, 'Ours'),
    h('p', { class: 'hint' }, 'Not inputs of Replicate’s trainer: each one’s default trains what that trainer trains (padding_free only lays the batches out without most of their padding).'),
    h('div', { class: 'fields' }, ...views.filter((v) => v.field.group === 'extra').map((v) => v.row)),
  );

  const demoButton = h('button', { type: 'button', class: 'secondary', 'data-testid': 'preset-demo' }, 'Demo preset');
  const defaultsButton = h('button', { type: 'button', class: 'secondary', 'data-testid': 'preset-defaults' }, 'Replicate’s defaults');
  demoButton.addEventListener('click', () => {
    const raw = { ...defaultForm(), ...DEMO_PRESET };
    writeInputs(raw);
    commit(raw);
  });
  defaultsButton.addEventListener('click', () => {
    const raw = defaultForm();
    writeInputs(raw);
    commit(raw);
  });

  const render = (): void => {
    const form = shared.form.value;
    const plan = shared.plan.value;
    // The form's own messages, then those the worker gave when it planned the run against the data.
    const errors: Record<string, string[]> = {};
    for (const [k, list] of Object.entries(form.errors)) errors[k] = [...list];
    if (plan.status === 'error' && plan.error?.kind === 'bad-input') {
      for (const [k, list] of Object.entries(groupMessages(plan.error.messages))) (errors[k] ??= []).push(...list);
    }
    const warnings = form.hp ? groupMessages(hyperparamWarnings(form.hp)) : {};
    let changed = 0;
    for (const v of views) {
      const f = v.field;
      const messages = errors[f.name] ?? [];
      replaceChildren(v.error, ...messages.flatMap((m, i) => [i > 0 ? h('br') : null, m]));
      v.row.classList.toggle('invalid', messages.length > 0);
      v.warning.textContent = (warnings[f.name] ?? []).join(' ');
      if (v.input) v.input.setAttribute('aria-invalid', String(messages.length > 0));
      const isChanged = v.input !== null && form.raw[f.name] !== defaultRaw(f);
      if (isChanged) changed++;
      v.row.classList.toggle('changed', isChanged);
      v.defaultNote.textContent = isChanged ? `default ${defaultText(f)}` : '';
    }
    const rest = errors[''] ?? [];
    replaceChildren(general, ...rest.map((m) => h('p', { class: 'bad' }, m)));
    changedCount.textContent = changed === 0 ? 'all at Replicate’s defaults' : `${changed} changed from Replicate’s defaults`;
  };
  shared.form.watch(render);
  shared.plan.watch(render);

  shared.data.watch((data) => {
    for (const v of views) {
      if (v.field.type !== 'file') continue;
      const f = v.field.name === 'train_data' ? data.train : data.validation;
      const out = v.row.querySelector('output');
      if (out) out.textContent = fileRefText(v.field.name, f);
    }
  });

  shared.run.watch((run) => {
    fieldset.disabled = runBusy(run.phase);
    demoButton.disabled = defaultsButton.disabled = runBusy(run.phase);
  });

  writeInputs(shared.form.value.raw);

  const element = h(
    'section',
    { class: 'panel wide', id: 'panel-hyperparams' },
    h('h2', {}, 'Hyperparameters'),
    h(
      'div',
      { class: 'toolbar' },
      h('p', { class: 'hint' }, 'Replicate’s names and defaults (its mistral-7b-instruct-v0.2 trainer), then ours. A changed value shows the default beside it.'),
      h('div', { class: 'buttons' }, changedCount, demoButton, defaultsButton),
    ),
    general,
    fieldset,
  );
  return {
    element,
    setValues(values) {
      const raw = { ...shared.form.value.raw, ...values };
      writeInputs(raw);
      commit(raw);
    },
  };
}

/** Form values from a saved run's hyperparameters (numbers and booleans as the form shows them). */
/**
 * What a file field (train_data, validation_data) shows: the file picked in the Dataset panel, its name with
 * visibleText's escapes (a bidirectional control in it would show the name reordered), or what to do.
 */
export function fileRefText(field: string, f: DataFile | null): string {
  return f ? visibleText(f.file.name) : field === 'train_data' ? 'choose a file in Dataset' : 'none (held out from the training data)';
}

export function formValuesOf(hp: Readonly<Record<string, unknown>>): Record<string, string | boolean> {
  const out: Record<string, string | boolean> = {};
  for (const f of FIELDS) {
    if (f.type === 'file') continue;
    const v = hp[f.name];
    if (v === undefined || v === null) out[f.name] = f.type === 'bool' ? Boolean(f.default) : '';
    else out[f.name] = typeof v === 'boolean' ? v : String(v);
  }
  // The quantization peft_method implies is shown as "auto".
  if (hp.peft_method === 'lora' || hp.peft_method === 'qlora') {
    if (out.quantization === defaultQuantization(hp.peft_method as PeftMethod)) out.quantization = '';
  }
  return out;
}
