// `npm run serve`: the built app (dist/) and the Replicate proxy from one small Node server, on 127.0.0.1 by default.
// Options: --port N (default 4173), --host ADDR (default 127.0.0.1; anything else exposes the proxy to the network,
// and the command says so), --dist DIR, --allow-origin URL (repeatable: pages served elsewhere that may use this proxy),
// --allow-host NAME (repeatable: a name besides this machine's that the server is reached by, e.g. box.lan behind
// --host 0.0.0.0, or .home.arpa for a name and its subdomains; other names are refused by the proxy: DNS rebinding),
// --upstream URL (another Replicate-compatible API; for tests and private gateways).

import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { parseArgs } from 'node:util';
import { createReplicateProxy, type ReplicateProxyOptions } from './replicate-proxy.ts';
import { serveStatic } from './static-files.ts';

export interface AppServerOptions {
  dist: string;
  proxy?: ReplicateProxyOptions;
}

export function createAppServer(o: AppServerOptions): Server {
  const proxy = createReplicateProxy(o.proxy);
  const files = serveStatic(o.dist);
  return createServer((req, res) => proxy(req, res, () => files(req, res)));
}

export async function serveMain(argv: string[], log: (line: string) => void = (l) => console.log(l)): Promise<Server> {
  const { values } = parseArgs({
    args: argv,
    options: {
      port: { type: 'string', default: '4173' },
      host: { type: 'string', default: '127.0.0.1' },
      dist: { type: 'string', default: 'dist' },
      'allow-origin': { type: 'string', multiple: true, default: [] },
      'allow-host': { type: 'string', multiple: true, default: [] },
      upstream: { type: 'string' },
    },
  });
  const port = Number(values.port);
  if (!Number.isInteger(port) || port < 0 || port > 65535) throw new Error(`--port must be 0…65535, got ${values.port}`);
  const server = createAppServer({
    dist: values.dist as string,
    proxy: { allowOrigins: values['allow-origin'] as string[], allowHosts: values['allow-host'] as string[], upstream: values.upstream, log },
  });
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(port, values.host, resolve);
  });
  const addr = server.address() as AddressInfo;
  const host = addr.family === 'IPv6' ? `[${addr.address}]` : addr.address;
  log(`finetune: serving ${values.dist} and the Replicate proxy on http://${host}:${addr.port}/`);
  if (!['127.0.0.1', '::1', 'localhost'].includes(values.host as string)) {
    log('finetune: warning: listening beyond this machine; anyone who can reach it can use the proxy with their own token');
  }
  return server;
}
