// Imported by tokenizer.ts just BEFORE @agnai/sentencepiece-js: module evaluation follows import order, so this runs
// first. When that package's bundle is evaluated it computes its script directory: with no global `document` it
// takes a Node-only branch, `new (require('url').URL)('file:' + __filename)`, otherwise it uses the document's
// baseURI. In a browser Web Worker there is no `document`, so it takes the Node branch and dies on `__filename`
// ("ReferenceError: __filename is not defined"; bundlers replace require('url') by an empty stub as well). For that
// one evaluation we give a worker a stand-in `document` with a baseURI (the worker's own URL); tokenizer.ts removes
// it again as soon as the package is loaded. Node (real require and __filename) and pages (a real document) are
// left untouched. The directory is not used: the WASM binary is inlined in the package as a data: URL.

type Globals = { document?: unknown; importScripts?: unknown; location?: { href?: string } };
const g = globalThis as Globals;

const shimmed = typeof g.document === 'undefined' && typeof g.importScripts === 'function';
if (shimmed) g.document = { currentScript: null, baseURI: g.location?.href ?? 'http://localhost/' };

/** Takes the stand-in away once the package has been evaluated. */
export function restoreGlobals(): void {
  if (shimmed && g.document !== undefined) delete g.document;
}
