// Fuzzing `npm run serve`'s static files over a real loopback socket (request targets written byte for byte). The
// contract: for any request target (a file of the folder, or a way out of it, mutated: encodings, backslashes, dot
// segments, look-alikes, absolute form, great length…), what comes back is a file inside the served folder or a
// refusal: the bytes of a file outside it never come back — not a file beside the folder, not one in a sibling folder
// whose name starts like the folder's, not one a symbolic link inside the folder points to.
import fc from 'fast-check';
import { mkdirSync, mkdtempSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { serveStatic } from '../../../src/server/static-files.ts';
import { listen, type Loopback } from '../../helpers/loopback.ts';
import { mutatedTarget } from '../../helpers/path-mutations.ts';
import { rawRequest } from '../../helpers/raw-http.ts';

const SECRET = 'SECRET-BYTES-OUTSIDE-THE-ROOT';
/** The files inside the root, by path: their contents are all that may come back. */
const INSIDE: Record<string, string> = {
  'index.html': '<!doctype html><title>inside</title>',
  'a/b.txt': 'inside a/b',
  'sub/index.html': 'inside sub',
  'with space.txt': 'inside with space',
};

let base: string;
let server: Loopback;
let port: number;

beforeAll(async () => {
  base = mkdtempSync(join(tmpdir(), 'finetune-static-fuzz-'));
  const root = join(base, 'www');
  for (const [path, text] of Object.entries(INSIDE)) {
    mkdirSync(join(root, path, '..'), { recursive: true });
    writeFileSync(join(root, path), text);
  }
  // Outside: beside the root, in a sibling whose name starts with the root's, and reached by links inside the root.
  writeFileSync(join(base, 'secret.txt'), SECRET);
  mkdirSync(join(base, 'www-secret'));
  writeFileSync(join(base, 'www-secret', 'secret.txt'), SECRET);
  writeFileSync(join(base, 'www-secret', 'index.html'), SECRET);
  symlinkSync(join(base, 'secret.txt'), join(root, 'link.txt'));
  symlinkSync(join(base, 'www-secret'), join(root, 'linkdir'));
  server = await listen(serveStatic(root));
  port = (server.server.address() as AddressInfo).port;
});
afterAll(async () => {
  await server.close();
  rmSync(base, { recursive: true, force: true });
});

const TARGETS = ['/index.html', '/a/b.txt', '/sub/', '/with%20space.txt', '/', '/../secret.txt', '/../www-secret/secret.txt', '/a/../../secret.txt', '/link.txt', '/linkdir/secret.txt', '/linkdir/', '/a/../link.txt'];
const insideBodies = new Set(Object.values(INSIDE));

describe('static files, for generated request targets', () => {
  it('serve a file inside the folder or refuse; the bytes of a file outside never come back', async () => {
    const arb = fc.record({ method: fc.constantFrom('GET', 'GET', 'GET', 'HEAD', 'POST'), target: mutatedTarget(TARGETS), range: fc.constantFrom<string | null>(null, null, 'bytes=0-', 'bytes=-4', 'bytes=2-5') });
    await fc.assert(
      fc.asyncProperty(arb, async ({ method, target, range }) => {
        const headers: [string, string][] = [['Host', `127.0.0.1:${port}`]];
        if (range !== null) headers.push(['Range', range]);
        const answer = await rawRequest(port, { method, target, headers });
        expect(answer.bytes.includes('SECRET')).toBe(false);
        // What a GET gets is a file inside, whole (200) or a byte range of one (206): never a range of the secret.
        const body = answer.body.toString();
        if (answer.status === 200 && method === 'GET') expect({ target, body, inside: insideBodies.has(body) }).toEqual({ target, body, inside: true });
        if (answer.status === 206) expect({ target, body, inside: [...insideBodies].some((b) => b.includes(body)) }).toEqual({ target, body, inside: true });
      }),
      { numRuns: 1500 },
    );
  }, 60_000);
});
