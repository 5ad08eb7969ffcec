// An in-memory origin-private file system folder that behaves as Chromium's does where it matters to a store:
// getFileHandle({create}) makes an empty file at once; a writable stream writes into a swap file `NAME.crswap` that is
// listed beside it and counts against the quota; close() swaps it in, abort() drops it; a write past the quota throws
// a QuotaExceededError; getFile() is a snapshot with the time of the last close.
import type { OpfsDirectory, OpfsFileHandle } from '../../src/worker/opfs-store.ts';

const notFound = (): Error => Object.assign(new Error('A requested file or directory could not be found'), { name: 'NotFoundError' });

export class FakeOpfs {
  readonly files = new Map<string, { bytes: Uint8Array; lastModified: number }>();
  /** The site's quota in bytes (files and swap files together). */
  quota = Number.POSITIVE_INFINITY;
  /** The clock a closed write stamps its file with (ms since 1970); each close advances it a minute. */
  now = Date.UTC(2025, 0, 15, 9, 30);

  usage(): number {
    let n = 0;
    for (const f of this.files.values()) n += f.bytes.byteLength;
    return n;
  }

  async estimate(): Promise<{ usage: number; quota: number }> {
    return { usage: this.usage(), quota: this.quota };
  }

  dir(): OpfsDirectory {
    const files = this.files;
    const handle = (name: string): OpfsFileHandle => ({
      getFile: async () => {
        const f = files.get(name);
        if (!f) throw notFound();
        return new File([f.bytes.slice()], name, { lastModified: f.lastModified });
      },
      createWritable: async () => {
        const swapName = `${name}.crswap`;
        files.set(swapName, { bytes: new Uint8Array(0), lastModified: this.now });
        const swap = (): Uint8Array => files.get(swapName)?.bytes ?? new Uint8Array(0);
        return {
          write: async (data: Uint8Array) => {
            if (this.usage() + data.byteLength > this.quota) {
              throw new DOMException('The operation failed because it would cause the application to exceed its storage quota.', 'QuotaExceededError');
            }
            const next = new Uint8Array(swap().byteLength + data.byteLength);
            next.set(swap());
            next.set(data, swap().byteLength);
            files.set(swapName, { bytes: next, lastModified: this.now });
          },
          close: async () => {
            this.now += 60_000;
            files.set(name, { bytes: swap(), lastModified: this.now });
            files.delete(swapName);
          },
          abort: async () => {
            files.delete(swapName);
          },
        };
      },
    });
    return {
      getFileHandle: async (name, options) => {
        if (!files.has(name)) {
          if (!options?.create) throw notFound();
          files.set(name, { bytes: new Uint8Array(0), lastModified: this.now });
        }
        return handle(name);
      },
      removeEntry: async (name) => {
        if (!files.delete(name)) throw notFound();
      },
      async *keys() {
        yield* [...files.keys()];
      },
    };
  }
}
