// Node file access for the model loaders: a ByteSource over a file (positioned reads, no full load) and a FileSet
// over a directory. src/model stays free of `node:*`; this is the Node side of its interfaces.

import { open, stat } from 'node:fs/promises';
import { existsSync, readdirSync, realpathSync, statSync } from 'node:fs';
import { basename, join, resolve, sep } from 'node:path';
import { FinetuneError } from '../core/errors.ts';
import { nodeErrorReason } from './node-error.ts';
import { isHuggingFaceUrl } from '../core/hub-reference.ts';
import { checkFileName, checkRange, displayUrl, hubFileSet, urlFileSet, type ByteSource, type FileSet, type RetryNote } from '../model/source.ts';
import { quote, visibleText } from '../core/quote.ts';
import { withOfflineCopy } from '../model/offline-copy.ts';
import { folderStoreFiles } from './node-store.ts';

/** A file on disk as a ByteSource. Each read opens the file, reads at the offset and closes it (no handle leaks). */
export async function nodeFileSource(path: string, name = path): Promise<ByteSource> {
  let size: number;
  let version: string;
  try {
    const st = await stat(path);
    if (!st.isFile()) throw new FinetuneError('bad-input', `${visibleText(name)} is not a regular file`, { reason: 'not-found' });
    size = st.size;
    version = `file ${st.size} ${st.mtimeMs}`;
  } catch (e) {
    if (e instanceof FinetuneError) throw e;
    const code = (e as NodeJS.ErrnoException).code;
    if (code === 'ENOENT' || code === 'ENOTDIR') throw new FinetuneError('bad-input', `no such file: ${quote(name)}`, { reason: 'not-found' });
    throw new FinetuneError('bad-input', `cannot open ${quote(name)}: ${nodeErrorReason(e)}`);
  }
  const src: ByteSource = {
    name,
    size,
    version,
    async read(offset, length) {
      checkRange(src, offset, length);
      const out = new Uint8Array(length);
      if (length === 0) return out;
      const fh = await open(path, 'r');
      try {
        let done = 0;
        while (done < length) {
          const { bytesRead } = await fh.read(out, done, length - done, offset + done);
          if (bytesRead === 0) throw new FinetuneError('bad-input', `${visibleText(name)}: file shrank while reading (got ${done} of ${length} bytes at ${offset})`);
          done += bytesRead;
        }
      } finally {
        await fh.close();
      }
      return out;
    },
  };
  return src;
}

/** A directory as a FileSet; names are relative paths with '/', and may not escape the directory. */
export function nodeDirectory(dir: string): FileSet {
  const root = resolve(dir);
  const list = (): string[] => {
    const out: string[] = [];
    const walk = (rel: string): void => {
      for (const ent of readdirSync(join(root, rel), { withFileTypes: true })) {
        const r = rel ? `${rel}/${ent.name}` : ent.name;
        if (ent.isDirectory()) walk(r);
        else if (ent.isFile() || (ent.isSymbolicLink() && statSync(join(root, r)).isFile())) out.push(r);
      }
    };
    walk('');
    return out.sort();
  };
  return {
    name: dir,
    list,
    async open(file) {
      checkFileName(file, dir);
      const full = resolve(root, ...file.split('/'));
      if (!full.startsWith(root + sep)) throw new FinetuneError('bad-input', `${visibleText(dir)}: refusing the file name ${quote(file)}`, { reason: 'bad-name' });
      return nodeFileSource(full, `${dir}/${file}`);
    },
  };
}

export interface ModelSpecOptions {
  /** Hugging Face access token (sent only as an Authorization header); the CLI passes HF_TOKEN. */
  token?: string;
  /** Hub revision (branch, tag or commit); default main. */
  revision?: string;
  /**
   * The weight cache's folder (absent or null: no cache): a Hub repository or a URL keeps its offline copy there
   * (src/model/offline-copy.ts), so that a model whose weights are cached loads without the network.
   */
  cacheDir?: string | null;
  /** Told when a request to the server failed and is tried again (train and generate print it: 15 s went unsaid). */
  onRetry?: (r: RetryNote) => void;
}

/** A remote model's files keeping their offline copy in the cache folder (made at the first write). */
function withCopyIn(files: FileSet, cacheDir: string | null | undefined, source: string): FileSet {
  if (!cacheDir) return files;
  // HF_HUB_OFFLINE=1, Hugging Face's own switch for "no network": the copy is read at once, not after the retries.
  return withOfflineCopy(files, folderStoreFiles(cacheDir), source, { knownOffline: () => ['1', 'true', 'yes', 'on'].includes((process.env.HF_HUB_OFFLINE ?? '').toLowerCase()) });
}

