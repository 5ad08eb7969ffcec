// The remote panel's form values that survive a reload (destination, visibility) — never the token.
import { describe, expect, it } from 'vitest';
import { loadRemoteForm, REMOTE_FORM_KEY, saveRemoteForm } from '../../../src/ui/remote-prefs.ts';

function memoryStorage(): Pick<Storage, 'getItem' | 'setItem' | 'removeItem'> & { entries: Map<string, string> } {
  const entries = new Map<string, string>();
  return {
    entries,
    getItem: (k) => entries.get(k) ?? null,
    setItem: (k, v) => void entries.set(k, String(v)),
    removeItem: (k) => void entries.delete(k),
  };
}

describe('remote form values', () => {
  it('come back after a reload as they were saved', () => {
    const s = memoryStorage();
    expect(loadRemoteForm(s)).toEqual({ destination: '', visibility: 'private' });
    saveRemoteForm(s, { destination: 'me/my-model', visibility: 'public' }, 'r8_sometoken0123456789abcdefghijklmnopqr');
    expect(loadRemoteForm(s)).toEqual({ destination: 'me/my-model', visibility: 'public' });
  });

  it('ignore what is not theirs to read: bad JSON, wrong types, an unknown visibility', () => {
    const s = memoryStorage();
    for (const bad of ['{', '[]', '"x"', 'null', '{"destination":3,"visibility":"secret"}']) {
      s.entries.set(REMOTE_FORM_KEY, bad);
      expect(loadRemoteForm(s)).toEqual({ destination: '', visibility: 'private' });
    }
  });

  it('never store the token, even when it was pasted into the destination field by mistake', () => {
    const s = memoryStorage();
    const token = 'r8_pastedtoken0123456789abcdefghijklmnopq';
    saveRemoteForm(s, { destination: token, visibility: 'private' }, token);
    expect([...s.entries.values()].join('\n')).not.toContain(token.slice(3));
    expect(loadRemoteForm(s).destination).toBe('');
    // Pasted there before the token field holds it (nothing to compare with yet): not written down either.
    const early = memoryStorage();
    saveRemoteForm(early, { destination: token, visibility: 'private' }, '');
    expect([...early.entries.values()].join('\n')).not.toContain(token.slice(3));
    saveRemoteForm(early, { destination: 'alice/hf_bot', visibility: 'private' }, '');
    expect(loadRemoteForm(early).destination).toBe('alice/hf_bot');
  });
});
