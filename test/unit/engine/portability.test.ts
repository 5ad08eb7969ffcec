// The engine, data, config and model code runs both in a browser worker and in Node: no platform APIs there.
import { readdirSync, readFileSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';

function files(dir: string): string[] {
  return readdirSync(dir).flatMap((f) => {
    const p = join(dir, f);
    return statSync(p).isDirectory() ? files(p) : p.endsWith('.ts') ? [p] : [];
  });
}

describe('portable code', () => {
  for (const dir of ['src/engine', 'src/data', 'src/config', 'src/model']) {
    it(`${dir} uses no Node-only or DOM-only APIs`, () => {
      const offenders: string[] = [];
      for (const f of files(dir)) {
        const text = readFileSync(f, 'utf8');
        if (/from\s+['"](node:|fs|path|os|child_process|webgpu)['"/]/.test(text)) offenders.push(`${f}: imports a Node module`);
        if (/\b(document|window)\./.test(text)) offenders.push(`${f}: uses the DOM`);
        if (/\bprocess\.(env|argv|exit)/.test(text)) offenders.push(`${f}: uses process`);
      }
      expect(offenders).toEqual([]);
    });
  }
});
