// A real HTTP server on loopback that serves a folder with Range support (as the Hub and static hosts do), counts
// what it sends, and can be told to break connections: cut a response after some bytes of a file, or answer 503.
import { readFileSync, readdirSync } from 'node:fs';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { join } from 'node:path';

export interface RangeServer {
  base: string;
  /** Body bytes sent per file name. */
  sent: Map<string, number>;
  /** Every request as "file range" (range '' when none). */
  requests: string[];
  /** The next response for `file` that reaches absolute byte `at` sends up to there, then the socket is destroyed. */
  cutOnce(file: string, at: number): void;
  /** The next `n` requests for `file` are answered 503. */
  failNext(file: string, n: number): void;
  close(): Promise<void>;
}

export interface RangeServerOptions {
  /** Send an ETag with every answer, as the Hub and static hosts do (default true); false: no ETag, no Last-Modified. */
  validators?: boolean;
}

export async function startRangeServer(dir: string, prefix = '/model/', o: RangeServerOptions = {}): Promise<RangeServer> {
  const files = new Map<string, Uint8Array>();
  for (const f of readdirSync(dir)) files.set(f, new Uint8Array(readFileSync(join(dir, f))));
  const sent = new Map<string, number>();
  const requests: string[] = [];
  const cuts = new Map<string, number>();
  const failures = new Map<string, number>();
  const server: Server = createServer((req, res) => {
    const path = decodeURIComponent((req.url ?? '').split('?')[0]);
    const name = path.startsWith(prefix) ? path.slice(prefix.length) : '';
    const range = req.headers.range ?? '';
    requests.push(`${name} ${range}`);
    const body = files.get(name);
    if (!body) return void res.writeHead(404).end('not found');
    const fails = failures.get(name) ?? 0;
    if (fails > 0) {
      failures.set(name, fails - 1);
      return void res.writeHead(503).end('busy');
    }
    const etag: Record<string, string> = o.validators === false ? {} : { etag: `"${name}-${body.byteLength}"` };
    let start = 0;
    let end = body.byteLength - 1;
    const m = /^bytes=(\d+)-(\d*)$/.exec(range);
    if (m) {
      start = Number(m[1]);
      end = m[2] ? Math.min(Number(m[2]), body.byteLength - 1) : end;
      if (start > end) return void res.writeHead(416, { 'content-range': `bytes */${body.byteLength}` }).end();
      res.writeHead(206, { 'content-range': `bytes ${start}-${end}/${body.byteLength}`, 'content-length': end - start + 1, ...etag, 'accept-ranges': 'bytes' });
    } else {
      res.writeHead(200, { 'content-length': body.byteLength, ...etag, 'accept-ranges': 'bytes' });
    }
    const cut = cuts.get(name);
    if (cut !== undefined && cut > start && cut <= end) {
      cuts.delete(name);
      const part = body.subarray(start, cut);
      sent.set(name, (sent.get(name) ?? 0) + part.byteLength);
      // Send the first part, let it reach the client, then drop the connection mid-body.
      res.write(part, () => setTimeout(() => res.socket?.destroy(), 20));
      return;
    }
    sent.set(name, (sent.get(name) ?? 0) + end - start + 1);
    res.end(body.subarray(start, end + 1));
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  return {
    base: `http://127.0.0.1:${(server.address() as AddressInfo).port}${prefix}`,
    sent,
    requests,
    cutOnce: (file, at) => void cuts.set(file, at),
    failNext: (file, n) => void failures.set(file, n),
    close: () =>
      new Promise<void>((r) => {
        server.closeAllConnections();
        server.close(() => r());
      }),
  };
}
