// The session's generation as the page and the CLI drive it: validation_prompt samples arrive at each validation of a
// run; a streamed generation stops on request between tokens or the parts of its prompt; base model and adapter are
// told apart.
import { readFileSync } from 'node:fs';
import { beforeAll, describe, expect, it } from 'vitest';
import { nodeDirectory } from '../../src/cli/node-source.ts';
import { loadTokenizer, type Tokenizer } from '../../src/data/tokenizer.ts';
import type { GpuContext } from '../../src/engine/gpu.ts';
import { generate, type GenerationResult, type StreamedToken } from '../../src/run/generate.ts';
import { createAdapter, type LoraAdapter } from '../../src/model/lora-adapter.ts';
import { uniformSource } from '../../src/core/prng.ts';
import { FinetuneSession, memoryRunStore, type ModelInfo, type TrainEvent } from '../../src/run/session.ts';
import { gpuContext } from './context.ts';

// One training row and one validation row: one step, one validation (SwiftShader time).
const ROWS = ['def add(a, b):\n    return a + b', 'print("hi")'];
const JSONL = ROWS.map((text) => JSON.stringify({ text })).join('\n');
const HP = {
  num_train_epochs: 1,
  train_batch_size: 1,
  micro_batch_size: 1,
  num_validation_samples: 1,
  lora_rank: 2,
  lora_alpha: 4,
  learning_rate: 1e-3,
  max_seq_len: 24,
  peft_method: 'lora',
  validation_prompt: 'def',
};

