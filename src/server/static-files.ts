// Serves the built app (dist/) for `npm run serve`: GET/HEAD of files under one folder, nothing else. The URL path is
// decoded, normalised and must stay inside the folder, and so must the file it names once symbolic links are followed;
// directories answer their index.html; a missing file is a 404 (as in `vite preview` with appType 'mpa', so the
// engine's probes for optional files get real 404s).

import { createReadStream, realpathSync, statSync } from 'node:fs';
import type { IncomingMessage, ServerResponse } from 'node:http';
import { extname, join, normalize, resolve, sep } from 'node:path';

const TYPES: Record<string, string> = {
  '.html': 'text/html; charset=utf-8',
  '.js': 'text/javascript; charset=utf-8',
  '.mjs': 'text/javascript; charset=utf-8',
  '.css': 'text/css; charset=utf-8',
  '.json': 'application/json',
  '.jsonl': 'application/jsonl',
  '.wasm': 'application/wasm',
  '.svg': 'image/svg+xml',
  '.png': 'image/png',
  '.ico': 'image/x-icon',
  '.txt': 'text/plain; charset=utf-8',
  '.md': 'text/markdown; charset=utf-8',
};

/** Whether `path` is `root` or inside it (both absolute and normalised). */
function isInside(root: string, path: string): boolean {
  return path === root || path.startsWith(root.endsWith(sep) ? root : root + sep);
}

/**
 * `file` (kept as named, for its type) if, symbolic links followed, it is still inside the root as the file system
 * reaches it (the root itself may be a link: dist → a build folder elsewhere); null if not, or if it is gone. A link
 * inside the folder to a file outside it would otherwise serve that file (a key, a home folder) to anyone who asks.
 */
function realFileInside(root: string, file: string): string | null {
  try {
    return isInside(realpathSync(root), realpathSync(file)) ? file : null;
  } catch {
    return null;
  }
}

function fileFor(root: string, urlPath: string): string | null {
  let decoded: string;
  try {
    decoded = decodeURIComponent(urlPath);
  } catch {
    return null;
  }
  if (decoded.includes('\0')) return null;
  const full = resolve(root, `.${normalize(`/${decoded}`)}`);
  if (!isInside(root, full)) return null;
  try {
    const s = statSync(full);
    if (s.isFile()) return realFileInside(root, full);
    if (s.isDirectory()) {
      const index = join(full, 'index.html');
      if (statSync(index).isFile()) return realFileInside(root, index);
    }
  } catch {
    return null;
  }
  return null;
}

/** One `bytes=a-b`, `bytes=a-` or `bytes=-n` range as [first, last]; null for none (or a form we do not serve). */
function byteRange(header: string | undefined, size: number): [number, number] | 'unsatisfiable' | null {
  if (!header) return null;
  const m = /^bytes=(\d*)-(\d*)$/.exec(header.trim());
  if (!m || (m[1] === '' && m[2] === '')) return null;
  const [start, end] = m[1] === '' ? [Math.max(0, size - Number(m[2])), size - 1] : [Number(m[1]), m[2] === '' ? size - 1 : Math.min(Number(m[2]), size - 1)];
  return start > end || start >= size ? 'unsatisfiable' : [start, end];
}

export function serveStatic(rootDir: string): (req: IncomingMessage, res: ServerResponse) => void {
  const root = resolve(rootDir);
  return (req, res) => {
    const path = (req.url ?? '/').split('?')[0];
    const file = req.method === 'GET' || req.method === 'HEAD' ? fileFor(root, path) : null;
    if (!file) {
      res.writeHead(req.method === 'GET' || req.method === 'HEAD' ? 404 : 405, { 'content-type': 'text/plain; charset=utf-8' });
      return void res.end('not found\n');
    }
    const st = statSync(file);
    const size = st.size;
    const headers: Record<string, string | number> = {
      'content-type': TYPES[extname(file).toLowerCase()] ?? 'application/octet-stream',
      'cache-control': 'no-cache',
      'accept-ranges': 'bytes',
      // A model's version for the weight cache (src/run/weight-cache.ts caches no file without one), and what a resumed
      // read checks it is still reading the same file by. Size and mtime, as vite preview's sirv gives them.
      etag: `W/"${size}-${Math.floor(st.mtimeMs)}"`,
      'last-modified': st.mtime.toUTCString(),
    };
    // The engine reads safetensors by byte range (model files under check/ and any model the page fetches).
    const range = byteRange(req.headers.range, size);
    if (range === 'unsatisfiable') {
      res.writeHead(416, { 'content-range': `bytes */${size}` });
      return void res.end();
    }
    const [start, end] = range ?? [0, size - 1];
    if (range) headers['content-range'] = `bytes ${start}-${end}/${size}`;
    headers['content-length'] = size === 0 ? 0 : end - start + 1;
    res.writeHead(range ? 206 : 200, headers);
    if (req.method === 'HEAD' || size === 0) return void res.end();
    createReadStream(file, { start, end }).pipe(res);
  };
}
