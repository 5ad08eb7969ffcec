// Types of pack.mjs's exports, for test/unit/device-kit.test.ts (the script itself is plain JavaScript for plain Node).
export const ROOT: string;
export const LIMIT_BYTES: number;
export const PARKED: string[];
export const PARK_DIR: string;
export const CARRIED: string[];
export const DEBS: string[];
export function mib(bytes: number): string;
export function treeBytes(path: string): number;
export interface Travelling {
  total: number;
  limit: number;
  ok: boolean;
  largest: { path: string; bytes: number }[];
  count: number;
}
export function travelling(root: string, files: string[], options?: { exclude?: string[]; carried?: string[]; limit?: number }): Travelling;
export function checkoutFiles(root?: string): string[];
export function parkFiles(root: string, parkDir: string, files: string[], toPark: boolean): { ok: boolean; lines: string[] };
export function rebaseImportMeta(source: string, sourcePath: string, bundleDir: string): string;
export function sourceHash(root?: string): string;
export function main(argv: string[]): Promise<number>;
