import { createReadStream, readFileSync, statSync } from 'node:fs';
import type { IncomingMessage, ServerResponse } from 'node:http';
import { defineConfig, type Plugin } from 'vite';
import { createReplicateProxy } from './src/server/replicate-proxy.ts';

// The page's "Check this GPU against PyTorch" fetches the tiny model, its adapter and the PyTorch goldens from
// /check/… (src/worker/worker.ts goldenCheck). They live once, in test/fixtures; this plugin publishes exactly these files:
// emitted into dist/check/ by `vite build`, served straight from test/fixtures by `vite` and `vite preview`.
const CHECK_FILES = [
  'tiny-mistral/config.json',
  'tiny-mistral/generation_config.json',
  'tiny-mistral/model.safetensors.index.json',
  'tiny-mistral/model-00001-of-00003.safetensors',
  'tiny-mistral/model-00002-of-00003.safetensors',
  'tiny-mistral/model-00003-of-00003.safetensors',
  'tiny-adapter/adapter_config.json',
  'tiny-adapter/adapter_model.safetensors',
  'golden_lora.safetensors',
  'golden_qlora.safetensors',
];
const FIXTURES = new URL('./test/fixtures/', import.meta.url);

/**
 * Answers GET/HEAD for /check/<one of CHECK_FILES> with HTTP Range support (the engine reads safetensors by range);
 * anything else under /check/ is a 404. The URL path is only ever compared against the list, never joined onto a
 * directory, so there is no path to traverse.
 */
export function serveCheckFiles(req: IncomingMessage, res: ServerResponse, next: () => void): void {
  const path = (req.url ?? '').split('?')[0];
  if (!path.startsWith('/check/')) return next();
  const name = path.slice('/check/'.length);
  if (!CHECK_FILES.includes(name) || (req.method !== 'GET' && req.method !== 'HEAD')) {
    res.statusCode = 404;
    res.end();
    return;
  }
  const file = new URL(name, FIXTURES);
  const size = statSync(file).size;
  res.setHeader('Accept-Ranges', 'bytes');
  res.setHeader('Cache-Control', 'no-cache');
  res.setHeader('Content-Type', name.endsWith('.json') ? 'application/json' : 'application/octet-stream');
  let start = 0;
  let end = size - 1;
  // One range: bytes=a-b, bytes=a- or bytes=-n (suffix). Any other form (several ranges, other units) is ignored and
  // the whole file sent with 200, as RFC 9110 allows; 416 is only for a single range that lies outside the file.
  const m = req.headers.range ? /^bytes=(\d*)-(\d*)$/.exec(req.headers.range.trim()) : null;
  const range = m && (m[1] !== '' || m[2] !== '') ? m : null;
  if (range) {
    if (range[1] !== '') [start, end] = [Number(range[1]), range[2] === '' ? size - 1 : Math.min(Number(range[2]), size - 1)];
    else [start, end] = [Math.max(0, size - Number(range[2])), size - 1];
    if (start > end || start >= size) {
      res.statusCode = 416;
      res.setHeader('Content-Range', `bytes */${size}`);
      res.end();
      return;
    }
    res.statusCode = 206;
    res.setHeader('Content-Range', `bytes ${start}-${end}/${size}`);
  }
  res.setHeader('Content-Length', String(end - start + 1));
  if (req.method === 'HEAD') return void res.end();
  createReadStream(file, { start, end }).pipe(res);
}

function checkFiles(): Plugin {
  return {
    name: 'finetune-check-files',
    configureServer: (server) => void server.middlewares.use(serveCheckFiles),
    configurePreviewServer: (server) => void server.middlewares.use(serveCheckFiles),
    generateBundle() {
      for (const name of CHECK_FILES) this.emitFile({ type: 'asset', fileName: `check/${name}`, source: readFileSync(new URL(name, FIXTURES)) });
    },
  };
}

/**
 * The Replicate proxy (src/server/replicate-proxy.ts) on the dev server and `vite preview`: the page's remote training
 * calls /replicate/v1/… on its own origin, because Replicate's API sends no CORS headers. It allows the hosts Vite
 * allows (server.allowedHosts / preview.allowedHosts, which include a `host` given by name) besides this machine's own;
 * Vite checks the Host before any plugin's middleware, but not with `allowedHosts: true` or https, and the proxy
 * checks it itself either way (DNS rebinding).
 */
function replicateProxy(): Plugin {
  const log = (line: string) => console.log(line);
  const hosts = (allowed: string[] | true) => (allowed === true ? [] : allowed);
  return {
    name: 'finetune-replicate-proxy',
    configureServer: (server) => void server.middlewares.use(createReplicateProxy({ log, allowHosts: hosts(server.config.server.allowedHosts) })),
    configurePreviewServer: (server) => void server.middlewares.use(createReplicateProxy({ log, allowHosts: hosts(server.config.preview.allowedHosts) })),
  };
}

export default defineConfig({
  // Missing files must be real 404s: the engine probes for model.safetensors.index.json and would otherwise be
  // handed index.html (the single-page-app fallback).
  appType: 'mpa',
  plugins: [checkFiles(), replicateProxy()],
  worker: { format: 'es' },
  build: { target: 'es2022', outDir: 'dist' },
  server: { host: '127.0.0.1' },
  preview: { host: '127.0.0.1' },
});
