// A tiny line-based WGSL preprocessor: `//#if NAME`, `//#else`, `//#endif` blocks chosen by boolean defines, and
// `//#include NAME` (in an active block) for a partial of shared functions in shaders/NAME.wgsl. Excluded lines become
// empty comment lines so compiler messages keep the line numbers of the file in shaders/; an included partial is
// appended after the file's last line (WGSL declarations may come in any order), so it shifts none of them. A partial
// may hold //#if blocks (decided by the including file's defines) but no //#include of its own.
//
// `//#unroll NAME COUNT` … `//#endunroll` writes its lines out COUNT times, `$(NAME)` replaced by 0, 1, … in each copy
// (`acc$(i)` names a variable, `$(i)u` is a u32 literal); `//#unroll NAME COUNT DEFINE OTHER` writes OTHER copies
// where DEFINE is set (the tiled GEMM's K step is 16 or, with DEEP_K, 32 multiply-add steps). It exists for the
// register-tiled GEMM's K step, whose multiply-adds run measurably faster written out than in a loop
// (docs/performance.md, "The K step written out"): a driver does not always unroll a loop or fold its counter into
// shared-memory offsets. All copies go on the directive's line (the body's `//` comments dropped, since a line comment
// would swallow what follows it), so every other line keeps its number; an error inside the block is reported at the
// directive's line.

export type Defines = Readonly<Record<string, boolean>>;

/** The text of a partial by name (the shaders/ sources); undefined when there is none. */
export type IncludeSource = (name: string) => string | undefined;

export function preprocessWgsl(source: string, defines: Defines, fileName = 'shader', include?: IncludeSource): string {
  const lines = source.split('\n');
  const stack: { active: boolean; parentActive: boolean; sawElse: boolean; line: number }[] = [];
  const out: string[] = [];
  const active = (): boolean => (stack.length === 0 ? true : stack[stack.length - 1].active);
  const included: string[] = [];
  lines.forEach((line, i) => {
    const t = line.trim();
    const inc = /^\/\/#include\s+(\w+)\s*$/.exec(t);
    if (inc) {
      const name = inc[1];
      if (active() && !included.includes(name)) {
        const text = include?.(name);
        if (text === undefined) throw new Error(`${fileName}.wgsl:${i + 1}: //#include ${name}: no shaders/${name}.wgsl`);
        if (/^\s*\/\/#include\b/m.test(text)) throw new Error(`${name}.wgsl: an included partial may not include another`);
        included.push(name);
      }
      out.push('//');
      return;
    }
    const m = /^\/\/#(if|else|endif)\b\s*(!?)\s*(\w*)/.exec(t);
    if (m) {
      const [, op, neg, name] = m;
      if (op === 'if') {
        if (!name) throw new Error(`${fileName}.wgsl:${i + 1}: //#if needs a name`);
        const value = Boolean(defines[name]) !== (neg === '!');
        const parentActive = active();
        stack.push({ active: parentActive && value, parentActive, sawElse: false, line: i + 1 });
      } else if (op === 'else') {
        const top = stack[stack.length - 1];
        if (!top || top.sawElse) throw new Error(`${fileName}.wgsl:${i + 1}: //#else without //#if`);
        top.sawElse = true;
        top.active = top.parentActive && !top.active;
      } else {
        if (!stack.pop()) throw new Error(`${fileName}.wgsl:${i + 1}: //#endif without //#if`);
      }
      out.push('//');
      return;
    }
    out.push(active() ? line : '//');
  });
  if (stack.length) throw new Error(`${fileName}.wgsl:${stack[stack.length - 1].line}: //#if is never closed`);
  expandUnrolls(out, fileName, defines);
  // A partial's own //#if blocks follow the same defines as the file that includes it.
  for (const name of included) out.push(`// ---- included from ${name}.wgsl ----`, preprocessWgsl(include!(name)!, defines, name));
  return out.join('\n');
}

/** Most copies one //#unroll may ask for: enough for any K step, and a typo's 1000 is refused rather than compiled. */
export const MAX_UNROLL = 64;

/**
 * Expands the //#unroll blocks of `lines` (already past //#if, so lines of an inactive branch are `//`) in place, each
 * onto its directive's line. Blocks do not nest.
 */
function expandUnrolls(lines: string[], fileName: string, defines: Defines): void {
  let open: { line: number; name: string; count: number } | null = null;
  const body: string[] = [];
  for (let i = 0; i < lines.length; i++) {
    const t = lines[i].trim();
    const start = /^\/\/#unroll\b\s*(.*)$/.exec(t);
    if (start) {
      if (open) throw new Error(`${fileName}.wgsl:${i + 1}: //#unroll inside the //#unroll of line ${open.line} (they do not nest)`);
      const m = /^(\w+)\s+(\d+)(?:\s+(\w+)\s+(\d+))?$/.exec(start[1]);
      if (!m) throw new Error(`${fileName}.wgsl:${i + 1}: //#unroll needs a name and a count, e.g. //#unroll k 16 (or k 16 DEEP_K 32)`);
      const count = Number(m[3] !== undefined && defines[m[3]] ? m[4] : m[2]);
      // Both counts are checked whichever is taken: a bad one must not wait for the define that selects it.
      for (const c of [m[2], m[4]].filter((v) => v !== undefined).map(Number)) {
        if (c < 1 || c > MAX_UNROLL) throw new Error(`${fileName}.wgsl:${i + 1}: //#unroll ${m[1]} ${c}: the count must be 1 … ${MAX_UNROLL}`);
      }
      open = { line: i + 1, name: m[1], count };
      body.length = 0;
      continue;
    }
    if (/^\/\/#endunroll\b/.test(t)) {
      if (!open) throw new Error(`${fileName}.wgsl:${i + 1}: //#endunroll without //#unroll`);
      // Comments dropped (WGSL has no string literals, so `//` always starts one), the rest joined by spaces.
      const text = body.map((l) => l.replace(/\/\/.*$/, '').trim()).filter(Boolean).join(' ');
      const name = open.name;
      const copies = Array.from({ length: open.count }, (_, k) => text.replace(/\$\((\w+)\)/g, (whole, n: string) => {
        if (n !== name) throw new Error(`${fileName}.wgsl:${open!.line}: ${whole} inside //#unroll ${name}`);
        return String(k);
      }));
      lines[open.line - 1] = copies.join(' ');
      for (let j = open.line; j <= i; j++) lines[j] = '//';
      open = null;
      continue;
    }
    if (open) {
      body.push(lines[i]);
      continue;
    }
    const stray = /\$\((\w+)\)/.exec(lines[i].replace(/\/\/.*$/, ''));
    if (stray) throw new Error(`${fileName}.wgsl:${i + 1}: ${stray[0]} outside any //#unroll`);
  }
  if (open) throw new Error(`${fileName}.wgsl:${open.line}: //#unroll is never closed`);
}
