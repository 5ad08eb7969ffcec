// Memory of loading training data: a synthetic JSONL of a given size streamed through loadRunData (read, validate,
// tokenise, split, pack, plan: what a training run holds), with the process's memory sampled as it goes. Reports the
// peak and the retained heap and RSS against the file's size, so a regression in how tokenised data is held shows
// up as a ratio. CPU only; the caller supplies the memory sampler (Node: process.memoryUsage; a browser has none
// that is portable).

import { createRng, type Rng } from '../core/prng.ts';
import { parseHyperparams } from '../config/hyperparams.ts';
import { loadRunData } from '../data/training-data.ts';
import type { Tokenizer } from '../data/tokenizer.ts';

export interface MemoryUse {
  heapUsed: number;
  /** Resident set size; 0 where the platform does not say. */
  rss: number;
}

export interface DataBenchOptions {
  /** Size of the synthetic JSONL, in MiB. */
  megabytes: number;
  tokenizer: Tokenizer;
  memory: () => MemoryUse;
  /** Runs a full garbage collection when the runtime offers one (Node with --expose-gc), for a clean baseline. */
  gc?: () => void;
  seed?: number;
}

export interface DataBenchResult {
  bench: 'data';
  fileBytes: number;
  rows: number;
  tokens: number;
  seconds: number;
  /** Highest heap and RSS above the baseline while loading, and their ratio to the file's size. */
  peakHeapBytes: number;
  peakRssBytes: number;
  peakHeapPerFileByte: number;
  peakRssPerFileByte: number;
  /** Heap still held once loaded (after a collection when gc is given): what training keeps for the whole run. */
  heldHeapBytes: number;
  heldHeapPerFileByte: number;
}

// Short English words: rows tokenise at about the rate real instruction data does (≈ 4 bytes per token).
const WORDS = (
  'the of and to in is you that it he was for on are as with his they at be this have from or one had by word but not ' +
  'what all were we when your can said there use an each which she do how their if will up other about out many then ' +
  'them these so some her would make like him into time has look two more write go see number no way could people my ' +
  'than first water been call who oil its now find long down day did get come made may part model train data answer'
).split(' ');

function sentence(rng: Rng, words: number): string {
  const out: string[] = [];
  for (let i = 0; i < words; i++) out.push(WORDS[rng.int(WORDS.length)]);
  return out.join(' ');
}

/** `bytes` of JSONL rows ({"prompt", "completion"}, 8–60 and 16–120 words), in chunks of about 64 KiB. */
export async function* syntheticJsonl(bytes: number, seed: number, onChunk: () => void = () => {}): AsyncGenerator<Uint8Array> {
  const rng = createRng(seed, 0x6461); // 'da'
  const enc = new TextEncoder();
  let produced = 0;
  while (produced < bytes) {
    const lines: string[] = [];
    let size = 0;
    while (size < 65536 && produced + size < bytes) {
      const line = `${JSON.stringify({ prompt: sentence(rng, 8 + rng.int(53)), completion: sentence(rng, 16 + rng.int(105)) })}\n`;
      lines.push(line);
      size += line.length; // ASCII only: characters are bytes
    }
    produced += size;
    yield enc.encode(lines.join(''));
    onChunk();
  }
}

export async function benchData(o: DataBenchOptions): Promise<DataBenchResult> {
  const bytes = Math.round(o.megabytes * 1024 * 1024);
  o.gc?.();
  const base = o.memory();
  let peakHeap = 0;
  let peakRss = 0;
  const sample = (): void => {
    const m = o.memory();
    peakHeap = Math.max(peakHeap, m.heapUsed - base.heapUsed);
    peakRss = Math.max(peakRss, m.rss - base.rss);
  };
  // Replicate's defaults, as `finetune train` would run them (validation held out of the training rows).
  const hp = parseHyperparams({});
  const started = performance.now();
  const run = await loadRunData({ train: syntheticJsonl(bytes, o.seed ?? 1, sample) }, o.tokenizer, hp);
  // The plan of the first epoch is built lazily: build it, as the trainer's first step does.
  run.data.epochSequences(0);
  sample();
  const seconds = (performance.now() - started) / 1000;
  o.gc?.();
  const held = o.memory().heapUsed - base.heapUsed;
  const s = run.train.summary;
  return {
    bench: 'data',
    fileBytes: s.bytes,
    rows: s.rows,
    tokens: s.tokens?.total ?? 0,
    seconds,
    peakHeapBytes: peakHeap,
    peakRssBytes: peakRss,
    peakHeapPerFileByte: peakHeap / s.bytes,
    peakRssPerFileByte: peakRss / s.bytes,
    heldHeapBytes: held,
    heldHeapPerFileByte: held / s.bytes,
  };
}
