// The names of files we hand to people, made in one place so the page's label and the worker's download agree.

/** A file-name-safe slug of a model name: "mistralai/Mistral-7B-Instruct-v0.2" → "mistralai-Mistral-7B-Instruct-v0.2". */
export function fileSlug(name: string): string {
  const s = name
    .replace(/[^A-Za-z0-9._-]+/g, '-')
    .replace(/-+/g, '-')
    .replace(/^[-.]+|[-.]+$/g, '');
  return s.slice(0, 80) || 'model';
}

/** adapter-<model>-step<N>.zip for the PEFT pair, adapter-<model>-step<N>-gguf.zip for the whole bundle. */
export function adapterZipName(modelName: string, step: number, full: boolean): string {
  return `adapter-${fileSlug(modelName)}-step${step}${full ? '-gguf' : ''}.zip`;
}
