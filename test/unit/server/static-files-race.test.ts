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

/** A process that swaps `race.txt` between a copy of the file inside and a link to the secret, by atomic renames. */
function swapper(): ChildProcess {
  const script = `
    const fs = require('node:fs'); const path = require('node:path');
    const [root, secret] = process.argv.slice(1);
    const race = path.join(root, 'race.txt'), a = path.join(root, '.a'), b = path.join(root, '.b');
    for (;;) {
      try { fs.unlinkSync(a); } catch {}
      fs.linkSync(path.join(root, 'pristine.txt'), a); fs.renameSync(a, race);
      try { fs.unlinkSync(b); } catch {}
      fs.symlinkSync(secret, b); fs.renameSync(b, race);
    }`;
  return spawn(process.execPath, ['-e', script, root, join(base, 'secret.txt')], { stdio: 'ignore' });
}

/** A process that removes `gone.txt` and puts it back, again and again. */
function vanisher(): ChildProcess {
  const script = `
    const fs = require('node:fs'); const path = require('node:path');
    const [root] = process.argv.slice(1);
    const gone = path.join(root, 'gone.txt'), a = path.join(root, '.c');
    for (;;) {
      try { fs.unlinkSync(a); } catch {}
      fs.linkSync(path.join(root, 'pristine.txt'), a); fs.renameSync(a, gone);
      fs.unlinkSync(gone);
    }`;
  return spawn(process.execPath, ['-e', script, root], { stdio: 'ignore' });
}

/** A process that swaps `pipe.txt` between a copy of the file inside and a FIFO (a named pipe no one writes to). */
function fifoSwapper(): ChildProcess {
  execFileSync('mkfifo', [join(root, '.fifo')]);
  const script = `
    const fs = require('node:fs'); const path = require('node:path');
    const [root] = process.argv.slice(1);
    const pipe = path.join(root, 'pipe.txt'), a = path.join(root, '.d'), b = path.join(root, '.e');
    for (;;) {
      try { fs.unlinkSync(a); } catch {}
      fs.linkSync(path.join(root, 'pristine.txt'), a); fs.renameSync(a, pipe);
      try { fs.unlinkSync(b); } catch {}
      fs.linkSync(path.join(root, '.fifo'), b); fs.renameSync(b, pipe);
    }`;
  return spawn(process.execPath, ['-e', script, root], { stdio: 'ignore' });
}

describe('static files while the folder changes', () => {
  it('never serves the file a link swapped in after the check points to', async () => {
    const child = swapper();
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
    const child = vanisher();
    const statuses = new Set<number>();
    try {
      for (let round = 0; round < 150; round++) {
        const answers = await Promise.all(
          Array.from({ length: 16 }, async () => {
            const r = await fetch(`${server.url}/gone.txt`);
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
    const child = fifoSwapper();
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
