// Model folders holding the demo model's config.json and whatever a test puts beside it (broken weights, say), under one
// temporary root made before the tests of a file and removed after them.
import { copyFileSync, mkdirSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll } from 'vitest';

export const DEMO_MODEL = 'public/models/mistral-nano-demo';

/** The first bytes of a JPEG: a file that is certainly not safetensors. */
export const JPEG_BYTES = new Uint8Array([0xff, 0xd8, 0xff, 0xe0, 0x00, 0x10, 0x4a, 0x46, 0x49, 0x46, 0x00, 0x01, 0x01, 0x00]);

/** Registers the root's making and removal; the function makes folder `name` with config.json and `fill`'s files. */
export function demoConfigFolders(prefix: string): (name: string, fill?: (dir: string) => void) => string {
  let root = '';
  beforeAll(() => {
    root = mkdtempSync(join(tmpdir(), prefix));
  });
  afterAll(() => rmSync(root, { recursive: true, force: true }));
  return (name, fill = () => undefined) => {
    const dir = join(root, name);
    mkdirSync(dir);
    copyFileSync(join(DEMO_MODEL, 'config.json'), join(dir, 'config.json'));
    fill(dir);
    return dir;
  };
}
