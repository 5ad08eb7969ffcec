// Byte arrays put together: what a stream reader's chunks, or several reads of a file, become before they are parsed
// or hashed whole.

/** `parts` one after the other in one array (`parts[0]` itself when it is the only one); `total`: their summed length. */
export function concatBytes(parts: readonly Uint8Array[], total = parts.reduce((n, p) => n + p.byteLength, 0)): Uint8Array {
  if (parts.length === 1) return parts[0];
  const out = new Uint8Array(total);
  let at = 0;
  for (const p of parts) {
    out.set(p, at);
    at += p.byteLength;
  }
  return out;
}
