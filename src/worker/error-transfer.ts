// What crosses the page ↔ worker boundary besides comlink's proxies: our typed errors. comlink turns a thrown
// error into a plain Error; this handler keeps its `kind` so the page can tell an out-of-memory from a bad file.
// Both sides call installErrorTransfer() before talking.

import * as Comlink from 'comlink';
import { deserializeError, serializeError, type SerializedError } from '../core/errors.ts';

let installed = false;

export function installErrorTransfer(): void {
  if (installed) return;
  installed = true;
  const original = Comlink.transferHandlers.get('throw');
  if (!original) throw new Error('comlink has no throw handler');
  Comlink.transferHandlers.set('throw', {
    canHandle: original.canHandle,
    serialize(value: unknown) {
      const thrown = (value as { value: unknown }).value;
      return [{ finetuneError: serializeError(thrown) }, []];
    },
    deserialize(serialized: unknown) {
      const s = serialized as { finetuneError?: SerializedError };
      if (s.finetuneError) throw deserializeError(s.finetuneError);
      return original.deserialize(serialized);
    },
  } as Comlink.TransferHandler<unknown, unknown>);
}
