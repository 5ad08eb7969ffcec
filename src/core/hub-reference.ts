// How a model loaded from the Hugging Face Hub is named across the project: `owner/name`, or `owner/name@revision` when
// a revision other than the default was loaded. Files that other tools read (adapter_config.json, README snippets) need
// the two apart: PEFT's base_model_name_or_path takes the plain id, its `revision` field the revision.

export interface HubReference {
  repo: string;
  revision: string | null;
}

const HUB_REFERENCE = /^([A-Za-z0-9][\w.-]*\/[\w.-]+)(?:@([\w./-]+))?$/;

/** The Hub id and revision of `owner/name[@revision]`; null for anything else (a local folder's name, a URL). */
export function parseHubReference(name: string): HubReference | null {
  const m = HUB_REFERENCE.exec(name);
  return m ? { repo: m[1], revision: m[2] ?? null } : null;
}

/** Whether a URL is Hugging Face's own, over https: the only place a Hugging Face token is sent. */
export function isHuggingFaceUrl(url: string): boolean {
  try {
    const u = new URL(url);
    const host = u.hostname.toLowerCase();
    return u.protocol === 'https:' && (host === 'huggingface.co' || host.endsWith('.huggingface.co') || host === 'hf.co');
  } catch {
    return false;
  }
}

/** Whether `text` is written as a repository id, owner/name (what the page's Hugging Face tab takes). */
export function isHubRepoId(text: string): boolean {
  return /^[\w.-]+\/[\w.-]+$/.test(text);
}

/**
 * A repository as a person may paste it: `owner/name`, or the address of its page or of a file in it
 * (`https://huggingface.co/owner/name`, `…/tree/REV`, `…/blob/REV/config.json`, `hf.co/…`, with or without the scheme).
 * The revision is the one the address names, if any (its first path segment after tree, blob or resolve). Null when
 * it is neither.
 */
export function hubRepoFromInput(text: string): { repo: string; revision: string | null } | null {
  const t = text.trim();
  if (isHubRepoId(t)) return { repo: t, revision: null };
  let u: URL;
  try {
    u = new URL(/^[a-z][a-z0-9+.-]*:\/\//i.test(t) ? t : `https://${t}`);
  } catch {
    return null;
  }
  const host = u.hostname.toLowerCase();
  if (!['http:', 'https:'].includes(u.protocol) || !(host === 'huggingface.co' || host === 'www.huggingface.co' || host === 'hf.co')) return null;
  const parts = u.pathname.split('/').filter(Boolean);
  // Datasets and Spaces live under their own prefix: not a model.
  if (parts.length < 2 || parts[0] === 'datasets' || parts[0] === 'spaces') return null;
  const repo = `${parts[0]}/${parts[1]}`;
  if (!isHubRepoId(repo)) return null;
  let revision: string | null = null;
  if (['tree', 'blob', 'resolve'].includes(parts[2] ?? '') && parts[3]) {
    try {
      revision = decodeURIComponent(parts[3]);
    } catch {
      return null;
    }
  }
  return { repo, revision };
}
