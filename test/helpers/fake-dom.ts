// A stand-in for the few DOM calls src/ui/dom.ts's h() makes (createElement, createTextNode, setAttribute, className,
// addEventListener, append), so that a view built with it can be read and clicked in the unit project, which runs in
// Node without a DOM. Not a DOM: anything else a view asks for throws, as a missing method does.

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
  private readonly listeners = new Map<string, ((ev: Event) => void)[]>();

  constructor(readonly tagName: string) {}

  setAttribute(name: string, value: string): void {
    this.attributes.set(name, value);
  }

  getAttribute(name: string): string | null {
    return this.attributes.get(name) ?? null;
  }

  addEventListener(type: string, listener: (ev: Event) => void): void {
    this.listeners.set(type, [...(this.listeners.get(type) ?? []), listener]);
  }

  append(...nodes: FakeChild[]): void {
    this.childNodes.push(...nodes);
  }

  replaceChildren(...nodes: FakeChild[]): void {
    this.childNodes.splice(0, this.childNodes.length, ...nodes);
  }

  get textContent(): string {
    return this.childNodes.map((c) => c.textContent).join('');
  }

  /** Calls the click listeners, as a click on the element would. */
  click(): void {
    for (const listener of this.listeners.get('click') ?? []) listener({ type: 'click' } as Event);
  }

  /** This element and every element below it, in document order. */
  *elements(): Generator<FakeElement> {
    yield this;
    for (const c of this.childNodes) if (c instanceof FakeElement) yield* c.elements();
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
