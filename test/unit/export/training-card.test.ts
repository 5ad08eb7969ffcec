// The export README's "Training" section (src/export/training-card.ts): what it says of the run, and user text that
// cannot break out of its code spans and blocks.
import { describe, expect, it } from 'vitest';
import { codeSpan, fencedBlock, importedTrainingCard, MAX_RESULT_ROWS, remoteTrainingCardLines, trainingCardLines, trainingCardSection, trainingSectionOf, type TrainingSummary } from '../../../src/export/training-card.ts';
import { adapterReadme } from '../../../src/export/peft.ts';
import { createAdapter } from '../../../src/model/lora-adapter.ts';
import { parseMistralConfig } from '../../../src/model/config.ts';
import { mulberry32 } from '../../../src/engine/reference/common.ts';
import { FIELDS, hyperparamRows, parseHyperparams } from '../../../src/config/hyperparams.ts';
import { fixtureJson, TINY_MISTRAL } from '../model/helpers.ts';
import { proseOutsideCode } from '../../helpers/markdown-prose.ts';

const summary = (over: Partial<TrainingSummary> = {}): TrainingSummary => ({
  trainName: 'code.jsonl',
  validationName: null,
  step: 3,
  totalSteps: 3,
  trainRows: 58,
  validationRows: 4,
  hyperparameters: hyperparamRows(parseHyperparams({ learning_rate: 2e-4, validation_prompt: '# add' })),
  history: [
    { step: 1, loss: 3.25 },
    { step: 2, loss: 2.5, valLoss: 2.75, sample: ' def a():' },
    { step: 3, loss: 2.125, valLoss: 2.5, sample: ' def add(a, b):\n    return a + b' },
  ],
  validationPrompt: '# add',
  ...over,
});

