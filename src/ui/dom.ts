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

/**
 * Where a key pressed on tab `from` of a row of tabs moves, by the WAI-ARIA tabs pattern: ArrowRight / ArrowLeft to the
 * next / previous tab (wrapping at the ends), Home / End to the first / last. Disabled tabs (`enabled[i]` false) are
 * passed over, as a click cannot reach them either. Null: a key the tabs leave to the page, or no other tab to go to.
 */
export function tabKeyTarget(key: string, from: number, enabled: readonly boolean[]): number | null {
  const n = enabled.length;
  const order: number[] = [];
  if (key === 'ArrowRight') for (let i = 1; i < n; i++) order.push((from + i) % n);
  else if (key === 'ArrowLeft') for (let i = 1; i < n; i++) order.push((from - i + n) % n);
  else if (key === 'Home') for (let i = 0; i < n; i++) order.push(i);
  else if (key === 'End') for (let i = n - 1; i >= 0; i--) order.push(i);
  else return null;
  const to = order.find((i) => enabled[i]);
  return to === undefined || to === from ? null : to;
}

/**
 * Marks `selected` as the selected tab of a row of tabs (aria-selected) and makes it the row's one Tab stop (tabindex 0,
 * the others -1): Tab goes past the tablist to the panel, the arrows move within it (tabKeys).
 */
export function markSelectedTab(tabs: readonly HTMLElement[], selected: HTMLElement): void {
  for (const t of tabs) {
    t.setAttribute('aria-selected', String(t === selected));
    t.tabIndex = t === selected ? 0 : -1;
  }
}

/**
 * The keyboard of a row of tabs that select on click (role="tab" buttons): the keys of tabKeyTarget move focus to a tab
 * and click it, so the key selects exactly as a click does (automatic activation), whatever the click does besides.
 * With a modifier the key is the browser's (Alt+ArrowLeft goes back).
 */
export function tabKeys(tabs: readonly HTMLButtonElement[]): void {
  tabs.forEach((tab, i) => {
    tab.addEventListener('keydown', (ev) => {
      if (ev.altKey || ev.ctrlKey || ev.metaKey || ev.shiftKey) return;
      const to = tabKeyTarget(ev.key, i, tabs.map((t) => !t.disabled));
      if (to === null) return;
      ev.preventDefault();
      const target = tabs[to];
      target.focus();
      target.click();
    });
  });
}
