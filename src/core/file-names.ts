// The names of files we hand to people, made in one place so the page's label and the worker's download agree.

/** A file-name-safe slug of a model name: "mistralai/Mistral-7B-Instruct-v0.2" → "mistralai-Mistral-7B-Instruct-v0.2". */
export function fileSlug(name: string): string {
  const s = name
    .replace(/[^A-Za-z0-9._-]+/g, '-')
    .replace(/-+/g, '-')
    .replace(/^[-.]+|[-.]+$/g, '');
  return s.slice(0, 80) || 'model';
}

/**
 * Which adapter a file holds: a run's, after its step N, or one loaded from outside ('imported'), which has no step
 * here (it was named after the run's step, step0 or a later run's, as if this page had trained it).
 */
export type AdapterOrigin = number | 'imported';

/** adapter-<model>-step<N>.zip (or -imported.zip) for the PEFT pair; with -gguf before .zip for the whole bundle. */
export function adapterZipName(modelName: string, origin: AdapterOrigin, full: boolean): string {
  return `adapter-${fileSlug(modelName)}-${origin === 'imported' ? 'imported' : `step${origin}`}${full ? '-gguf' : ''}.zip`;
}
