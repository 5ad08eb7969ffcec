// Node's system errors (ENOENT, EACCES, ENOSPC…) in our messages. Node's own message embeds the path as it is
// ("ENOENT: no such file or directory, open 'a\nb'"): a line break in it started a line finetune never wrote, and a
// bidirectional control reordered the words after it. These rebuild what Node says from its fields (code, errno,
// syscall, path, dest), quoting the paths as every name in our messages is quoted (core/quote.ts).

import { getSystemErrorMap } from 'node:util';
import { thrownMessage } from '../core/errors.ts';
import { quote, visibleText } from '../core/quote.ts';

interface SystemErrorFields {
  code: string;
  description: string;
  syscall: string | null;
  path: string;
  dest: string | null;
}

/**
 * The fields of a Node system error that names a path, or null (another error, or one that names no path). Node's
 * carry a numeric errno; ours that keep a code and path for callers to test (node-store.ts's failed writes) have none,
 * and their message, which already says why and what was kept, is the one to show.
 */
function systemErrorFields(e: unknown): SystemErrorFields | null {
  if (!(e instanceof Error)) return null;
  const { code, errno, syscall, path, dest } = e as NodeJS.ErrnoException & { dest?: unknown };
  if (typeof code !== 'string' || typeof path !== 'string' || typeof errno !== 'number') return null;
  const description = getSystemErrorMap().get(errno)?.[1];
  return { code, description: description ?? '', syscall: typeof syscall === 'string' ? syscall : null, path, dest: typeof dest === 'string' ? dest : null };
}

/** "ENOENT: no such file or directory" (the code alone when Node has no description of it). */
function codeWords(f: SystemErrorFields): string {
  return f.description ? `${f.code}: ${f.description}` : f.code;
}

/**
 * Node's message of `e` with the paths it names quoted: "ENOENT: no such file or directory, open "a\nb"". An error
 * that names no path (a write on a file handle, one of ours) is its message, with visibleText's escapes.
 */
export function nodeErrorMessage(e: unknown): string {
  const f = systemErrorFields(e);
  if (!f) return visibleText(thrownMessage(e));
  const where = `${quote(f.path)}${f.dest !== null ? ` -> ${quote(f.dest)}` : ''}`;
  return `${codeWords(f)}, ${f.syscall !== null ? `${f.syscall} ` : ''}${where}`;
}

/**
 * Why `e` failed, for a message that names the path itself ("cannot read "path": ENOENT: no such file or directory"):
 * the code and Node's description, without Node's copy of the path. Otherwise as nodeErrorMessage.
 */
export function nodeErrorReason(e: unknown): string {
  const f = systemErrorFields(e);
  return f ? codeWords(f) : nodeErrorMessage(e);
}
