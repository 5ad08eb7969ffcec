// `finetune bench clamps` in Node: runs `finetune bench spirv` in a child process and reads what it and its Dawn print
// (src/bench/clamps.ts). A child, because Dawn's dump_shaders output goes from C++ straight to file descriptor 1,
// which the process that compiles cannot read back.

import { spawn } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { clampsFromDump, type ClampsResult } from '../bench/clamps.ts';

/** `--no-robustness` passed on when robustness is false. Rejects with the end of the child's error output on failure. */
export function auditClamps(o: { robustness?: boolean } = {}): Promise<{ results: ClampsResult[]; pipelines: number }> {
  const bin = fileURLToPath(new URL('../../bin/finetune.mjs', import.meta.url));
  const argv = [bin, 'bench', 'spirv', ...(o.robustness === false ? ['--no-robustness'] : [])];
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, argv, { stdio: ['ignore', 'pipe', 'pipe'] });
    const stdout: Buffer[] = [];
    const stderr: Buffer[] = [];
    child.stdout.on('data', (c: Buffer) => stdout.push(c));
    child.stderr.on('data', (c: Buffer) => stderr.push(c));
    child.on('error', reject);
    child.on('close', (code) => {
      const text = Buffer.concat(stdout).toString('utf8');
      if (code !== 0) {
        reject(new Error(`finetune bench spirv exited with ${code}: ${Buffer.concat(stderr).toString('utf8').slice(-2000)}`));
        return;
      }
      resolve(clampsFromDump(text));
    });
  });
}