describe('session generation', () => {
  let ctx: GpuContext;
  let session: FinetuneSession;
  let tok: Tokenizer;
  beforeAll(async () => {
    ctx = await gpuContext();
    tok = await loadTokenizer(new Uint8Array(readFileSync('public/tokenizer/tokenizer.model')));
    session = new FinetuneSession(ctx, tok, null);
    await session.loadModel(nodeDirectory('test/fixtures/tiny-mistral'), 'tiny-mistral', 'none');
  });

  it('emits a validation_prompt sample after each validation of a run, and keeps it with its step in the saved run', async () => {
    const events: TrainEvent[] = [];
    const session = new FinetuneSession(ctx, tok, memoryRunStore());
    await session.loadModel(nodeDirectory('test/fixtures/tiny-mistral'), 'tiny-mistral', 'none');
    await session.train(HP, { train: new Blob([JSONL]), trainName: 'rows.jsonl', validation: null, validationName: null }, (e) => events.push(e), { sampleMaxTokens: 2 });
    const evals = events.flatMap((e, i) => (e.type === 'eval' ? [i] : []));
    expect(evals.length).toBeGreaterThan(0);
    for (const i of evals) {
      const e = events[i] as { step: number };
      // Said before it is written (seconds with the step counter standing still), then shown.
      expect(events[i + 1]).toEqual({ type: 'status', text: `writing a sample for the validation prompt after step ${e.step}…` });
      expect(events[i + 2]).toMatchObject({ type: 'sample', step: e.step, prompt: 'def' });
      expect((events[i + 2] as { text: string }).text.length).toBeGreaterThan(0);
    }
    expect(events.filter((e) => e.type === 'sample')).toHaveLength(evals.length);
    // The run's one pass, done to its end, leaves its sample to write: the ETA prices it at that pass's rate per token
    // (the prompt with its BOS and the 2 new tokens asked), where it used to say 0 s left (RunTimer.afterPass).
    const plan = events.find((e) => e.type === 'plan')!;
    const end = events.filter((e) => e.type === 'validating').at(-1)!;
    expect(evals).toHaveLength(1);
    expect(end.done).toBe(end.passes);
    expect(end.etaSeconds).toBeGreaterThan(0);
    expect(end.etaSeconds).toBeCloseTo(((1 + tok.encode('def').length + 2) * end.seconds) / plan.stats.validation.paddedTokens, 9);
    // The checkpoint after the pass holds the sample in its step's history entry (the page shows it after a reload).
    const saved = await session.savedRun();
    const sample = events.find((e) => e.type === 'sample') as { step: number; text: string };
    expect(saved?.history.find((h) => h.step === sample.step)?.sample).toBe(sample.text);
  });

  it('under the instruct layout, samples the validation prompt in [INST] tags, as the run laid out its rows', async () => {
    const rows = [
      { prompt: 'Add two numbers.', completion: 'def add(a, b):\n    return a + b' },
      { prompt: 'Say hi.', completion: 'print("hi")' },
    ];
    const events: TrainEvent[] = [];
    await session.train({ ...HP, layout: 'instruct' }, { train: new Blob([rows.map((r) => JSON.stringify(r)).join('\n')]), trainName: 'rows.jsonl', validation: null, validationName: null }, (e) => events.push(e), { sampleMaxTokens: 4 });
    const samples = events.filter((e) => e.type === 'sample') as { step: number; prompt: string; text: string }[];
    expect(samples).toHaveLength(1);
    expect(samples[0].prompt).toBe('def');
    // The run ended at the step it sampled after: its adapter now is the one the sample was written with. Continued as
    // written, the prompt in its tags gives the same greedy tokens (bare, the sample read a prompt the run never saw).
    expect(samples[0].text).toBe(await session.generate('[INST] def [/INST]', 4));
  });

  it("a run's Stop ends the validation prompt's sample at once, and no cut-off sample is shown", async () => {
    const events: TrainEvent[] = [];
    const result = await session.train(HP, { train: new Blob([JSONL]), trainName: 'rows.jsonl', validation: null, validationName: null }, (e) => {
      events.push(e);
      if (e.type === 'eval') session.stop(); // during the sample that follows the validation
    }, { sampleMaxTokens: 40 });
    expect(events.some((e) => e.type === 'eval')).toBe(true);
    expect(events.filter((e) => e.type === 'sample')).toEqual([]);
    // That was the last step's validation: with every step and it done, nothing is left to resume. Finished.
    expect(result).toMatchObject({ steps: 1, stopped: false });
    expect(result.finalValLoss).not.toBeNull();
  });

  /**
   * A run of HP with a six-token sample after its validation: its events, when the validation has been seen (after
   * which, with `pauseAtEval`, the run was asked to pause: during the sample that follows), and its end.
   */
  const sampledRun = (pauseAtEval: boolean): { events: TrainEvent[]; evalSeen: Promise<void>; done: ReturnType<FinetuneSession['train']> } => {
    const events: TrainEvent[] = [];
    let sawEval!: () => void;
    const evalSeen = new Promise<void>((resolve) => (sawEval = resolve));
    const done = session.train(HP, { train: new Blob([JSONL]), trainName: 'rows.jsonl', validation: null, validationName: null }, (e) => {
      events.push(e);
      if (e.type === 'eval') {
        if (pauseAtEval) session.pause();
        sawEval();
      }
    }, { sampleMaxTokens: 6 });
    return { events, evalSeen, done };
  };

  it("a run's Pause holds the validation prompt's sample between tokens; Resume finishes it with the same text", async () => {
    const plain = sampledRun(false);
    await plain.done;
    const unpaused = plain.events.find((e) => e.type === 'sample') as { text: string };

    const paused = sampledRun(true);
    await paused.evalSeen;
    let settled = false;
    void paused.done.then(() => (settled = true));
    // Six tokens of this model take well under a second here; paused, none of them may come in these three.
    await new Promise((resolve) => setTimeout(resolve, 3000));
    expect(paused.events.filter((e) => e.type === 'sample')).toEqual([]);
    // The page is told when the pause took effect (it says "Pausing…" until then).
    expect(paused.events.filter((e) => e.type === 'paused')).toEqual([{ type: 'paused', step: 1 }]);
    expect(settled).toBe(false);
    expect(session.isPaused).toBe(true);
    session.resume();
    await paused.done;
    const after = paused.events.find((e) => e.type === 'sample') as { text: string };
    expect(after.text).toBe(unpaused.text);
  });

  it('a Pause asked while a Resume waits for the adapter\'s readers keeps the run paused', async () => {
    const { events, evalSeen, done } = sampledRun(true);
    await evalSeen;
    await new Promise((resolve) => setTimeout(resolve, 500));
    expect(session.isPaused).toBe(true);
    // Resume waits for what reads the adapter (weightsReleased) before it lets the run go; the page may send Pause again
    // meanwhile (a second click, another control): the later request wins.
    const resumed = session.resume();
    session.pause();
    await resumed;
    await new Promise((resolve) => setTimeout(resolve, 2000));
    expect(session.isPaused).toBe(true);
    expect(events.filter((e) => e.type === 'sample')).toEqual([]);
    session.resume();
    await expect(done).resolves.toMatchObject({ steps: 1, stopped: false });
    expect(events.filter((e) => e.type === 'sample')).toHaveLength(1);
  });

  it('streams tokens, stops between them on request, and runs with or without the adapter', async () => {
    const seen: StreamedToken[] = [];
    const r = await session.generateStream('def', { maxNewTokens: 6 }, (t) => {
      seen.push(t);
      if (seen.length === 2) session.stopGeneration();
    });
    expect(r.ids).toHaveLength(2);
    expect(r.stopReason).toBe('stopped');
    expect(r.adapter).toBe(true);
    expect(seen.map((t) => t.id)).toEqual(r.ids);
    const withAdapter = await session.generateStream('def', { maxNewTokens: 3 });
    const base = await session.generateStream('def', { maxNewTokens: 3, useAdapter: false });
    expect(base.adapter).toBe(false);
    expect(withAdapter.adapter).toBe(true);
    // The continuation of 'def' as text: decoded after the prompt's last token (a leading space is kept).
    const last = tok.encode('def').at(-1)!;
    expect(withAdapter.text).toBe(tok.decode([last, ...withAdapter.ids]).slice(tok.decode([last]).length));
    expect(withAdapter.text.length).toBeGreaterThan(0);
    expect(withAdapter.ids.slice(0, 2)).toEqual(r.ids);
    // useAdapter: false is the base model's own continuation (one training step barely moves this model's argmax, so
    // the two may agree: the engine tests show the adapter changing the logits).
    const ids = [tok.bosId, ...tok.encode('def')];
    expect(base.ids).toEqual((await generate(ctx, session.model!, null, ids, { maxNewTokens: 3, eosId: tok.eosId })).ids);
    expect(await session.generate('def', 3)).toBe(withAdapter.text);
  });

  it("stops while a long prompt is read: Stop is heard between the prompt's parts", async () => {
    const reads: number[] = [];
    // Longer than a part on any adapter (8 rows on a software one, 128 on a GPU).
    const r = await session.generateStream('x = 1\n'.repeat(40), { maxNewTokens: 4 }, undefined, (read, total) => {
      reads.push(read);
      expect(read).toBeLessThan(total); // stopped before the prompt's end
      if (read > 0) session.stopGeneration(); // (0, total) says the reading starts; the first part follows
    });
    expect(reads).toHaveLength(2);
    expect(reads[0]).toBe(0);
    expect(r.stopReason).toBe('stopped');
    expect(r.ids).toEqual([]);
    // More new tokens than the page and the CLI allow is refused here too, before any GPU work.
    await expect(session.generateStream('def', { maxNewTokens: 4097 })).rejects.toThrow('new tokens must be a whole number from 1 to 4,096, got 4097');
    // The next generation is not stopped by the last one's flag.
    expect((await session.generateStream('def', { maxNewTokens: 2 })).ids).toHaveLength(2);
  });

  it('loading another model during a generation stops it at a token and waits for it; both succeed and the new model generates', async () => {
    const model = nodeDirectory('test/fixtures/tiny-mistral');
    const tokens: StreamedToken[] = [];
    let loading: Promise<ModelInfo> | undefined;
    const phases: (string | undefined)[] = [];
    // The load starts once tokens come: it used to free the weights under the next token ("used in submit while destroyed").
    const going = session.generateStream('def', { maxNewTokens: 200 }, (t) => {
      tokens.push(t);
      if (tokens.length === 3) loading = session.loadModel(model, 'tiny-mistral', 'none', (p) => void phases.push(p.phase), { streamLayers: true });
    });
    const r = await going;
    expect(loading).toBeDefined();
    expect((await loading)?.streamedLayers).toBe(true);
    // Its weights on the GPU, the load said that it waited for the generation (the page shows it under the full bar).
    expect(phases.at(-1)).toBe('waiting');
    expect(phases.filter((p) => p === 'waiting')).toHaveLength(1);
    expect(r.stopReason).toBe('stopped');
    expect(r.ids.length).toBeLessThan(200);
    expect(r.ids.length).toBeGreaterThanOrEqual(3);
    const again = await session.generateStream('def', { maxNewTokens: 4 });
    expect(again.ids).toHaveLength(4);
    // Back to the resident model for the tests after this one; with nothing going on, no wait is said.
    phases.length = 0;
    await session.loadModel(model, 'tiny-mistral', 'none', (p) => void phases.push(p.phase));
    expect(phases.length).toBeGreaterThan(0);
    expect(phases).not.toContain('waiting');
  });

  it('an adapter imported, or a run started, during a generation stops it at a token and waits for it; both succeed', async () => {
    const fresh = (seed: number): LoraAdapter =>
      createAdapter(session.baseConfig, { r: 2, alpha: 4, dropout: 0, targetModules: ['q_proj', 'v_proj'], baseModel: 'tiny-mistral', random: uniformSource(seed, 0) });
    await session.useImportedAdapter(fresh(1));
    // Each starts once tokens come: it used to free the adapter under the next token ("used in submit while destroyed").
    const during = async (start: () => Promise<unknown>): Promise<GenerationResult & { adapter: boolean }> => {
      let started: Promise<unknown> | undefined;
      const r = await session.generateStream('def', { maxNewTokens: 200 }, () => void (started ??= start()));
      expect(started).toBeDefined();
      await started;
      expect(r.adapter).toBe(true);
      expect(r.stopReason).toBe('stopped');
      expect(r.ids.length).toBeLessThan(200);
      return r;
    };
    const second = fresh(2);
    await during(() => session.useImportedAdapter(second));
    expect(await session.adapterNow()).toEqual(second);
    const events: TrainEvent[] = [];
    await during(() => session.train(HP, { train: new Blob([JSONL]), trainName: 'rows.jsonl', validation: null, validationName: null }, (e) => void events.push(e)));
    expect(events.filter((e) => e.type === 'step')).toHaveLength(1);
  });
});
