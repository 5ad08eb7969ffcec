// One HTTP/1.1 request written byte for byte on a TCP socket, for tests that send what a client library would refuse
// or normalise first (fetch and http.request resolve "/../", encode spaces, refuse non-ASCII and absolute-form targets).

import { connect } from 'node:net';

export interface RawAnswer {
  /** 0 when the server closed the connection without a status line. */
  status: number;
  /** The header block as received, lowercase names. */
  headers: Map<string, string>;
  /** Everything after the header block (chunked framing included: the tests only look for bytes in it). */
  body: Buffer;
  /** The whole answer, head and body. */
  bytes: Buffer;
}

export interface RawRequest {
  method: string;
  /** The request target exactly as written on the request line. */
  target: string;
  /** Header lines as given, in order (a name may repeat); no Host is added. */
  headers: [string, string][];
  body?: Uint8Array;
}

/** Sends `r` to 127.0.0.1:`port` with `Connection: close` and reads the answer to the end, or rejects after `ms`. */
export function rawRequest(port: number, r: RawRequest, ms = 5000): Promise<RawAnswer> {
  return new Promise((resolve, reject) => {
    const socket = connect(port, '127.0.0.1');
    const chunks: Buffer[] = [];
    const timer = setTimeout(() => {
      socket.destroy();
      reject(new Error(`no whole answer to ${r.method} ${r.target.slice(0, 200)} within ${ms} ms`));
    }, ms);
    socket.on('data', (c: Buffer) => chunks.push(c));
    socket.on('error', () => {}); // a server that resets the connection: what came before is the answer
    socket.on('close', () => {
      clearTimeout(timer);
      resolve(parseAnswer(Buffer.concat(chunks)));
    });
    const body = r.body ?? new Uint8Array(0);
    const head = [`${r.method} ${r.target} HTTP/1.1`, ...r.headers.map(([k, v]) => `${k}: ${v}`), ...(body.byteLength > 0 ? [`Content-Length: ${body.byteLength}`] : []), 'Connection: close', '', ''].join('\r\n');
    // latin1: each character of the head is one byte, as written (a test that wants UTF-8 bytes encodes them first).
    socket.write(Buffer.from(head, 'latin1'));
    if (body.byteLength > 0) socket.write(body);
  });
}

function parseAnswer(bytes: Buffer): RawAnswer {
  const end = bytes.indexOf('\r\n\r\n');
  const head = (end < 0 ? bytes : bytes.subarray(0, end)).toString('latin1');
  const [statusLine = '', ...lines] = head.split('\r\n');
  const m = /^HTTP\/1\.[01] (\d{3})/.exec(statusLine);
  const headers = new Map<string, string>();
  for (const line of lines) {
    const colon = line.indexOf(':');
    if (colon > 0) headers.set(line.slice(0, colon).trim().toLowerCase(), line.slice(colon + 1).trim());
  }
  return { status: m ? Number(m[1]) : 0, headers, body: end < 0 ? Buffer.alloc(0) : bytes.subarray(end + 4), bytes };
}
