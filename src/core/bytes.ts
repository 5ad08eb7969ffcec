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

/**
 * A response body read whole, or null once it passes `maxBytes` (the rest is canceled, which closes the connection):
 * a declared Content-Length is not always there to refuse by (chunked answers, a proxy streaming unsized), and
 * reading all of it first held whatever the other end sent.
 */
export async function readAtMost(body: ReadableStream<Uint8Array> | null, maxBytes: number): Promise<Uint8Array | null> {
  if (!body) return new Uint8Array(0);
  const reader = body.getReader();
  const chunks: Uint8Array[] = [];
  let total = 0;
  for (;;) {
    const { done, value } = await reader.read();
    if (done) break;
    total += value.byteLength;
    if (total > maxBytes) {
      await reader.cancel().catch(() => undefined);
      return null;
    }
    chunks.push(value);
  }
  return chunks.length === 0 ? new Uint8Array(0) : concatBytes(chunks, total);
}

/**
 * The SHA-256 of `bytes` as 64 lowercase hex digits (WebCrypto: the same in browsers and Node). A view on a
 * SharedArrayBuffer is copied first: WebCrypto takes ArrayBuffer-backed views only.
 */
export async function sha256Hex(bytes: Uint8Array): Promise<string> {
  const own = bytes.buffer instanceof ArrayBuffer ? (bytes as Uint8Array<ArrayBuffer>) : new Uint8Array(bytes);
  const digest = new Uint8Array(await crypto.subtle.digest('SHA-256', own));
  return Array.from(digest, (b) => b.toString(16).padStart(2, '0')).join('');
}

/** "sha256:<hex>": the checksum a run record keeps of a file it depends on (its state, its data, the tokenizer model). */
export async function sha256Checksum(bytes: Uint8Array): Promise<string> {
  return `sha256:${await sha256Hex(bytes)}`;
}

const CRC_TABLE = ((): Uint32Array => {
  const t = new Uint32Array(256);
  for (let n = 0; n < 256; n++) {
    let c = n;
    for (let k = 0; k < 8; k++) c = c & 1 ? 0xedb88320 ^ (c >>> 1) : c >>> 1;
    t[n] = c >>> 0;
  }
  return t;
})();

/**
 * The CRC-32 of `bytes` as zip and PNG compute it (reflected polynomial 0xEDB88320): a damaged byte's check where an
 * answer is needed at once (WebCrypto's SHA-256 is asynchronous), e.g. a zip entry's, a run record's.
 */
export function crc32(bytes: Uint8Array): number {
  let c = 0xffffffff;
  for (let i = 0; i < bytes.length; i++) c = CRC_TABLE[(c ^ bytes[i]) & 0xff] ^ (c >>> 8);
  return (c ^ 0xffffffff) >>> 0;
}
