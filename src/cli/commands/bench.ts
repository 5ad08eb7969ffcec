import { parseArgs } from 'node:util';
import { FinetuneError } from '../../engine/errors.ts';
import { benchMatmul } from '../../engine/bench/matmul.ts';
import type { Command } from '../command.ts';
import { createNodeContext } from '../node-gpu.ts';

const USAGE = `finetune bench <what> [options]

what:
  matmul     GFLOP/s of each matmul variant next to the plain tiled fp32 product

options:
  --sizes 512,1024,2048,4096   square sizes to run (default: those four on a hardware GPU, 256,512 on SwiftShader)
  --min-ms 300                 time measured per result

Prints one JSON line per result as soon as it is measured.`;

export const benchCommand: Command = {
  name: 'bench',
  summary: 'measure kernels on this machine\'s GPU (one JSON line per result)',
  usage: USAGE,
  async run(args, io) {
    const { values, positionals } = parseArgs({
      args,
      allowPositionals: true,
      options: { sizes: { type: 'string' }, 'min-ms': { type: 'string' } },
    });
    const what = positionals[0];
    if (what !== 'matmul') throw new FinetuneError('bad-input', `bench: unknown benchmark "${what ?? ''}"; expected: matmul`);
    const { ctx, found } = await createNodeContext();
    if (found.note) io.err(`note: ${found.note}`);
    const sizes = values.sizes
      ? values.sizes.split(',').map((s) => {
          const n = Number(s);
          if (!Number.isInteger(n) || n < 1) throw new FinetuneError('bad-input', `--sizes: "${s}" is not a positive integer`);
          return n;
        })
      : ctx.report.software
        ? [256, 512]
        : [512, 1024, 2048, 4096];
    const minMs = values['min-ms'] ? Number(values['min-ms']) : 300;
    io.out(JSON.stringify({ bench: 'adapter', via: found.via, vendor: ctx.report.vendor, architecture: ctx.report.architecture, description: ctx.report.description }));
    for await (const r of benchMatmul(ctx, sizes, minMs)) io.out(JSON.stringify(r));
    ctx.destroyDevice();
    return 0;
  },
};
