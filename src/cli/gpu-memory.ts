// How much memory the GPU of a Node run has, where the machine can say: WebGPU reports no memory size, but on an
// NVIDIA GPU server `nvidia-smi` does. A run told the memory (here, or by --gpu-memory) plans against it: it streams the
// layers when only that fits, and keeps the recomputed layers' attention and whole layers for the backward as far as
// they fit (src/run/kept-layers.ts), which is the fastest mode the memory allows.
//
// Dawn's adapter names neither the GPU nor its PCI slot on NVIDIA (its description is the driver version), so the
// adapter cannot be matched to one of nvidia-smi's lines. So:
// - only an NVIDIA hardware adapter asks nvidia-smi at all;
// - every GPU nvidia-smi lists must have the same total memory (a machine of one kind of GPU), else nothing is
//   assumed and the note says so;
// - the memory planned against is the least free memory among them, so that a GPU other processes already use is
//   never overcommitted, whichever of them Dawn picked.
import { execFile } from 'node:child_process';
import { quote } from '../core/quote.ts';
import { thrownMessage } from '../core/errors.ts';
import { UsageError } from './command.ts';

/** One GPU as `nvidia-smi --query-gpu=name,memory.total,memory.free --format=csv,noheader,nounits` lists it. */
export interface NvidiaSmiGpu {
  name: string;
  totalMiB: number;
  freeMiB: number;
}

/** What is known of the GPU's memory: bytes to plan against (null: unknown) and a line for the user saying why. */
export interface GpuMemoryDetection {
  bytes: number | null;
  note: string;
}

export const NVIDIA_SMI_ARGS = ['--query-gpu=name,memory.total,memory.free', '--format=csv,noheader,nounits'];

const MIB = 1024 ** 2;
const GIB = 1024 ** 3;

/**
 * `--gpu-memory GB` of train, plan, generate and bench, in bytes (undefined: not given). GB as GPU makers count them,
 * 2³⁰ bytes. One parser, so that the commands take and refuse the same values in the same words: train once took
 * 1e308, planned against Infinity bytes, where plan said the typo, and bench took Infinity.
 */
export function parseGpuMemoryFlag(v: string | undefined): number | undefined {
  if (v === undefined) return undefined;
  const gb = Number(v);
  if (!(Number.isFinite(gb) && gb > 0)) throw new UsageError(`--gpu-memory must be a positive number, got ${quote(v)}`);
  // No GPU has a petabyte: a typo (1e308 planned against "Infinity TiB") is said as one.
  if (gb > 1024 * 1024) throw new UsageError(`--gpu-memory is in GB: ${quote(v)} is more than any GPU has`);
  return gb * GIB;
}

/** nvidia-smi's CSV lines, one GPU each; throws on a line that is not `name, total, free` with whole MiB numbers. */
export function parseNvidiaSmi(csv: string): NvidiaSmiGpu[] {
  return csv
    .split('\n')
    .map((l) => l.trim())
    .filter((l) => l !== '')
    .map((line) => {
      // The name may hold commas; the two numbers are the last two fields.
      const m = /^(.*\S)\s*,\s*(\d+)\s*,\s*(\d+)$/.exec(line);
      if (!m || !(Number(m[2]) > 0)) throw new Error(`unexpected nvidia-smi line ${quote(line)}`);
      return { name: m[1], totalMiB: Number(m[2]), freeMiB: Number(m[3]) };
    });
}

/** The memory to plan against from nvidia-smi's GPUs (see the top of this file for the rules). */
export function memoryFromNvidiaSmi(gpus: readonly NvidiaSmiGpu[]): GpuMemoryDetection {
  const gib = (mib: number): string => `${((mib * MIB) / GIB).toFixed(1)} GiB`;
  if (gpus.length === 0) return { bytes: null, note: 'nvidia-smi lists no GPU, so the GPU memory is unknown: give it with --gpu-memory GB' };
  const totals = [...new Set(gpus.map((g) => g.totalMiB))];
  if (totals.length > 1) {
    const list = gpus.map((g) => `${g.name} ${gib(g.totalMiB)}`).join(', ');
    return { bytes: null, note: `nvidia-smi lists GPUs of different sizes (${list}) and WebGPU does not say which one this is: give its memory with --gpu-memory GB` };
  }
  const free = Math.min(...gpus.map((g) => g.freeMiB));
  const which = gpus.length === 1 ? gpus[0].name : `the least free of ${gpus.length} × ${gpus[0].name}`;
  return { bytes: free * MIB, note: `GPU memory from nvidia-smi: ${gib(free)} free of ${gib(totals[0])} (${which}); --gpu-memory GB overrides it` };
}

/** Runs nvidia-smi with the given arguments and resolves with its standard output. */
export type RunNvidiaSmi = (args: readonly string[]) => Promise<string>;

export const runNvidiaSmi: RunNvidiaSmi = (args) =>
  new Promise((resolve, reject) => {
    execFile('nvidia-smi', [...args], { timeout: 10_000, maxBuffer: 1024 * 1024 }, (error, stdout) => (error ? reject(error) : resolve(stdout)));
  });

/**
 * The GPU memory of the adapter a run uses, where the machine can tell: null for adapters nothing is asked about
 * (not NVIDIA, or a software one), else the bytes (or null) with a note for the user.
 */
export async function detectGpuMemory(adapter: { vendor: string; software: boolean }, run: RunNvidiaSmi = runNvidiaSmi): Promise<GpuMemoryDetection | null> {
  if (adapter.software || adapter.vendor.toLowerCase() !== 'nvidia') return null;
  let csv: string;
  try {
    csv = await run(NVIDIA_SMI_ARGS);
  } catch (e) {
    const why = (e as NodeJS.ErrnoException | null)?.code === 'ENOENT' ? 'nvidia-smi is not on PATH' : `nvidia-smi failed (${thrownMessage(e).split('\n')[0]})`;
    return { bytes: null, note: `${why}, so the GPU memory is unknown: give it with --gpu-memory GB` };
  }
  try {
    return memoryFromNvidiaSmi(parseNvidiaSmi(csv));
  } catch (e) {
    return { bytes: null, note: `${thrownMessage(e)}, so the GPU memory is unknown: give it with --gpu-memory GB` };
  }
}
