// Generated request paths for the servers' fuzz tests: a path a server means to serve (or to refuse), then mutated the
// ways a path is spelled to slip past a check — percent-encoding (single, double, any case), backslashes, repeated
// slashes, dot segments, `;` parameters, a query or fragment, Unicode look-alikes, case changes, absolute-form targets,
// `@` and `:`, and great length. The result is a string of bytes as latin1 characters: one character, one byte on the
// wire (non-ASCII characters were encoded as UTF-8 first), ready for rawRequest.

import fc from 'fast-check';

/** Each byte of `s`'s UTF-8 encoding as one latin1 character. */
export function utf8Bytes(s: string): string {
  return Buffer.from(s, 'utf8').toString('latin1');
}

/** `s`'s UTF-8 bytes percent-encoded, hex digits in the case asked. */
function percentEncoded(s: string, upper: boolean): string {
  const hex = [...Buffer.from(s, 'utf8')].map((b) => `%${b.toString(16).padStart(2, '0')}`).join('');
  return upper ? hex.toUpperCase() : hex;
}

/** Characters a lenient server (or a person) may read as another: full-width forms, Cyrillic letters, division slash. */
const LOOK_ALIKES: Record<string, string[]> = {
  '/': ['\u2215', '\uff0f', '\u2044'],
  '.': ['\uff0e', '\u3002', '\u2024'],
  a: ['\u0430', '\uff41'],
  c: ['\u0441', '\uff43'],
  e: ['\u0435', '\uff45'],
  o: ['\u043e', '\uff4f'],
  p: ['\u0440', '\uff50'],
  i: ['\u0456', '\uff49'],
  s: ['\u0455', '\uff53'],
  v: ['\u03bd', '\uff56'],
  1: ['\uff11', '\u0661'],
};

/** Pieces inserted at some position: dot segments (plain and encoded), slashes, parameters, user info and ports. */
const INSERTS = [
  '//', '/./', '/../', '/..', '/.', '/%2e%2e/', '/%2E%2E/', '/%2e/', '/.%2e/', '/..%2f', '/..%5c', '/%252e%252e/', '/%25252e%25252e/',
  '\\', '\\..\\', '%5c', '%5C..%5C', '%2f', '%2F', '%252f', ';', ';x=1', '/..;/', '%00', '%20', '%09', '\t', ' ', '@', '@evil.example',
  ':', ':443', '%40', '%3a', '%3f', '%23', '?', '#', '~', '%7e', '%c0%ae%c0%ae/', '%e2%88%95',
];

/** What may end a path. */
const SUFFIXES = ['', '/', ';', ';jsessionid=1', '?', '?x=1', '#', '#frag', '?url=https://evil.example/', '.', '..', '/.', '/..', '%2f', '%00', '?a#b/../../x', '%3f', '%23', '.json', '~'];

/** Absolute-form and other prefixes in front of the whole target. */
const PREFIXES = ['http://evil.example', 'http://api.replicate.com', 'https://api.replicate.com:443', 'http://user:pass@evil.example', '//evil.example', 'http://127.0.0.1:1', 'http:', '*'];

type Mutation =
  | { kind: 'encode'; at: number; upper: boolean; times: 1 | 2 }
  | { kind: 'backslash'; at: number; how: string }
  | { kind: 'insert'; at: number; piece: string }
  | { kind: 'case'; at: number }
  | { kind: 'lookalike'; at: number; pick: number; encoded: boolean }
  | { kind: 'long'; at: number; piece: string; times: number };

const mutationArb: fc.Arbitrary<Mutation> = fc.oneof(
  fc.record({ kind: fc.constant('encode' as const), at: fc.nat(), upper: fc.boolean(), times: fc.constantFrom(1 as const, 2 as const) }),
  fc.record({ kind: fc.constant('backslash' as const), at: fc.nat(), how: fc.constantFrom('\\', '%5c', '%5C', '%2f', '%2F', '%252f', '%255c') }),
  fc.record({ kind: fc.constant('insert' as const), at: fc.nat(), piece: fc.constantFrom(...INSERTS) }),
  fc.record({ kind: fc.constant('case' as const), at: fc.nat() }),
  fc.record({ kind: fc.constant('lookalike' as const), at: fc.nat(), pick: fc.nat(), encoded: fc.boolean() }),
  fc.record({ kind: fc.constant('long' as const), at: fc.nat(), piece: fc.constantFrom('a', '/a', '/.', '/..', '%2e', '//'), times: fc.integer({ min: 100, max: 4000 }) }),
);

/** The characters of `s` (a path still as text: non-ASCII characters encoded to bytes at the end). */
function applyMutation(s: string, m: Mutation): string {
  const at = s.length === 0 ? 0 : m.at % s.length;
  const ch = s[at] ?? '';
  switch (m.kind) {
    case 'encode': {
      const once = percentEncoded(ch, m.upper);
      return s.slice(0, at) + (m.times === 1 ? once : once.replace(/%/g, '%25')) + s.slice(at + 1);
    }
    case 'backslash': {
      // The slash at or after `at` (the first one when none is after it).
      const i = s.indexOf('/', at) >= 0 ? s.indexOf('/', at) : s.indexOf('/');
      return i < 0 ? s : s.slice(0, i) + m.how + s.slice(i + 1);
    }
    case 'insert':
      return s.slice(0, at) + m.piece + s.slice(at);
    case 'case':
      return s.slice(0, at) + (ch === ch.toUpperCase() ? ch.toLowerCase() : ch.toUpperCase()) + s.slice(at + 1);
    case 'lookalike': {
      const options = LOOK_ALIKES[ch];
      if (!options) return s;
      const alike = options[m.pick % options.length]!;
      return s.slice(0, at) + (m.encoded ? percentEncoded(alike, false) : alike) + s.slice(at + 1);
    }
    case 'long':
      return s.slice(0, at) + m.piece.repeat(m.times) + s.slice(at);
  }
}

/**
 * A path from `bases`, mutated 1 to 4 times, perhaps with a suffix; or (one time in four) as it is, perhaps with a
 * query, so that what may pass is generated often enough to be checked. As text (non-ASCII characters as themselves).
 */
export function mutatedPathText(bases: readonly string[]): fc.Arbitrary<string> {
  const plain = fc.tuple(fc.constantFrom(...bases), fc.constantFrom('', '', '?x=1', '/')).map(([base, suffix]) => base + suffix);
  const mutated = fc
    .tuple(fc.constantFrom(...bases), fc.array(mutationArb, { minLength: 1, maxLength: 4 }), fc.constantFrom(...SUFFIXES))
    .map(([base, ms, suffix]) => ms.reduce(applyMutation, base) + suffix);
  return fc.oneof({ weight: 1, arbitrary: plain }, { weight: 3, arbitrary: mutated });
}

/** A request target: a mutated path from `bases`, sometimes in absolute form or after another prefix; as bytes (latin1). */
export function mutatedTarget(bases: readonly string[]): fc.Arbitrary<string> {
  return fc
    .tuple(fc.oneof({ weight: 6, arbitrary: fc.constant('') }, { weight: 1, arbitrary: fc.constantFrom(...PREFIXES) }), mutatedPathText(bases))
    .map(([prefix, path]) => utf8Bytes(prefix + path));
}
