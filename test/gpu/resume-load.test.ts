// Loading over a network that fails: tiny-mistral served by a real loopback HTTP server with Range support. A connection
// cut in the middle of a shard resumes, and every NF4 weight dequantises to the golden's nf4_dequant/* exactly; a load
// that fails mid-stream leaves the previously loaded model in place and usable, with a 'network' error.
import { readFileSync } from 'node:fs';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { PROJECTIONS } from '../../src/core/mistral.ts';
import { isFinetuneError } from '../../src/core/errors.ts';
import { loadTokenizer } from '../../src/data/tokenizer.ts';
import type { GpuContext } from '../../src/engine/gpu.ts';
import { nf4_dequantize } from '../../src/engine/kernels/nf4.ts';
import { MistralRunner } from '../../src/engine/mistral/model.ts';
import { moduleName, type LoadProgress } from '../../src/engine/mistral/weights.ts';
import { urlFileSet } from '../../src/model/source.ts';
import { FinetuneSession } from '../../src/run/session.ts';
import { readSafetensorsFile } from '../helpers/safetensors-file.ts';
import { startRangeServer, type RangeServer } from '../helpers/range-server.ts';
import { gpuContext } from './context.ts';

const SHARD2 = 'model-00002-of-00003.safetensors';
const SHARD3 = 'model-00003-of-00003.safetensors';

describe('loading over an unreliable network', () => {
  let ctx: GpuContext;
  let server: RangeServer;
  let session: FinetuneSession;
  beforeAll(async () => {
    ctx = await gpuContext();
    server = await startRangeServer('test/fixtures/tiny-mistral');
    session = new FinetuneSession(ctx, await loadTokenizer(new Uint8Array(readFileSync('public/tokenizer/tokenizer.model'))), null);
  });
  afterAll(async () => {
    session.unloadModel();
    await server.close();
  });

  it('a connection cut mid-shard resumes, and every dequantised weight equals the golden exactly', async () => {
    server.cutOnce(SHARD3, 400_003);
    const progress: LoadProgress[] = [];
    const info = await session.loadModel(urlFileSet(server.base, { retryDelayMs: 5 }), 'tiny over http', 'nf4', (p) => progress.push(p));
    expect(info.layers).toBe(2);
    // Progress names its phase, and ends with every byte counted, a rate and no time left.
    expect(new Set(progress.map((p) => p.phase))).toEqual(new Set(['downloading', 'quantising']));
    const last = progress[progress.length - 1];
    expect(last.bytesDone).toBe(last.bytesTotal);
    expect(last.bytesPerSecond).toBeGreaterThan(0);
    expect(last.etaSeconds).toBe(0);
    expect(server.requests.some((r) => r.startsWith(`${SHARD3} bytes=400003-`))).toBe(true);
    const golden = readSafetensorsFile('test/fixtures/golden_qlora.safetensors');
    const w = session.model!;
    let compared = 0;
    for (let l = 0; l < w.dims.L; l++) {
      for (const m of PROJECTIONS) {
        const lin = w.layers[l].linears[m];
        if (lin.kind !== 'nf4') throw new Error(`${m} is not NF4`);
        const out = ctx.createBuffer('dequant', lin.out * lin.in * 4, 'scratch');
        nf4_dequantize(ctx, out, lin.weight);
        const got = await ctx.readF32(out);
        ctx.destroy(out);
        const want = golden.get(`nf4_dequant/${moduleName(l, m)}`)!;
        expect(Buffer.from(got.buffer).equals(Buffer.from(want.bytes))).toBe(true);
        compared++;
      }
    }
    expect(compared).toBe(14);
  });

  it('a load that fails mid-stream keeps the previous model loaded and usable, and says it was the network', async () => {
    const previous = session.model;
    const weightBytes = ctx.ledger.snapshot().byCategory.weights.currentBytes;
    // Shard 2 (lm_head, loaded last) opens fine, then every data read fails as a dropped network would.
    const flaky = (async (u: string | URL | Request, init?: RequestInit): Promise<Response> => {
      const range = new Headers(init?.headers).get('range') ?? '';
      const [, a, b] = /bytes=(\d+)-(\d+)/.exec(range) ?? ['', '0', '0'];
      // The header reads are small; the lm_head tensor (8 MB) is the one big read.
      if (String(u).endsWith(SHARD2) && Number(b) - Number(a) > 65536) throw new TypeError('fetch failed', { cause: new Error('ECONNRESET') });
      return fetch(u, init);
    }) as typeof fetch;
    let error: unknown = null;
    try {
      await session.loadModel(urlFileSet(server.base, { retryDelayMs: 1, retries: 1, fetch: flaky }), 'doomed', 'nf4-double');
    } catch (e) {
      error = e;
    }
    expect(isFinetuneError(error, 'network'), String(error)).toBe(true);
    expect((error as Error).message).toMatch(/ECONNRESET/);
    expect(session.model).toBe(previous);
    expect(session.modelName).toBe('tiny over http');
    expect(ctx.ledger.snapshot().byCategory.weights.currentBytes).toBe(weightBytes);
    // Still usable: a forward pass over it gives a finite loss.
    const runner = new MistralRunner(ctx, session.model!, null, { B: 1, T: 4 });
    try {
      runner.setBatch({ B: 1, T: 4, inputIds: [1, 415, 2936, 9060], targets: [415, 2936, 9060, -100], segmentIds: [1, 1, 1, 1], positionIds: [0, 1, 2, 3] });
      runner.resetLoss();
      runner.evaluate(1 / 3);
      expect(Number.isFinite(await runner.readLoss())).toBe(true);
    } finally {
      runner.destroy();
    }
  });
});
