// The CLI's run folder under real SIGKILLs: a child process writes checkpoints through the store and is killed at
// every step of a checkpoint write (and at random moments of a busy loop); each time the folder must still hold a
// record and a state that belong together, never older than the last checkpoint the child reported done, from which
// the run resumes.
import { spawn } from 'node:child_process';
import { mkdtempSync, readdirSync, readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { folderRunStore } from '../../../src/cli/node-store.ts';
import { commitFakeCheckpoint, readConsistentStep } from '../../helpers/fake-checkpoint.ts';

interface Killed {
  lines: string[];
  /** The last step the child said was committed (0 if none). */
  committed: number;
}

/** Runs the writer; kills it with SIGKILL when `killWhen` says so (or lets it finish). */
function runWriter(dir: string, target: number, killAt: number, values: number, killWhen: (line: string) => number | null): Promise<Killed> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, ['--import', 'tsx', 'test/helpers/store-writer.ts', dir, String(target), String(killAt), String(values)], { stdio: ['ignore', 'pipe', 'pipe'] });
    const lines: string[] = [];
    let stderr = '';
    let pending = '';
    child.stdout.on('data', (chunk: Buffer) => {
      pending += chunk.toString();
      const parts = pending.split('\n');
      pending = parts.pop() ?? '';
      for (const line of parts) {
        lines.push(line);
        const delay = killWhen(line);
        if (delay !== null) setTimeout(() => child.kill('SIGKILL'), delay);
      }
    });
    child.stderr.on('data', (c: Buffer) => (stderr += c.toString()));
    child.on('error', reject);
    child.on('exit', (code, signal) => {
      if (code !== 0 && signal !== 'SIGKILL') return reject(new Error(`writer exited ${code}: ${stderr}`));
      const done = lines.filter((l) => l.startsWith('committed ')).map((l) => Number(l.split(' ')[1]));
      resolve({ lines, committed: done.at(-1) ?? 0 });
    });
  });
}

/** A folder holding step 1 of a run, as a first checkpoint leaves it. */
async function seeded(): Promise<string> {
  const dir = mkdtempSync(join(tmpdir(), 'finetune-store-'));
  await commitFakeCheckpoint(folderRunStore(dir), 1, 256, { train: new TextEncoder().encode('{"text": "rows"}\n'), validation: null });
  return dir;
}

async function inBatches<T>(items: T[], size: number, f: (t: T) => Promise<void>): Promise<void> {
  for (let i = 0; i < items.length; i += size) await Promise.all(items.slice(i, i + size).map(f));
}

describe('CLI run folder under SIGKILL', () => {
  it('a kill at every step of a checkpoint write leaves a consistent pair that resumes', async () => {
    // How many announced points one checkpoint write has (state, run record, pointer; then the clean-up).
    const probe = await runWriter(await seeded(), 2, 0, 256, () => null);
    const points = probe.lines.filter((l) => l.startsWith('point ')).map((l) => l.replace(/^point \d+ /, ''));
    expect(points.length).toBeGreaterThanOrEqual(14);
    expect(points).toContain('rename current.json');

    // Each file's write before its data is in, before its rename and after it; the pointer at every point; the clean-up.
    const chosen = (what: string): boolean => /^(write|rename) /.test(what) || what.endsWith('current.json') || what.startsWith('remove ');
    const phases = points.map((what, i) => ({ killAt: i + 1, what })).filter((p) => chosen(p.what));
    expect(phases.length).toBeGreaterThanOrEqual(9);
    await inBatches(phases, 6, async ({ killAt, what }) => {
      const dir = await seeded();
      const run = await runWriter(dir, 2, killAt, 256, (line) => (line === 'paused' ? 0 : null));
      expect(run.lines, what).toContain('paused');
      const store = folderRunStore(dir);
      const after = await readConsistentStep(store);
      // Step 2 is visible exactly once the pointer has been renamed into place.
      const switched = points.indexOf('rename current.json') + 1 < killAt;
      expect(after.step, what).toBe(switched ? 2 : 1);
      expect(after.train).toContain('rows');
      // Resume: the next checkpoint goes on from the saved step and clears what the killed write left behind.
      await commitFakeCheckpoint(store, after.step + 1, 256);
      expect(await readConsistentStep(store)).toMatchObject({ step: after.step + 1 });
      const named = Object.values((JSON.parse(readFileSync(join(dir, 'current.json'), 'utf8')) as { files: Record<string, string> }).files);
      expect(readdirSync(dir).sort(), what).toEqual(['current.json', ...named].sort());
      expect(named).toHaveLength(3);
    });
  }, 180_000);

  it('kills at random moments of a busy writer lose at most the checkpoint being written, and the run resumes', async () => {
    const dirs = await Promise.all([0, 1, 2].map(() => seeded()));
    await Promise.all(
      dirs.map(async (dir, i) => {
        // 64 k values (256 KB) per state; killed 0–150 ms after its second checkpoint, in the middle of later ones.
        const run = await runWriter(dir, 10_000, 0, 65_536, (line) => (line === 'committed 3' ? Math.floor(((i + 1) * 150) / 3) : null));
        const after = await readConsistentStep(folderRunStore(dir));
        expect(after.step).toBeGreaterThanOrEqual(run.committed);
        expect(after.step).toBeLessThanOrEqual(run.committed + 1);
      }),
    );
    // A fresh process resumes the first folder and finishes the run from where the killed one stopped.
    const before = await readConsistentStep(folderRunStore(dirs[0]));
    const finish = await runWriter(dirs[0], before.step + 2, 0, 256, () => null);
    expect(finish.lines).toContain(`resumed ${before.step}`);
    expect(await readConsistentStep(folderRunStore(dirs[0]))).toMatchObject({ step: before.step + 2 });
  }, 120_000);
});