/** How a `--model` argument was read: a directory, a Hub repository, or an http(s) folder serving Range requests. */
export interface ModelSpec {
  kind: 'directory' | 'hub' | 'url';
  files: FileSet;
  /** A short name for messages and saved runs (never carrying a token or a query string). */
  label: string;
  /**
   * What the weight cache names the model by: one name per model, which the label is not for folders (two folders
   * named `model`, the same folder reached from two working directories) or URLs (two hosts' `Mistral-7B`): a folder's
   * real path (symbolic links resolved: one folder reached through a link is one model, not two ≈ 4 GB entries), a URL
   * without credentials or query, a Hub id with its revision (`owner/name@main` without --revision).
   */
  cacheSource: string;
  /**
   * Names earlier builds gave this model in the cache, besides the label: a folder's absolute path through a symbolic
   * link (before 2026-12-04 the cache named folders by their path as given). An entry under one is moved, not rebuilt.
   */
  formerCacheSources: string[];
}


/** True when `--model` names a URL, or an owner/name Hub id that is not an existing path: nothing local to check. */
export function isRemoteModelSpec(spec: string): boolean {
  if (/^https?:\/\//i.test(spec)) return true;
  return !existsSync(spec) && /^[A-Za-z0-9][\w.-]*\/[A-Za-z0-9][\w.-]*$/.test(spec) && !spec.includes('..');
}

/**
 * `--model DIR|HUB_ID|URL`: an existing directory wins, then an http(s) URL, then owner/name as a Hub id. Anything
 * else is a bad-input error that says which three forms are accepted.
 */
export function modelSpec(spec: string, o: ModelSpecOptions = {}): ModelSpec {
  const revision = o.revision;
  if (revision !== undefined) {
    if (revision.trim() === '') throw new FinetuneError('bad-input', '--revision is empty: give a branch, tag or commit id, or leave it out for main');
    // A folder or a URL has no revisions: a flag that changed nothing would let the user believe it did.
    const kind = /^https?:\/\//i.test(spec) ? 'a URL' : existsSync(spec) ? 'a folder' : null;
    if (kind) throw new FinetuneError('bad-input', `--revision ${quote(revision)} is for a Hugging Face id (owner/name); --model ${quote(spec)} is ${kind}`);
  }
  if (/^https?:\/\//i.test(spec)) {
    // HF_TOKEN is for Hugging Face: sent to its own hosts over https, never to any other server a URL names (it once
    // went to every URL, plain http included).
    // Redirects are followed here, not by fetch: the token never goes to another origin, and the Hub's X-Linked-Etag
    // (on its redirect to the CDN) versions the files for the weight cache (src/model/source.ts, answerValidator).
    const files = urlFileSet(spec, { token: isHuggingFaceUrl(spec) ? o.token : undefined, redirects: 'here', onRetry: o.onRetry });
    const path = new URL(spec).pathname.replace(/\/+$/, '');
    const cacheSource = displayUrl(spec);
    return { kind: 'url', files: withCopyIn(files, o.cacheDir, cacheSource), label: basename(path) || new URL(spec).host, cacheSource, formerCacheSources: [] };
  }
  if (existsSync(spec)) {
    if (!statSync(spec).isDirectory()) throw new FinetuneError('bad-input', `--model ${quote(spec)} is a file; give the folder that holds config.json and the safetensors`);
    const given = resolve(spec);
    const real = realpathSync(spec);
    return { kind: 'directory', files: nodeDirectory(spec), label: basename(given), cacheSource: real, formerCacheSources: given === real ? [] : [given] };
  }
  if (/^[A-Za-z0-9][\w.-]*\/[A-Za-z0-9][\w.-]*$/.test(spec) && !spec.includes('..')) {
    // Named with its revision, as the page names it: a saved run and the adapter's base model say which one was trained on.
    const label = revision === undefined ? spec : `${spec}@${revision}`;
    // The cache's name always has the revision: no --revision and --revision main are the same files. Entries named
    // by the label (owner/name, before 2026-12-04) are moved to it at the next load (src/run/weight-cache.ts).
    const cacheSource = `${spec}@${revision ?? 'main'}`;
    const files = hubFileSet(spec, { token: o.token, revision, redirects: 'here', tokenSource: 'HF_TOKEN', onRetry: o.onRetry });
    return { kind: 'hub', files: withCopyIn(files, o.cacheDir, cacheSource), label, cacheSource, formerCacheSources: [] };
  }
  throw new FinetuneError('bad-input', `--model ${quote(spec)}: no such directory, and not a Hugging Face id (owner/name) or an http(s) URL`);
}
