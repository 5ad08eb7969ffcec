// A tiny element builder. User text is only ever set as text (textContent), never parsed as HTML.

type Child = Node | string | number | null | undefined | false;
type Attrs = Record<string, string | number | boolean | undefined | ((ev: Event) => void)>;

export function h<K extends keyof HTMLElementTagNameMap>(tag: K, attrs: Attrs = {}, ...children: Child[]): HTMLElementTagNameMap[K] {
  const el = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs)) {
    if (v === undefined || v === false) continue;
    if (typeof v === 'function') el.addEventListener(k.replace(/^on/, '').toLowerCase(), v);
    else if (k === 'class') el.className = String(v);
    else el.setAttribute(k, v === true ? '' : String(v));
  }
  append(el, ...children);
  return el;
}

export function append(el: Element, ...children: Child[]): void {
  for (const c of children) {
    if (c === null || c === undefined || c === false) continue;
    el.append(typeof c === 'string' || typeof c === 'number' ? document.createTextNode(String(c)) : c);
  }
}

/**
 * Escape answers a question box (role="alertdialog") the focus is in with its safe answer, the button marked
 * `data-escape` (Keep, Cancel): the key a keyboard user reaches for to back out of a dialog.
 */
export function installEscapeAnswers(doc: Document): void {
  doc.addEventListener('keydown', (ev) => {
    if (ev.key !== 'Escape' || !(ev.target instanceof Element)) return;
    const box = ev.target.closest('[role="alertdialog"]');
    const safe = box?.querySelector<HTMLButtonElement>('button[data-escape]');
    if (!safe || safe.disabled) return;
    ev.preventDefault();
    safe.click();
  });
}

export function replaceChildren(el: Element, ...children: Child[]): void {
  el.replaceChildren();
  append(el, ...children);
}
