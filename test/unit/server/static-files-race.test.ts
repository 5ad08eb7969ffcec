// `npm run serve`'s static files while the folder changes under them. A path inside the folder that another process
// turns into a symbolic link to a file outside it, and back, many times a millisecond: the server checked where the
// path led, then opened it by name, so an answer could carry the bytes the link led to between the two. And a file that
// vanishes or cannot be read once checked is a refusal or a cut answer, never a server that dies.
import { execFileSync, spawn, type ChildProcess } from 'node:child_process';
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { serveStatic } from '../../../src/server/static-files.ts';
import { listen, type Loopback } from '../../helpers/loopback.ts';

const SECRET = 'SECRET-BYTES-OUTSIDE-THE-ROOT';
// Of one length: a size read from one and bytes from the other would not show as a cut answer.
const INSIDE = 'inside-the-root-served-freely';

let base: string;
let root: string;
let server: Loopback;
/** The same files served as on a system whose kernel does not name open files (no /proc/self/fd). */
let withoutProc: Loopback;
const errors: unknown[] = [];
const onError = (e: unknown): void => void errors.push(e);

beforeAll(async () => {
  base = mkdtempSync(join(tmpdir(), 'finetune-static-race-'));
  root = join(base, 'www');
  mkdirSync(root);
  writeFileSync(join(base, 'secret.txt'), SECRET);
  writeFileSync(join(root, 'pristine.txt'), INSIDE);
  writeFileSync(join(root, 'race.txt'), INSIDE);
  server = await listen(serveStatic(root));
  withoutProc = await listen(serveStatic(root, { fdLinks: join(base, 'no-such-folder') }));
  process.on('uncaughtException', onError);
});
afterAll(async () => {
  process.off('uncaughtException', onError);
  await server.close();
  await withoutProc.close();
  rmSync(base, { recursive: true, force: true });
});

/** What a churning process puts at its name in turn: a hard link to a file, a symbolic link, or nothing. */
type Turn = { link: string } | { symlink: string } | 'remove';

/**
 * A process that, in a loop, puts each turn's entry at `root/name`: made under a name of its own and renamed over
 * `name` (atomic: the name always leads somewhere, except at a 'remove'). Resolves once it has gone round once: a
 * process started on a busy machine once took longer than the requests that were to race it (a CI run).
 */
async function churn(name: string, turns: Turn[]): Promise<ChildProcess> {
  const script = `
    const fs = require('node:fs'); const path = require('node:path');
    const [root, name, turns] = [process.argv[1], process.argv[2], JSON.parse(process.argv[3])];
    const at = path.join(root, name), tmp = path.join(root, '.' + name + '.next');
    const pause = new Int32Array(new SharedArrayBuffer(4));
    for (let round = 0; ; round++) {
      for (const t of turns) {
        Atomics.wait(pause, 0, 0, 0.1); // 0.1 ms a turn: a request's few file calls still meet changes, and the server has its core
        if (t === 'remove') { try { fs.unlinkSync(at); } catch {} continue; }
        try { fs.unlinkSync(tmp); } catch {}
        if (t.link) fs.linkSync(t.link, tmp); else fs.symlinkSync(t.symlink, tmp);
        fs.renameSync(tmp, at);
      }
      if (round === 0) fs.writeSync(1, 'ready\\n');
    }`;
  const child = spawn(process.execPath, ['-e', script, root, name, JSON.stringify(turns)], { stdio: ['ignore', 'pipe', 'inherit'] });
  await new Promise<void>((resolve, reject) => {
    child.stdout?.once('data', () => resolve());
    child.once('exit', (code) => reject(new Error(`the churning process ended (exit ${code}) before it went round once`)));
  });
  return child;
}

/**
 * Requests `name` 16 at a time while `name` churns, until `want` answers came with bytes and at least one was refused
 * (both sides of the race were met), or 60 s pass. Each request is cut after 5 s: one the server never answers fails.
 */
async function hammer(name: string, turns: Turn[], want: number, at: Loopback = server): Promise<{ bodies: string[]; statuses: Set<number> }> {
  const child = await churn(name, turns);
  const bodies: string[] = [];
  const statuses = new Set<number>();
  const deadline = Date.now() + 60_000;
  try {
    while ((bodies.length < want || statuses.size < 2) && Date.now() < deadline) {
      const answers = await Promise.all(
        Array.from({ length: 16 }, async () => {
          const r = await fetch(`${at.url}/${name}`, { signal: AbortSignal.timeout(5000) });
          return { status: r.status, text: await r.text() };
        }),
      );
      for (const a of answers) {
        statuses.add(a.status);
        if (a.status === 200) bodies.push(a.text);
      }
    }
  } finally {
    child.kill('SIGKILL');
  }
  return { bodies, statuses };
}

/** The file inside, put back three times in a row (each a rename over the name). */
const fileThrice = (): Turn[] => [0, 1, 2].map(() => ({ link: join(root, 'pristine.txt') }));

describe('static files while the folder changes', () => {
  // Through /proc/self/fd, and the way taken where the kernel does not name open files (the device and inode compared).
  it.each([
    ['never serves the file a link swapped in after the check points to', 'race.txt', () => server],
    ['never serves it either where the kernel does not name open files (the device and inode are compared)', 'race2.txt', () => withoutProc],
  ] as const)('%s', async (_, name, at) => {
    // A copy of the file inside, then a link to the secret beside the root. Three turns in four the file: a name
    // looked at more than once must be the file each time to be served.
    const { bodies, statuses } = await hammer(name, [...fileThrice(), { symlink: join(base, 'secret.txt') }], 1000, at());
    // Served often enough, and refused too: the race was run (a refusal every time would also never leak).
    expect(bodies.length).toBeGreaterThanOrEqual(1000);
    expect([...statuses].sort()).toEqual([200, 404]);
    expect(bodies.filter((b) => b.includes(SECRET)).length).toBe(0);
    expect(new Set(bodies)).toEqual(new Set([INSIDE]));
    expect(errors).toEqual([]);
  }, 120_000);

  it('a file that vanishes once found is a 404 or its bytes, and the server goes on', async () => {
    // Before the change, a request whose handler had thrown was never answered.
    const { bodies, statuses } = await hammer('gone.txt', [...fileThrice(), 'remove'], 500);
    expect(errors).toEqual([]);
    expect([...statuses].sort()).toEqual([200, 404]);
    expect(new Set(bodies)).toEqual(new Set([INSIDE]));
    expect(await (await fetch(`${server.url}/pristine.txt`)).text()).toBe(INSIDE);
  }, 120_000);

  it('a named pipe swapped in for a file does not hold the server: each answer is the file or a 404', async () => {
    // pipe.txt: a copy of the file inside, then a named pipe no one writes to. Before the change, the server's open of
    // the pipe never returned.
    execFileSync('mkfifo', [join(root, '.fifo')]);
    const { bodies, statuses } = await hammer('pipe.txt', [...fileThrice(), { link: join(root, '.fifo') }], 500);
    expect([...statuses].sort()).toEqual([200, 404]);
    expect(new Set(bodies)).toEqual(new Set([INSIDE]));
    expect(errors).toEqual([]);
  }, 120_000);
});
