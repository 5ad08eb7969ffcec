// Typed errors that survive the worker boundary. comlink passes a plain Error, so the page could not tell an
// out-of-memory from a corrupt file; every error we raise carries a `kind` and is serialised with it.

export type ErrorKind =
  | 'no-webgpu' // no adapter/device could be had
  | 'out-of-memory' // a GPU allocation failed or would exceed a limit
  | 'device-lost' // the GPU device went away mid-run
  | 'shader-compile' // WGSL failed to compile or a pipeline failed to build
  | 'bad-input' // user-supplied data (files, config, flags) is wrong
  | 'mismatch' // a numerical check failed
  | 'remote' // a remote service (Replicate, or the proxy in front of it) refused or failed a request
  | 'network' // a remote service could not be reached, or the connection broke
  | 'internal'; // a bug on our side

export class FinetuneError extends Error {
  readonly kind: ErrorKind;
  readonly details?: Record<string, unknown>;
  constructor(kind: ErrorKind, message: string, details?: Record<string, unknown>) {
    super(message);
    this.name = 'FinetuneError';
    this.kind = kind;
    if (details !== undefined) this.details = details;
  }
}

export interface SerializedError {
  name: string;
  kind: ErrorKind;
  message: string;
  stack?: string;
  details?: Record<string, unknown>;
}

/** What a thrown value is called when String() cannot turn it into text. */
const NO_TEXT = 'a thrown value that has no text';

/**
 * A thrown value as text, which never throws: String() throws for an object with no prototype (Object.create(null)
 * has no toString) and for one whose toString or Symbol.toPrimitive throws, and code that reports a failure must not
 * fail itself: the worker's throw handler would send comlink's own error in place of an answer.
 */
export function thrownText(value: unknown): string {
  try {
    return String(value);
  } catch {
    return NO_TEXT;
  }
}

/**
 * What a thrown value says went wrong, which never throws: its message where that is text (an Error, a DOMException, a
 * plain object that has one), else thrownText of the value. `(e as Error).message ?? String(e)` threw for an object
 * with no prototype, in place of the message it was to be part of.
 */
export function thrownMessage(value: unknown): string {
  const message = readSafely(() => (value as { message?: unknown } | null | undefined)?.message);
  if (typeof message === 'string') return message;
  // A message that is not text (a number, say) still says more than the object around it.
  return message === undefined || message === null ? thrownText(value) : thrownText(message);
}

/** A thrown value's name where it has one as text (QuotaExceededError, NotFoundError), which never throws. */
export function thrownName(value: unknown): string | undefined {
  const name = readSafely(() => (value as { name?: unknown } | null | undefined)?.name);
  return typeof name === 'string' ? name : undefined;
}

/** `read()`, or undefined when reading throws (a getter of a foreign error). */
function readSafely(read: () => unknown): unknown {
  try {
    return read();
  } catch {
    return undefined;
  }
}

/** Never throws, whatever was thrown: it runs in the worker's throw handler, where a failure loses the answer. */
export function serializeError(err: unknown): SerializedError {
  if (err instanceof FinetuneError) {
    const s: SerializedError = { name: err.name, kind: err.kind, message: err.message, stack: err.stack };
    if (err.details !== undefined) s.details = clonableDetails(err.details);
    return s;
  }
  if (err instanceof Error) {
    // A foreign error's name, message and stack may be getters that throw, or values that are not text.
    const name = readSafely(() => err.name);
    const message = readSafely(() => err.message);
    const stack = readSafely(() => err.stack);
    return {
      name: typeof name === 'string' ? name : 'Error',
      kind: 'internal',
      message: typeof message === 'string' ? message : message === undefined ? 'an error whose message cannot be read' : thrownText(message),
      ...(typeof stack === 'string' ? { stack } : {}),
    };
  }
  return { name: 'Error', kind: 'internal', message: thrownText(err) };
}

/**
 * The details as postMessage can clone them. One value it cannot clone (a function, a symbol, a GPU object) makes
 * postMessage throw, and comlink then sends its own TypeError ('Unserializable return value') in place of ours: the
 * page would see kind 'internal' and lose the kind it chooses its offer from, and the message with it. So an entry that
 * does not clone is dropped, on its own: the kind, the message and the other entries are what the page reads; the
 * dropped values were only ever of use inside the worker.
 */
function clonableDetails(details: Record<string, unknown>): Record<string, unknown> {
  if (clones(details)) return details;
  const kept: Record<string, unknown> = {};
  for (const [key, value] of Object.entries(details)) if (clones(value)) kept[key] = value;
  return kept;
}

function clones(value: unknown): boolean {
  try {
    structuredClone(value);
    return true;
  } catch {
    return false;
  }
}

export function deserializeError(s: SerializedError): FinetuneError {
  const e = new FinetuneError(s.kind, s.message, s.details);
  if (s.stack) e.stack = s.stack;
  return e;
}

export function isFinetuneError(err: unknown, kind?: ErrorKind): err is FinetuneError {
  return err instanceof FinetuneError && (kind === undefined || err.kind === kind);
}
