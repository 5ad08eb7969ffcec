// Sentences put together from parts the page does not write itself. Error messages from lower floors sometimes end
// with a full stop and sometimes not, so "`${message}.`" can print "the URL.." — these join them with one stop.

/** The text trimmed, with a full stop added unless it already ends a sentence (. ! ? …). */
export function endSentence(text: string): string {
  const t = text.trim();
  return t === '' || /[.!?…]$/.test(t) ? t : `${t}.`;
}

/** The non-empty parts, each ended as a sentence, joined by one space. */
export function joinSentences(...parts: string[]): string {
  return parts
    .map(endSentence)
    .filter((p) => p !== '')
    .join(' ');
}

/**
 * A message from a lower floor as a sentence of its own: a first plain word capitalised ("cannot …" → "Cannot …"); a
 * first word that names something (lr_scheduler, train_data, a path) is left as it is written.
 */
export function startSentence(text: string): string {
  const t = text.trim();
  return /^[a-z]+\b(?![_.(/-])/.test(t) ? t[0]!.toUpperCase() + t.slice(1) : t;
}
