// GGUF's magic, the 4 bytes "GGUF" every GGUF file starts with: the exporter writes it, and the adapter importer
// recognises a GGUF it does not read by it (model may not import from export, so the fact lives here).

export const GGUF_MAGIC = 'GGUF';

/** Whether `bytes` start with GGUF's magic. */
export function startsWithGgufMagic(bytes: Uint8Array): boolean {
  return bytes.length >= GGUF_MAGIC.length && [...GGUF_MAGIC].every((c, i) => bytes[i] === c.charCodeAt(0));
}
