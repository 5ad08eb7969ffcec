// A tiny line-based WGSL preprocessor: `//#if NAME`, `//#else`, `//#endif` blocks chosen by boolean defines, and
// `//#include NAME` (in an active block) for a partial of shared functions in shaders/NAME.wgsl. Excluded lines become
// empty comment lines so compiler messages keep the line numbers of the file in shaders/; an included partial is
// appended after the file's last line (WGSL declarations may come in any order), so it shifts none of them. A partial
// may hold //#if blocks (decided by the including file's defines) but no //#include of its own.

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
  // A partial's own //#if blocks follow the same defines as the file that includes it.
  for (const name of included) out.push(`// ---- included from ${name}.wgsl ----`, preprocessWgsl(include!(name)!, defines, name));
  return out.join('\n');
}
