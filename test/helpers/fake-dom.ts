// A stand-in for the few DOM calls src/ui/dom.ts's h() makes (createElement, createTextNode, setAttribute, className,
// addEventListener, append), and the few more a view makes of its own elements (textContent, insertBefore,
// parentNode, dataset, hidden, querySelector by tag or data-testid, classList.contains and toggle, an input's value
// and checked, events besides clicks, focus), so that a view built with it can be read and clicked in the unit
// project, which runs in Node without a DOM. Not a DOM: anything else a view asks for throws, as a missing method does.

type FakeChild = FakeElement | FakeText;

export class FakeText {
  constructor(readonly data: string) {}
  get textContent(): string {
    return this.data;
  }
}

export class FakeElement {
  readonly attributes = new Map<string, string>();
  readonly childNodes: FakeChild[] = [];
  className = '';
  /** The element this one was appended to or inserted in, or null. */
  parentNode: FakeElement | null = null;
  /** data-* values a view sets through `dataset` (h() sets them as attributes). */
  readonly dataset: Record<string, string> = {};
  checked = false;
  private typed: string | null = null;
  private readonly listeners = new Map<string, ((ev: Event) => void)[]>();

  constructor(readonly tagName: string) {}

  /** An input's value: what was typed (set), else its value attribute, as a browser's input gives it. */
  get value(): string {
    return this.typed ?? this.attributes.get('value') ?? '';
  }

  set value(v: string) {
    this.typed = v;
  }

  setAttribute(name: string, value: string): void {
    this.attributes.set(name, value);
  }

  /** As in a browser, the hidden attribute: set by h() or by the property. */
  get hidden(): boolean {
    return this.attributes.has('hidden');
  }

  set hidden(on: boolean) {
    if (on) this.attributes.set('hidden', '');
    else this.attributes.delete('hidden');
  }

  getAttribute(name: string): string | null {
    return this.attributes.get(name) ?? null;
  }

  addEventListener(type: string, listener: (ev: Event) => void): void {
    this.listeners.set(type, [...(this.listeners.get(type) ?? []), listener]);
  }

  append(...nodes: FakeChild[]): void {
    this.childNodes.push(...nodes);
    for (const n of nodes) if (n instanceof FakeElement) n.parentNode = this;
  }

  replaceChildren(...nodes: FakeChild[]): void {
    for (const n of this.childNodes) if (n instanceof FakeElement) n.parentNode = null;
    this.childNodes.splice(0, this.childNodes.length, ...nodes);
    for (const n of nodes) if (n instanceof FakeElement) n.parentNode = this;
  }

  /** Puts `node` before `before` (one of this element's children), or last when `before` is null. */
  insertBefore(node: FakeChild, before: FakeChild | null): FakeChild {
    const at = before === null ? -1 : this.childNodes.indexOf(before);
    if (before !== null && at < 0) throw new Error('insertBefore: the reference node is not a child of this element');
    if (at < 0) this.childNodes.push(node);
    else this.childNodes.splice(at, 0, node);
    if (node instanceof FakeElement) node.parentNode = this;
    return node;
  }

  get textContent(): string {
    return this.childNodes.map((c) => c.textContent).join('');
  }

  /** As in a browser: the children give way to one text node. */
  set textContent(text: string) {
    this.replaceChildren(...(text === '' ? [] : [new FakeText(text)]));
  }

  /** Where a view puts the focus (the safe answer of a question, say): nothing to fake in Node. */
  focus(): void {}

  /** Calls the click listeners, as a click on the element would. */
  click(): void {
    this.fire('click');
  }

  /** Calls the listeners of an event of this type (a file input's 'change', say), as the browser would. */
  fire(type: string): void {
    for (const listener of this.listeners.get(type) ?? []) listener({ type } as Event);
  }

  /** The class names, read from className and written back to it (contains and toggle are what views ask of it). */
  get classList(): { contains(name: string): boolean; toggle(name: string, force?: boolean): boolean } {
    const names = (): string[] => this.className.split(/\s+/).filter(Boolean);
    return {
      contains: (name) => names().includes(name),
      toggle: (name, force) => {
        const on = force ?? !names().includes(name);
        this.className = [...names().filter((n) => n !== name), ...(on ? [name] : [])].join(' ');
        return on;
      },
    };
  }

  /** This element and every element below it, in document order. */
  *elements(): Generator<FakeElement> {
    yield this;
    for (const c of this.childNodes) if (c instanceof FakeElement) yield* c.elements();
  }

  /**
   * The first element below this one that a tag name ('details') or a data-testid ('[data-testid="plan-lr"]') names,
   * or any of a list of those ('[data-testid="a"], [data-testid="b"]'), the selectors views ask for, or null.
   */
  querySelector(selector: string): FakeElement | null {
    const tests = selector.split(',').map((one) => {
      const s = one.trim();
      const testid = /^\[data-testid="([^"]+)"\]$/.exec(s)?.[1];
      if (testid === undefined && !/^[a-z][a-z0-9]*$/.test(s)) throw new Error(`querySelector: ${selector} is not faked`);
      return (e: FakeElement): boolean => (testid === undefined ? e.tagName === s.toUpperCase() : e.getAttribute('data-testid') === testid);
    });
    for (const e of this.elements()) if (e !== this && tests.some((named) => named(e))) return e;
    return null;
  }

  /** The first element here or below with this data-testid, or null. */
  byTestId(id: string): FakeElement | null {
    for (const e of this.elements()) if (e.getAttribute('data-testid') === id) return e;
    return null;
  }
}

/** Puts a fake `document` on globalThis for the duration of a test; the returned function takes it away again. */
export function installFakeDocument(): () => void {
  const g = globalThis as { document?: unknown };
  const before = g.document;
  g.document = {
    createElement: (tag: string) => new FakeElement(tag.toUpperCase()),
    createTextNode: (data: string) => new FakeText(data),
  };
  return () => {
    if (before === undefined) delete g.document;
    else g.document = before;
  };
}

/** A view built with h() under installFakeDocument, as what it is there. */
export const asFake = (node: Node): FakeElement => {
  if (!((node as unknown) instanceof FakeElement)) throw new Error('not built under installFakeDocument');
  return node as unknown as FakeElement;
};
