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
  process.on('uncaughtException', onError);
});
afterAll(async () => {
  process.off('uncaughtException', onError);
  await server.close();
  rmSync(base, { recursive: true, force: true });
});

/** What a churning process puts at its name in turn: a hard link to a file, a symbolic link, or nothing. */
type Turn = { link: string } | { symlink: string } | 'remove';

/**
 * A process that, in a loop, puts each turn's entry at `root/name`: made under a name of its own and renamed over
 * `name` (atomic: the name always leads somewhere, except at a 'remove').
 */
function churn(name: string, turns: Turn[]): ChildProcess {
  const script = `
    const fs = require('node:fs'); const path = require('node:path');
    const [root, name, turns] = [process.argv[1], process.argv[2], JSON.parse(process.argv[3])];
    const at = path.join(root, name), tmp = path.join(root, '.' + name + '.next');
    for (;;) for (const t of turns) {
      if (t === 'remove') { try { fs.unlinkSync(at); } catch {} continue; }
      try { fs.unlinkSync(tmp); } catch {}
      if (t.link) fs.linkSync(t.link, tmp); else fs.symlinkSync(t.symlink, tmp);
      fs.renameSync(tmp, at);
    }`;
  return spawn(process.execPath, ['-e', script, root, name, JSON.stringify(turns)], { stdio: 'ignore' });
}

describe('static files while the folder changes', () => {
  it('never serves the file a link swapped in after the check points to', async () => {
    // race.txt: a copy of the file inside, then a link to the secret beside the root.
    const child = churn('race.txt', [{ link: join(root, 'pristine.txt') }, { symlink: join(base, 'secret.txt') }]);
    try {
      const bodies: string[] = [];
      // Rounds of concurrent requests until enough answers came back with bytes in them.
      for (let round = 0; round < 300 && bodies.length < 600; round++) {
        const answers = await Promise.all(
          Array.from({ length: 16 }, async () => {
            const r = await fetch(`${server.url}/race.txt`);
            const text = await r.text();
            return r.status === 200 ? text : null;
          }),
        );
        for (const a of answers) if (a !== null) bodies.push(a);
      }
      // The path was a file inside often enough to be served (a refusal every time would also never leak).
      expect(bodies.length).toBeGreaterThan(100);
      expect(bodies.filter((b) => b.includes(SECRET)).length).toBe(0);
      expect(new Set(bodies)).toEqual(new Set([INSIDE]));
    } finally {
      child.kill('SIGKILL');
    }
    expect(errors).toEqual([]);
  }, 120_000);

  it('a file that vanishes once found is a 404 or its bytes, and the server goes on', async () => {
    const child = churn('gone.txt', [{ link: join(root, 'pristine.txt') }, 'remove']);
    const statuses = new Set<number>();
    try {
      for (let round = 0; round < 150; round++) {
        const answers = await Promise.all(
          Array.from({ length: 16 }, async () => {
            // Cut after 5 s: before the change, a request whose handler had thrown was never answered.
            const r = await fetch(`${server.url}/gone.txt`, { signal: AbortSignal.timeout(5000) });
            return { status: r.status, text: await r.text() };
          }),
        );
        for (const a of answers) {
          statuses.add(a.status);
          if (a.status === 200) expect(a.text).toBe(INSIDE);
        }
      }
    } finally {
      child.kill('SIGKILL');
    }
    expect(errors).toEqual([]);
    expect([...statuses].every((s) => s === 200 || s === 404), [...statuses].join()).toBe(true);
    expect(await (await fetch(`${server.url}/pristine.txt`)).text()).toBe(INSIDE);
  }, 120_000);

  it('a named pipe swapped in for a file does not hold the server: each answer is the file or a 404', async () => {
    // pipe.txt: a copy of the file inside, then a named pipe no one writes to.
    execFileSync('mkfifo', [join(root, '.fifo')]);
    const child = churn('pipe.txt', [{ link: join(root, 'pristine.txt') }, { link: join(root, '.fifo') }]);
    let served = 0;
    try {
      for (let round = 0; round < 100; round++) {
        const answers = await Promise.all(
          Array.from({ length: 16 }, async () => {
            // A request that hangs on the pipe is cut after 5 s (before the change, the server's open never returned).
            const r = await fetch(`${server.url}/pipe.txt`, { signal: AbortSignal.timeout(5000) });
            return { status: r.status, text: await r.text() };
          }),
        );
        for (const a of answers) {
          expect([200, 404]).toContain(a.status);
          if (a.status === 200) (served++, expect(a.text).toBe(INSIDE));
        }
      }
    } finally {
      child.kill('SIGKILL');
    }
    expect(served).toBeGreaterThan(0);
    expect(errors).toEqual([]);
  }, 120_000);
});
