// The weight cache's folder as the command line names it (--cache-dir, else ~/.cache/finetune), checked before it is
// used: the store (node-weight-cache.ts) reads a folder it cannot list as an empty cache, so a file given as
// --cache-dir was an empty cache to `finetune cache list`, and to train and generate a cache whose write failed at the
// end of the load (minutes for Mistral-7B), a note that the weights were not cached.

import { readdir, stat } from 'node:fs/promises';
import { FinetuneError } from '../core/errors.ts';
import { quote } from '../core/quote.ts';
import { nodeErrorReason } from './node-error.ts';

export interface CacheFolderCheck {
  /** The folder was given as --cache-dir (else it is the default one). */
  given: boolean;
  /** The command takes --no-cache (train, generate): the message offers it. */
  noCacheFlag?: boolean;
}

/**
 * The cache folder must be a folder that can be read, or not exist yet (an empty cache, made at the first write);
 * anything else is refused (bad-input) with what it is: a file, a path under a file, a folder that cannot be read.
 */
export async function checkCacheFolder(dir: string, o: CacheFolderCheck): Promise<void> {
  const what = o.given ? `--cache-dir: ${quote(dir)}` : `the cache folder ${quote(dir)}`;
  const orNoCache = o.noCacheFlag ? ', or --no-cache' : '';
  try {
    await readdir(dir);
  } catch (e) {
    const code = (e as NodeJS.ErrnoException).code;
    if (code === 'ENOENT') return;
    if (code === 'ENOTDIR') {
      // The path itself is a file, or part of its path is (file/sub): nothing can be cached there.
      const itself = await stat(dir).then((st) => !st.isDirectory(), () => false);
      throw new FinetuneError('bad-input', `${what} ${itself ? 'is a file, not a folder' : 'cannot be a folder: part of its path is a file'}: give the cache's folder${o.given ? '' : ' with --cache-dir'}${orNoCache}`);
    }
    throw new FinetuneError('bad-input', `${what} cannot be read (${nodeErrorReason(e)})${o.noCacheFlag ? `: give another folder with --cache-dir${orNoCache}` : ''}`);
  }
}