describe('the README\'s Training section', () => {
  it('lists the validation before training as the first row, and its sample after the last one, where the run made that pass', () => {
    const text = trainingCardLines(summary({ baseline: { valLoss: 3.0625, sample: ' pass' } })).join('\n');
    expect(text).toContain('| step | training loss | validation loss |\n| --- | --- | --- |\n| 0 (before training) | — | 3.0625 |\n| 2 | 2.5000 | 2.7500 |');
    expect(text).toContain("The adapter's greedy continuation of the validation prompt after step 3:");
    expect(text).toContain('Before training (the base model with the untrained adapter):\n\n```\n# add pass\n```');
    // Without the pass, neither is said.
    const plain = trainingCardLines(summary()).join('\n');
    expect(plain).not.toContain('before training');
    expect(plain).not.toContain('Before training');
  });

  it('says the steps, the data, every hyperparameter (changed ones marked), the losses and the last sample', () => {
    const text = trainingCardLines(summary()).join('\n');
    expect(text).toContain('## Training');
    expect(text).toContain('for 3 optimizer steps on `code.jsonl` (58 training rows), validated on 4 rows held out from it.');
    expect(text).toContain('| learning_rate * | `0.0002` |');
    expect(text).toContain('| lora_rank | `8` |');
    expect(text).toContain('| validation_prompt * | `# add` |');
    // Every hyperparameter but the two files, once each, in the form's order.
    const names = [...text.matchAll(/^\| ([a-z_]+)( \*)? \| `/gm)].map((m) => m[1]);
    expect(names).toEqual(FIELDS.filter((f) => f.type !== 'file').map((f) => f.name));
    expect(names).not.toContain('train_data');
    expect(text).toContain('Training loss at step 3: 2.1250');
    expect(text).toContain('| 2 | 2.5000 | 2.7500 |\n| 3 | 2.1250 | 2.5000 |');
    // The last sample, after its prompt, in a fenced block.
    expect(text).toContain("validation prompt after step 3:\n\n```\n# add def add(a, b):\n    return a + b\n```");
  });

  it('says a stopped run stopped, names a validation file, and says when it started from an imported adapter', () => {
    const text = trainingCardLines(summary({ step: 2, totalSteps: 9, validationName: 'held.jsonl', fromImported: true, history: [] })).join('\n');
    expect(text).toContain('for 2 optimizer steps (stopped at step 2 of the 9 planned)');
    // Exported while the run was paused: it goes on, and did not stop.
    expect(trainingCardLines(summary({ step: 4, totalSteps: 8, paused: true, history: [] })).join('\n')).toContain('for 4 optimizer steps (exported while paused at step 4 of the 8 planned)');
    expect(text).toContain('validated on `held.jsonl` (4 rows).');
    expect(text).toContain('It started from an imported adapter');
    expect(text).not.toContain('### Results');
    expect(text).not.toContain('### Sample');
    expect(trainingCardLines(summary({ validationRows: 0 })).join('\n')).toContain('(58 training rows), without validation.');
  });

  it('lists at most MAX_RESULT_ROWS validations of a long run, the first and the last among them', () => {
    const history = Array.from({ length: 100 }, (_, i) => ({ step: i + 1, loss: 3 - i / 100, valLoss: 3 - i / 90 }));
    const text = trainingCardLines(summary({ step: 100, totalSteps: 100, history })).join('\n');
    const rows = [...text.matchAll(/^\| (\d+) \| /gm)].map((m) => Number(m[1]));
    expect(rows).toHaveLength(MAX_RESULT_ROWS);
    expect(rows[0]).toBe(1);
    expect(rows.at(-1)).toBe(100);
    expect(text).toContain(`(${MAX_RESULT_ROWS} of the 100 validations)`);
  });

  it('keeps user text inside its code span or block: backticks, pipes and newlines', () => {
    expect(codeSpan('a`b``c')).toBe('```a`b``c```');
    expect(codeSpan('`x')).toBe('`` `x ``');
    expect(codeSpan('two\nlines')).toBe('`two lines`');
    expect(fencedBlock('print(1)\n```\nnot a fence')).toEqual(['````', 'print(1)', '```', 'not a fence', '````']);
    const text = trainingCardLines(summary({ trainName: 'we`ird|name.jsonl', hyperparameters: [{ name: 'lora_target_modules', value: 'q_proj|v_proj', isDefault: false }] })).join('\n');
    expect(text).toContain('on ``we`ird|name.jsonl`` (58');
    // A pipe in a table cell is escaped, so the row keeps its two cells.
    expect(text).toContain('| lora_target_modules * | `q_proj\\|v_proj` |');
  });

  // CommonMark ends a line at a lone \r too, and codeSpan flattened only \n and \r\n: a \r in a hyperparameter ended its
  // table row inside the code span, and two in a file name ended the paragraph, the rest read as Markdown and HTML.
  it('keeps user text holding a lone carriage return inside its code span', () => {
    expect(codeSpan('a\rb')).toBe('`a b`');
    const img = '<img src=x onerror=alert(1)>';
    const text = trainingCardLines(
      summary({ trainName: `x\r\r${img}.jsonl`, validationName: `v\r\r${img}.jsonl`, hyperparameters: [{ name: 'validation_prompt', value: `a\r${img}`, isDefault: false }] }),
    ).join('\n');
    expect(proseOutsideCode(text).join('\n')).not.toContain('<img');
    const remote = { id: 'abc123', trainer: null, version: null, seconds: null, completedAt: null, inputs: [{ name: 'prompt', value: `a\r${img}`, isDefault: false }] };
    expect(proseOutsideCode(remoteTrainingCardLines(remote).join('\n')).join('\n')).not.toContain('<img');
  });

  it("ends the adapter's README when the run is known, and is absent for an adapter without one", () => {
    const base = parseMistralConfig(fixtureJson(`${TINY_MISTRAL}/config.json`));
    const adapter = createAdapter(base, { r: 2, alpha: 4, dropout: 0, targetModules: ['q_proj'], baseModel: 'mistralai/Mistral-7B-Instruct-v0.2', random: mulberry32(1) });
    expect(adapterReadme(adapter, { training: { kind: 'local', run: summary() } })).toMatch(/## Training\n[\s\S]*### Sample[\s\S]*```\n$/);
    expect(adapterReadme(adapter)).not.toContain('## Training');
  });

  it('is written from each kind of card: a local run, a Replicate training, a section carried from an imported README', () => {
    const base = parseMistralConfig(fixtureJson(`${TINY_MISTRAL}/config.json`));
    const adapter = createAdapter(base, { r: 2, alpha: 4, dropout: 0, targetModules: ['q_proj'], baseModel: 'mistralai/Mistral-7B-Instruct-v0.2', random: mulberry32(1) });
    expect(trainingCardSection({ kind: 'local', run: summary() })).toEqual(trainingCardLines(summary()));
    const remote = { id: 'abc123', trainer: 'replicate/mistral-7b-instruct', version: 'v1', seconds: 61.4, completedAt: '2026-12-04T10:00:00Z', inputs: [] };
    expect(trainingCardSection({ kind: 'remote', training: remote })).toEqual(remoteTrainingCardLines(remote));
    const carried = '## Training\n\nTrained elsewhere.';
    expect(trainingCardSection({ kind: 'carried', section: carried })).toEqual([carried]);
    // The README ends with the section, whichever kind, after the loading instructions.
    const readme = adapterReadme(adapter, { training: { kind: 'carried', section: carried } });
    expect(readme.endsWith(`\n\n${carried}\n`)).toBe(true);
    expect(readme.indexOf('## PEFT')).toBeLessThan(readme.indexOf('## Training'));
  });
});

describe('importedTrainingCard', () => {
  it("is the Replicate training when there is one, else the README's Training section, else none", () => {
    const remote = { id: 'abc123', trainer: null, version: null, seconds: null, completedAt: null, inputs: [] };
    const readme = '# A\n\n## Training\n\nTrained elsewhere.\n';
    expect(importedTrainingCard(readme, remote)).toEqual({ kind: 'remote', training: remote });
    expect(importedTrainingCard(readme)).toEqual({ kind: 'carried', section: '## Training\n\nTrained elsewhere.' });
    expect(importedTrainingCard('# A\n\nno section\n')).toBeNull();
    expect(importedTrainingCard(null)).toBeNull();
  });
});

describe('trainingSectionOf', () => {
  it('takes a README from its "## Training" heading to its end when nothing follows, trailing blank lines dropped', () => {
    expect(trainingSectionOf('# A\n\n## PEFT\n\ncode\n\n## Training\n\nTrained.\n\n### Results\n\nloss 1\n\n\n')).toBe('## Training\n\nTrained.\n\n### Results\n\nloss 1');
  });

  it('stops at the next heading of level 1 or 2 (a section added after it stays out), not at one inside a fence', () => {
    const readme = ['# A', '', '## Training', '', 'Trained.', '', '### Sample', '', '````', '## not a heading: model output', '```', 'still the sample', '````', '', '## License', '', 'MIT', ''].join('\n');
    expect(trainingSectionOf(readme)).toBe(['## Training', '', 'Trained.', '', '### Sample', '', '````', '## not a heading: model output', '```', 'still the sample', '````'].join('\n'));
    expect(trainingSectionOf('## Training\n\nx\n\n# Appendix\n\ny')).toBe('## Training\n\nx');
    // A ### heading belongs to the section; a fence of tildes is one too.
    expect(trainingSectionOf('## Training\n\n### Inputs\n\n~~~\n## in a fence\n~~~\n')).toBe('## Training\n\n### Inputs\n\n~~~\n## in a fence\n~~~');
    // What our own card writes round-trips whole: its sample is fenced however many backticks it holds.
    const card = ['## Training', '', 'x', '', '### Sample', '', ...fencedBlock('## heading-like\n```code```')].join('\n');
    expect(trainingSectionOf(`# A\n\n${card}\n\n## More\n`)).toBe(card);
  });

  it('finds none in a README without the heading on a line of its own, or in no README', () => {
    expect(trainingSectionOf('# A\n\n## Trainings\n\nx')).toBeNull();
    expect(trainingSectionOf('# A\n\nsee ## Training below')).toBeNull();
    expect(trainingSectionOf('# A\n\n### Training\n')).toBeNull();
    expect(trainingSectionOf(undefined)).toBeNull();
    expect(trainingSectionOf('')).toBeNull();
  });
});
