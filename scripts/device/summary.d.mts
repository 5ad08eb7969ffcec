// Types of summary.mjs's exports, for test/unit/device-kit.test.ts.
export function parseLines(text: string): Record<string, unknown>[];
export function groupSteps(records: Record<string, unknown>[]): { name: string; argv?: string; skipped?: string; lines: Record<string, unknown>[]; end: Record<string, unknown> | null }[];
export function summarise(text: string): string;
