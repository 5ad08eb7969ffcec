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
