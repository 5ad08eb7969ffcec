// The house rules, checked on every run: which floors may import which, and which code must run unchanged in a
// browser worker and in Node. docs/architecture.md draws the same picture.
import { readdirSync, readFileSync, statSync } from 'node:fs';
import { dirname, join, normalize, relative } from 'node:path';
import { describe, expect, it } from 'vitest';

function files(dir: string): string[] {
  return readdirSync(dir).flatMap((f) => {
    const p = join(dir, f);
    return statSync(p).isDirectory() ? files(p) : p.endsWith('.ts') ? [p] : [];
  });
}

/** Every relative import of a file, resolved to a path from the repository root (comments ignored). */
function importsOf(file: string): string[] {
  const text = readFileSync(file, 'utf8').replace(/^\s*\/\/.*$/gm, '');
  const specs = [...text.matchAll(/(?:from\s+|import\s*\(\s*|import\s+)'(\.[^']+)'/g)].map((m) => m[1].split('?')[0]);
  return specs.map((s) => normalize(join(dirname(file), s)));
}

/** The floor a source path is on: its first folder under src/ ('shaders' for the WGSL). */
function floorOf(path: string): string {
  const r = relative('src', path);
  if (r.startsWith('..')) return relative('.', path).split('/')[0];
  return r.split('/')[0];
}

/** Lower floors never import higher ones. A floor may always import itself. */
const MAY_IMPORT: Record<string, readonly string[]> = {
  core: [],
  config: ['core'],
  data: ['core'],
  model: ['core'],
  engine: ['core', 'model', 'shaders'],
  export: ['core', 'model'],
  run: ['core', 'config', 'data', 'model', 'engine', 'export'],
  bench: ['core', 'config', 'data', 'model', 'engine', 'run'], // data and config: the data-loading benchmark; run: the weight cache's load benchmark
  worker: ['core', 'config', 'data', 'model', 'engine', 'export', 'run'],
  cli: ['core', 'config', 'data', 'model', 'engine', 'export', 'run', 'bench', 'remote'],
  // The page also runs remote training itself (src/remote: network calls through the proxy, no GPU), so the worker
  // is not in the way of a job that never touches it.
  ui: ['core', 'config', 'worker', 'remote'],
  // Remote training on Replicate: the client flow runs in the page and in Node alike; it checks the data (data), builds
  // the training input (config) and reads the adapter it brings home (model).
  remote: ['core', 'config', 'data', 'model'],
  // Node-only servers (the Replicate proxy, `npm run serve`): the proxy shares remote's allowlist of routes and hosts.
  server: ['core', 'remote'],
};

describe('import direction', () => {
  for (const [floor, allowed] of Object.entries(MAY_IMPORT)) {
    it(`src/${floor} imports only ${allowed.length ? allowed.join(', ') : 'itself'}`, () => {
      const offenders: string[] = [];
      for (const f of files(join('src', floor))) {
        for (const target of importsOf(f)) {
          const to = floorOf(target);
          if (to !== floor && !allowed.includes(to)) offenders.push(`${f} → ${target}`);
        }
      }
      expect(offenders).toEqual([]);
    });
  }

  it('the page reaches the worker only through its front door (src/worker/api.ts)', () => {
    const offenders = files('src/ui').flatMap((f) =>
      importsOf(f)
        .filter((t) => floorOf(t) === 'worker' && t !== join('src', 'worker', 'api.ts'))
        .map((t) => `${f} → ${t}`),
    );
    expect(offenders).toEqual([]);
  });

  it('the front door holds declarations only: types, and the error transfer both sides install', () => {
    const text = readFileSync('src/worker/api.ts', 'utf8');
    const valueImports = [...text.matchAll(/^import\s+(?!type\b)[^;]*;/gm)].map((m) => m[0]);
    expect(valueImports).toEqual([]);
    expect([...text.matchAll(/^export\s+(?:const|function|class|let)\b/gm)]).toEqual([]);
  });

  it('the GPU engine does not use the float64 test oracle (src/engine/reference) outside itself', () => {
    const offenders = files('src/engine')
      .filter((f) => !f.includes(join('engine', 'reference')))
      .flatMap((f) => importsOf(f).filter((t) => t.includes(join('engine', 'reference'))).map((t) => `${f} → ${t}`));
    expect(offenders).toEqual([]);
  });

  it('finds the imports it checks (the rules above are not vacuous)', () => {
    expect(importsOf('src/run/session.ts').some((t) => floorOf(t) === 'engine')).toBe(true);
    expect(importsOf('src/ui/main.ts')).toContain(join('src', 'worker', 'api.ts'));
  });
});

describe('portable code', () => {
  // Everything but the CLI (Node) and the page (DOM) runs in a browser worker and in Node alike.
  for (const dir of ['src/core', 'src/engine', 'src/data', 'src/config', 'src/model', 'src/export', 'src/run', 'src/bench', 'src/worker', 'src/remote']) {
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
