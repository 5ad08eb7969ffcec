// The engine behind comlink: this dedicated worker owns the GPU device; the page only holds a proxy.

import * as Comlink from 'comlink';
import type { AdapterReport } from './engine/adapter.ts';
import { runGoldenCheck, type CheckReport } from './engine/check.ts';
import { FinetuneError } from './engine/errors.ts';
import { GpuContext } from './engine/gpu.ts';
import { checkMatmul, type MatmulCheck } from './engine/selftest.ts';
import { httpSource, urlFileSet } from './model/source.ts';
import { loadDataset, type LoadedDataset } from './data/dataset.ts';
import { exampleLabels, type Layout } from './data/layout.ts';
import { loadTokenizer, type Tokenizer } from './data/tokenizer.ts';
import { installErrorTransfer } from './worker-protocol.ts';

export type ProbeResult = { ok: true; report: AdapterReport } | { ok: false; reason: string };

let context: Promise<GpuContext> | null = null;

function gpuContext(): Promise<GpuContext> {
  const gpu = (self.navigator as Navigator | undefined)?.gpu;
  if (!gpu) return Promise.reject(new FinetuneError('no-webgpu', 'this browser exposes no WebGPU inside workers (navigator.gpu is missing)'));
  context ??= GpuContext.create(gpu).catch((e: unknown) => {
    context = null;
    throw e;
  });
  return context;
}

let tokenizerPromise: Promise<Tokenizer> | null = null;

/** Mistral's SentencePiece model, shipped with the app, loaded once. */
function tokenizer(): Promise<Tokenizer> {
  tokenizerPromise ??= (async () => {
    const res = await fetch(new URL(`${import.meta.env.BASE_URL}tokenizer/tokenizer.model`, self.location.origin));
    if (!res.ok) throw new FinetuneError('bad-input', `could not load the tokenizer (HTTP ${res.status})`);
    return loadTokenizer(new Uint8Array(await res.arrayBuffer()));
  })().catch((e: unknown) => {
    tokenizerPromise = null;
    throw e;
  });
  return tokenizerPromise;
}

export interface EncodedExample {
  line: number;
  ids: number[];
  labels: number[];
}

const api = {
  /** SentencePiece ids of each text (dummy prefix, no BOS/EOS). */
  async tokenize(texts: string[]): Promise<number[][]> {
    const tok = await tokenizer();
    return texts.map((t) => tok.encode(t));
  },

  /**
   * Reads JSONL text through the streaming reader (as a File would be read) and returns each row's ids and loss
   * labels in the given layout, with the dataset summary and every problem.
   */
  async encodeDataset(jsonl: string, layout: Layout): Promise<{ examples: EncodedExample[]; summary: LoadedDataset['summary']; problems: string[] }> {
    const ds = await loadDataset(new Blob([jsonl]).stream(), { tokenizer: await tokenizer(), layout });
    return {
      examples: ds.examples.map((e) => ({ line: e.line, ids: Array.from(e.ids), labels: Array.from(exampleLabels(e)) })),
      summary: ds.summary,
      problems: ds.problems.lines(),
    };
  },

  async probe(): Promise<ProbeResult> {
    try {
      const ctx = await gpuContext();
      return { ok: true, report: ctx.report };
    } catch (e) {
      return { ok: false, reason: (e as Error).message };
    }
  },

  /** Runs the matmul family against the float64 reference on odd shapes (the page's "Check this GPU"). */
  async selfTestMatmul(): Promise<MatmulCheck[]> {
    const ctx = await gpuContext();
    return [await checkMatmul(ctx, 17, 33, 65, 1), await checkMatmul(ctx, 130, 7, 300, 2)];
  },

  /**
   * The whole engine against the PyTorch/PEFT goldens (the page's "Check this GPU against PyTorch"): the tiny model,
   * its adapter and the golden are fetched from /check/… (vite.config.ts serves them). 'nf4' checks QLoRA against
   * golden_qlora, 'none' full precision against golden_lora. Pass the callback wrapped in Comlink.proxy.
   */
  async goldenCheck(quantization: 'nf4' | 'none', onProgress?: (text: string) => void): Promise<CheckReport> {
    if (quantization !== 'nf4' && quantization !== 'none') throw new FinetuneError('bad-input', `unknown quantization ${JSON.stringify(quantization)}`);
    const ctx = await gpuContext();
    const say = (text: string): void => void onProgress?.(text);
    say('fetching the reference model and golden');
    const base = new URL(`${import.meta.env.BASE_URL}check/`, self.location.href).toString();
    return runGoldenCheck(ctx, {
      model: urlFileSet(`${base}tiny-mistral`),
      adapter: urlFileSet(`${base}tiny-adapter`),
      golden: await httpSource(`${base}${quantization === 'nf4' ? 'golden_qlora' : 'golden_lora'}.safetensors`),
      quantization,
      onProgress: say,
    });
  },

  async memory(): Promise<ReturnType<GpuContext['ledger']['snapshot']>> {
    return (await gpuContext()).ledger.snapshot();
  },
};

export type EngineApi = typeof api;

installErrorTransfer();
Comlink.expose(api);
