// The remote panel's form values that survive a reload, as the hyperparameters do: the destination model and the
// visibility of a new one. Never the token (remote-panel.ts keeps that apart, and only when the user asks).

import { holdsTokenLike } from '../core/secret-text.ts';

export const REMOTE_FORM_KEY = 'finetune.remote.form';

export interface RemoteFormValues {
  destination: string;
  visibility: 'private' | 'public';
}

const EMPTY: RemoteFormValues = { destination: '', visibility: 'private' };

/** What was saved, or the empty form when nothing (readable) was. */
export function loadRemoteForm(store: Pick<Storage, 'getItem'>): RemoteFormValues {
  try {
    const v = JSON.parse(store.getItem(REMOTE_FORM_KEY) ?? 'null') as Partial<Record<keyof RemoteFormValues, unknown>> | null;
    if (typeof v !== 'object' || v === null || Array.isArray(v)) return { ...EMPTY };
    return {
      destination: typeof v.destination === 'string' ? v.destination.slice(0, 200) : '',
      visibility: v.visibility === 'public' ? 'public' : 'private',
    };
  } catch {
    return { ...EMPTY };
  }
}

/** Saves the values; a destination holding the token (pasted into the wrong field) is not written down. */
export function saveRemoteForm(store: Pick<Storage, 'setItem'>, values: RemoteFormValues, token: string): void {
  const leaks = (token.length >= 4 && values.destination.includes(token)) || holdsTokenLike(values.destination);
  store.setItem(REMOTE_FORM_KEY, JSON.stringify({ destination: leaks ? '' : values.destination, visibility: values.visibility }));
}
