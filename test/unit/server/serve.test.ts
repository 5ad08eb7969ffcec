// `npm run serve`'s server: the built app's files (with byte ranges, nothing outside the folder) and the proxy beside them.
import { mkdirSync, mkdtempSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { request } from 'node:http';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, expect, it } from 'vitest';
import { serveMain } from '../../../src/server/serve.ts';
import type { Server } from 'node:http';

let root: string;
let dist: string;
let server: Server;
let base: string;
const logs: string[] = [];

beforeAll(async () => {
  root = mkdtempSync(join(tmpdir(), 'finetune-serve-'));
  dist = join(root, 'dist');
  mkdirSync(join(dist, 'check'), { recursive: true });
  writeFileSync(join(dist, 'index.html'), '<!doctype html><title>finetune</title>');
  writeFileSync(join(dist, 'check', 'weights.bin'), new Uint8Array([0, 1, 2, 3, 4, 5, 6, 7, 8, 9]));
  writeFileSync(join(root, 'secret.txt'), 'outside dist');
  // Links inside dist: to a file outside it, to a folder outside it, and to a file inside it.
  mkdirSync(join(root, 'private'));
  writeFileSync(join(root, 'private', 'key.txt'), 'outside dist');
  symlinkSync(join(root, 'secret.txt'), join(dist, 'secret-link.txt'));
  symlinkSync(join(root, 'private'), join(dist, 'private-link'));
  symlinkSync(join(dist, 'index.html'), join(dist, 'index-link.html'));
  server = await serveMain(['--port', '0', '--dist', dist, '--allow-host', 'box.lan'], (l) => logs.push(l));
  base = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
});
afterAll(async () => {
  server.closeAllConnections();
  await new Promise((r) => server.close(r));
  rmSync(root, { recursive: true, force: true });
});

function raw(path: string, host?: string): Promise<number> {
  return new Promise((resolve, reject) => {
    const u = new URL(base);
    const req = request({ hostname: u.hostname, port: u.port, path, headers: host === undefined ? {} : { host } }, (res) => (res.resume(), resolve(res.statusCode ?? 0)));
    req.on('error', reject);
    req.end();
  });
}

it('listens on 127.0.0.1 and says so', () => {
  expect((server.address() as AddressInfo).address).toBe('127.0.0.1');
  expect(logs[0]).toMatch(/serving .*dist and the Replicate proxy on http:\/\/127\.0\.0\.1:\d+\//);
});

it('serves the app, its index for /, and byte ranges', async () => {
  const index = await fetch(`${base}/`);
  expect(index.status).toBe(200);
  expect(index.headers.get('content-type')).toMatch(/text\/html/);
  const part = await fetch(`${base}/check/weights.bin`, { headers: { range: 'bytes=2-4' } });
  expect(part.status).toBe(206);
  expect(part.headers.get('content-range')).toBe('bytes 2-4/10');
  expect(new Uint8Array(await part.arrayBuffer())).toEqual(new Uint8Array([2, 3, 4]));
  expect((await fetch(`${base}/check/weights.bin`, { headers: { range: 'bytes=20-' } })).status).toBe(416);
});

it('sends an ETag and Last-Modified with each file, so that the weight cache can tell a changed model file', async () => {
  const part = await fetch(`${base}/check/weights.bin`, { headers: { range: 'bytes=0-0' } });
  const whole = await fetch(`${base}/check/weights.bin`);
  expect(part.headers.get('etag')).toMatch(/^W\/"10-\d+"$/);
  expect(whole.headers.get('etag')).toBe(part.headers.get('etag'));
  expect(Number.isNaN(Date.parse(part.headers.get('last-modified') ?? ''))).toBe(false);
});

it('answers 404 for missing files and never serves outside dist', async () => {
  expect((await fetch(`${base}/missing.json`)).status).toBe(404);
  expect(await raw('/../secret.txt')).toBe(404);
  expect(await raw('/%2e%2e/secret.txt')).toBe(404);
  expect(await raw('/check/..%2f..%2fsecret.txt')).toBe(404);
});

it('never serves a file outside dist that a symbolic link inside it points to; a link to a file inside is served', async () => {
  // Found by static-files-fuzz.test.ts: the links were followed and the files outside served.
  expect(await raw('/secret-link.txt')).toBe(404);
  expect(await raw('/private-link/key.txt')).toBe(404);
  expect(await raw('/private-link/')).toBe(404);
  const inside = await fetch(`${base}/index-link.html`);
  expect(inside.status).toBe(200);
  expect(await inside.text()).toBe('<!doctype html><title>finetune</title>');
});

it('mounts the proxy: allowlisted paths go on, others are refused', async () => {
  expect((await fetch(`${base}/replicate/v1/predictions`)).status).toBe(403);
  expect((await fetch(`${base}/replicate/download?url=${encodeURIComponent('https://evil.example/x')}`)).status).toBe(403);
});

it('refuses the proxy to a page whose name is not this machine\'s (DNS rebinding) unless it was allowed with --allow-host', async () => {
  expect(await raw('/replicate/hello', 'evil.example:4173')).toBe(403);
  expect(await raw('/replicate/hello', `localhost:${new URL(base).port}`)).toBe(200);
  expect(await raw('/replicate/hello', 'box.lan:4173')).toBe(200);
});
