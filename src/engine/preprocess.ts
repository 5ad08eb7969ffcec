// A tiny line-based WGSL preprocessor: `//#if NAME`, `//#else`, `//#endif` blocks chosen by boolean defines.
// Excluded lines become empty comment lines so compiler messages keep the line numbers of the file in shaders/.

export type Defines = Readonly<Record<string, boolean>>;

export function preprocessWgsl(source: string, defines: Defines, fileName = 'shader'): string {
  const lines = source.split('\n');
  const stack: { active: boolean; parentActive: boolean; sawElse: boolean; line: number }[] = [];
  const out: string[] = [];
  const active = (): boolean => (stack.length === 0 ? true : stack[stack.length - 1].active);
  lines.forEach((line, i) => {
    const t = line.trim();
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
  return out.join('\n');
}
