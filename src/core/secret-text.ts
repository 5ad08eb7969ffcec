// Text that looks like an API token: Replicate's ("r8_" + 37 characters) or Hugging Face's ("hf_" + 34). A token
// pasted into the wrong field (the destination model, say) must not come back in an error message or be written
// down, even before the token field holds the same text to compare with.

const TOKEN = /\b(?:r8|hf)_[A-Za-z0-9]{16,}\b/;

/** Whether `text` holds something shaped like a Replicate or Hugging Face token. */
export function holdsTokenLike(text: string): boolean {
  return TOKEN.test(text);
}
