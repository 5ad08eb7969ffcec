// The dev/preview server's /check/ files (vite.config.ts) as the page's engine and any HTTP client reads them.
import { readFileSync } from 'node:fs';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { serveCheckFiles } from '../../vite.config.ts';
import { listen, type Loopback } from '../helpers/loopback.ts';

let server: Loopback;
beforeAll(async () => {
  server = await listen((req, res) => serveCheckFiles(req, res, () => {
    res.statusCode = 418;
    res.end();
  }));
});
afterAll(() => server.close());

const CONFIG = readFileSync('test/fixtures/tiny-mistral/config.json');
const get = (range?: string) => fetch(`${server.url}/check/tiny-mistral/config.json`, { headers: range ? { Range: range } : {} });

describe('/check/ files over HTTP', () => {
  it('answers one range with 206 and exactly those bytes', async () => {
    const r = await get('bytes=2-9');
    expect(r.status).toBe(206);
    expect(r.headers.get('content-range')).toBe(`bytes 2-9/${CONFIG.length}`);
    expect(Buffer.from(await r.arrayBuffer()).equals(CONFIG.subarray(2, 10))).toBe(true);
  });

  it('answers a multi-range request with 200 and the whole body (the ranges may be ignored; 416 would be wrong)', async () => {
    const r = await get('bytes=0-1,5-6');
    expect(r.status).toBe(200);
    expect(r.headers.get('content-range')).toBeNull();
    expect(Buffer.from(await r.arrayBuffer()).equals(CONFIG)).toBe(true);
  });

  it('keeps 416 for a single range outside the file', async () => {
    const r = await get(`bytes=${CONFIG.length + 10}-${CONFIG.length + 20}`);
    expect(r.status).toBe(416);
    expect(r.headers.get('content-range')).toBe(`bytes */${CONFIG.length}`);
  });
});
