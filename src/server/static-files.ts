// Serves the built app (dist/) for `npm run serve`: GET/HEAD of files under one folder, nothing else. The URL path is
// decoded, normalised and must stay inside the folder, and so must the file it names once symbolic links are followed,
// as the file opened shows it (openInside); directories answer their index.html; a missing file is a 404 (as in `vite
// preview` with appType 'mpa', so the engine's probes for optional files get real 404s).

import { constants, statSync, type Stats } from 'node:fs';
import { lstat, open, readlink, realpath, type FileHandle } from 'node:fs/promises';
import type { IncomingMessage, ServerResponse } from 'node:http';
import { extname, join, normalize, resolve, sep } from 'node:path';
import { pipeline } from 'node:stream';

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
    if (s.isFile()) return full;
    if (s.isDirectory()) {
      const index = join(full, 'index.html');
      if (statSync(index).isFile()) return index;
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

/**
 * Where the file a handle holds is, as the kernel knows it (Linux: /proc/self/fd/N names the open file itself, whatever
 * the name it was opened by leads to now); null where there is no such link. A file whose name has since been removed
 * or renamed over reads "PATH (deleted)": PATH is still where it was opened, which is what is checked (a file renamed
 * over while its answer was on its way was once refused for it).
 */
async function openedPath(handle: FileHandle, fdLinks: string): Promise<string | null> {
  let path: string;
  try {
    path = await readlink(`${fdLinks}/${handle.fd}`);
  } catch {
    return null;
  }
  if (!path.startsWith('/')) return null;
  return path.endsWith(DELETED) ? path.slice(0, -DELETED.length) : path;
}
const DELETED = ' (deleted)';

/**
 * `file` opened, if what was opened is a file inside the root as the file system reaches it. Checked after the open,
 * on the file opened: a name checked and then opened could be swapped in between for a link to a file outside (another
 * process renaming one over it), whose bytes were then served. Where the kernel names the opened file (`fdLinks`,
 * Linux's /proc/self/fd) that name is checked; elsewhere (another system, a Linux without /proc mounted) the file's
 * name, links followed, must lead inside the root and there (not followed again) to the very file the handle holds, by
 * device and inode. null (the handle closed) when it is not, or is gone.
 */
async function openInside(root: string, file: string, fdLinks: string): Promise<{ handle: FileHandle; stats: Stats } | null> {
  // Non-blocking: a FIFO swapped in for the file would otherwise hold the open (and a thread of Node's pool) until a
  // writer came. Reads of a regular file ignore the flag.
  const handle = await open(file, constants.O_RDONLY | constants.O_NONBLOCK);
  try {
    const stats = await handle.stat();
    if (stats.isFile()) {
      const realRoot = await realpath(root);
      const where = await openedPath(handle, fdLinks);
      if (where !== null) {
        if (isInside(realRoot, where)) return { handle, stats };
      } else {
        const real = await realpath(file);
        const named = await lstat(real);
        if (isInside(realRoot, real) && named.dev === stats.dev && named.ino === stats.ino) return { handle, stats };
      }
    }
  } catch {
    // gone since the open: a refusal, as below
  }
  await handle.close().catch(() => undefined);
  return null;
}

/** The status for a file found and then not opened: gone (404), not ours to read (403), else the server's fault. */
function openFailureStatus(e: unknown): number {
  const code = (e as NodeJS.ErrnoException | null)?.code;
  if (code === 'ENOENT' || code === 'ENOTDIR') return 404;
  if (code === 'EACCES' || code === 'EPERM') return 403;
  return 500;
}

function refuse(res: ServerResponse, status: number): void {
  res.writeHead(status, { 'content-type': 'text/plain; charset=utf-8' });
  res.end(status === 404 ? 'not found\n' : status === 403 ? 'forbidden\n' : status === 405 ? 'method not allowed\n' : 'server error\n');
}

/**
 * The handler for `rootDir`'s files. `o.fdLinks`: where the kernel names each open file by its descriptor (tests give
 * a folder that does not exist, to check the way taken without one).
 */
export function serveStatic(rootDir: string, o: { fdLinks?: string } = {}): (req: IncomingMessage, res: ServerResponse) => void {
  const root = resolve(rootDir);
  const fdLinks = o.fdLinks ?? '/proc/self/fd';
  return (req, res) => {
    const path = (req.url ?? '/').split('?')[0];
    const name = req.method === 'GET' || req.method === 'HEAD' ? fileFor(root, path) : null;
    if (!name) return refuse(res, req.method === 'GET' || req.method === 'HEAD' ? 404 : 405);
    // The file may change between the look above and the open (a rebuild, another process): every failure from here
    // on is an answer, never an exception that would end the server.
    void openInside(root, name, fdLinks).then(
      (opened) => (opened ? send(req, res, name, opened.handle, opened.stats) : refuse(res, 404)),
      (e: unknown) => refuse(res, openFailureStatus(e)),
    );
  };
}

/** Answers with the opened file (a byte range of it when asked), then closes it. */
function send(req: IncomingMessage, res: ServerResponse, name: string, handle: FileHandle, st: Stats): void {
  const size = st.size;
  const headers: Record<string, string | number> = {
    'content-type': TYPES[extname(name).toLowerCase()] ?? 'application/octet-stream',
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
    void handle.close().catch(() => undefined);
    res.writeHead(416, { 'content-range': `bytes */${size}` });
    return void res.end();
  }
  const [start, end] = range ?? [0, size - 1];
  if (range) headers['content-range'] = `bytes ${start}-${end}/${size}`;
  headers['content-length'] = size === 0 ? 0 : end - start + 1;
  res.writeHead(range ? 206 : 200, headers);
  if (req.method === 'HEAD' || size === 0) {
    void handle.close().catch(() => undefined);
    return void res.end();
  }
  // From the handle opened and checked (never the name again). A read that fails midway (a disk error) or a client
  // that goes away ends both streams; the handle closes with its stream.
  pipeline(handle.createReadStream({ start, end }), res, () => undefined);
}
