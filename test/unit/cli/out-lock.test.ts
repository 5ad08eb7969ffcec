// The --out lock of `finetune train`: one writer per folder, a lock left by a dead process taken over at once, the
// holder named in the refusal, and the lock gone after release (and only ours released).
import { spawn } from 'node:child_process';
import { existsSync, mkdtempSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { lockOutFolder, OUT_LOCK_NAME } from '../../../src/cli/out-lock.ts';

const fresh = (): string => join(mkdtempSync(join(tmpdir(), 'out-lock-')), 'out');

describe('lockOutFolder', () => {
  it('refuses a second taker while the first holds the folder, naming the holder; frees it on release', () => {
    const out = fresh();
    const first = lockOutFolder(out, { pid: 4242, host: 'gpu-1', now: new Date('2026-12-02T10:00:00Z'), isAlive: () => true });
    expect(first.note).toBeUndefined();
    expect(JSON.parse(readFileSync(join(out, OUT_LOCK_NAME), 'utf8'))).toEqual({ pid: 4242, host: 'gpu-1', started: '2026-12-02T10:00:00.000Z' });
    expect(() => lockOutFolder(out, { pid: 5000, host: 'gpu-1', isAlive: () => true })).toThrow(
      `"${out}" is being written by finetune train (pid 4242 on gpu-1, started 2026-12-02T10:00:00.000Z): give --out another folder, or wait for it to end (or stop it: kill 4242, and --resume here)`,
    );
    first.release();
    first.release(); // twice is harmless
    expect(existsSync(join(out, OUT_LOCK_NAME))).toBe(false);
    const second = lockOutFolder(out, { pid: 5000, host: 'gpu-1', isAlive: () => true });
    expect(JSON.parse(readFileSync(join(out, OUT_LOCK_NAME), 'utf8')).pid).toBe(5000);
    second.release();
    // Nothing left behind: no temporary or moved-aside files, nor the folder the lock made.
    expect(existsSync(out)).toBe(false);
  });

  it('removes the folder it made when that is still empty at release (a refused run leaves no empty folder)', () => {
    const out = fresh();
    lockOutFolder(out, { pid: 4242, host: 'gpu-1' }).release();
    expect(existsSync(out)).toBe(false);
    const kept = fresh();
    const lock = lockOutFolder(kept, { pid: 4242, host: 'gpu-1' });
    writeFileSync(join(kept, 'run.json'), '{}'); // the run wrote into it
    lock.release();
    expect(readdirSync(kept)).toEqual(['run.json']);
  });

  it('takes over a lock whose process no longer runs, with a note, and leaves no stale file', () => {
    const out = fresh();
    lockOutFolder(out, { pid: 4242, host: 'gpu-1', now: new Date('2026-12-02T10:00:00Z') }); // never released: killed
    const taker = lockOutFolder(out, { pid: 5000, host: 'gpu-1', isAlive: (pid) => pid !== 4242 });
    expect(taker.note).toBe(`"${out}" was locked by finetune train (pid 4242 on gpu-1, started 2026-12-02T10:00:00.000Z), which no longer runs; its lock is replaced`);
    expect(JSON.parse(readFileSync(join(out, OUT_LOCK_NAME), 'utf8')).pid).toBe(5000);
    expect(readdirSync(out)).toEqual([OUT_LOCK_NAME]);
  });

  it('treats a lock with its own pid as an earlier process (a restarted container), not as held', () => {
    const out = fresh();
    lockOutFolder(out, { pid: 1, host: 'box', now: new Date('2026-12-01T00:00:00Z') });
    const again = lockOutFolder(out, { pid: 1, host: 'box', isAlive: () => true });
    expect(again.note).toContain('(pid 1 on box, started 2026-12-01T00:00:00.000Z), which no longer runs');
  });

  it("refuses a lock held on another host (a shared file system), whose process it cannot ask about", () => {
    const out = fresh();
    lockOutFolder(out, { pid: 4242, host: 'gpu-1', isAlive: () => false });
    expect(() => lockOutFolder(out, { pid: 5000, host: 'gpu-2', isAlive: () => false })).toThrow(/is being written by finetune train \(pid 4242 on gpu-1, .*If that process is gone, delete .*\.finetune-train\.lock/);
  });

  it('release leaves a lock that is no longer its own', () => {
    const out = fresh();
    const mine = lockOutFolder(out, { pid: 4242, host: 'gpu-1' });
    const other = JSON.stringify({ pid: 7, host: 'gpu-1', started: '2026-12-02T11:00:00.000Z' });
    writeFileSync(join(out, OUT_LOCK_NAME), other); // replaced by hand, say, after deleting ours
    mine.release();
    expect(readFileSync(join(out, OUT_LOCK_NAME), 'utf8')).toBe(other);
  });

  it('refuses a lock file it cannot read as one, saying what to do', () => {
    const out = fresh();
    lockOutFolder(out, { pid: 4242, host: 'gpu-1' });
    writeFileSync(join(out, OUT_LOCK_NAME), 'garbage');
    expect(() => lockOutFolder(out, { pid: 5000, host: 'gpu-1' })).toThrow(`"${join(out, OUT_LOCK_NAME)}" is not a lock file train wrote; if no finetune train is writing to this folder, delete it`);
  });

  it('asks the real process table: a live child process holds the folder, a finished one does not', async () => {
    const out = fresh();
    const child = spawn(process.execPath, ['-e', 'setTimeout(() => {}, 60000)'], { stdio: 'ignore' });
    const pid = child.pid as number;
    try {
      lockOutFolder(out, { pid, host: 'here' });
      expect(() => lockOutFolder(out, { host: 'here' })).toThrow(`(pid ${pid} on here,`);
    } finally {
      child.kill('SIGKILL');
      await new Promise((resolve) => child.on('exit', resolve));
    }
    expect(lockOutFolder(out, { host: 'here' }).note).toContain(`pid ${pid} on here`);
  });
});
