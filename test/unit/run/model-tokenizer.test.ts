// A model of another vocabulary than the app's tokenizer (Mistral-7B-Instruct-v0.3: 32768) reads with the
// tokenizer.model beside its weights: from a Hub repository (over HTTP, as the page and the CLI read one) or any file
// set. None, one of yet another vocabulary, a file that is no tokenizer and a hostile size are refused, naming it.
import { readFileSync } from 'node:fs';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { loadTokenizer, type Tokenizer } from '../../../src/data/tokenizer.ts';
import { hubFileSet, memoryFileSet, type FileSet } from '../../../src/model/source.ts';
import { MAX_TOKENIZER_BYTES, tokenizerForModel } from '../../../src/run/model-tokenizer.ts';

const V1 = new Uint8Array(readFileSync('test/fixtures/mistral-tokenizer/tokenizer.model'));
const V3 = new Uint8Array(readFileSync('test/fixtures/mistral-tokenizer-v3/tokenizer.model'));
const errorOf = (f: () => Promise<unknown>): Promise<Error> => f().then(() => new Error('no error'), (e: Error) => e);

describe("a model's own tokenizer", () => {
  let app: Tokenizer;
  let server: Server;
  let base = '';
  const asked: string[] = [];
  beforeAll(async () => {
    app = await loadTokenizer(V1, "the app's tokenizer");
    // A Hub repository with a tokenizer.model, and one without (404 EntryNotFound, as the Hub answers).
    server = createServer((req, res) => {
      const url = (req.url ?? '').split('?')[0];
      asked.push(url);
      if (url === '/someone/v03/resolve/main/tokenizer.model') {
        const m = /^bytes=(\d+)-(\d+)$/.exec(req.headers.range ?? '');
        if (!m) return void res.writeHead(200, { 'content-length': V3.length }).end(Buffer.from(V3));
        const end = Math.min(Number(m[2]), V3.length - 1);
        res.writeHead(206, { 'content-range': `bytes ${m[1]}-${end}/${V3.length}`, 'content-length': end - Number(m[1]) + 1 });
        return void res.end(Buffer.from(V3.subarray(Number(m[1]), end + 1)));
      }
      res.writeHead(404, { 'x-error-code': 'EntryNotFound', 'x-error-message': 'Entry not found' }).end();
    });
    await new Promise<void>((ok) => server.listen(0, '127.0.0.1', ok));
    base = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  });
  afterAll(() => new Promise<void>((ok) => server.close(() => ok())));
  const hubFetch: typeof fetch = (input, init) => fetch(String(input).replace('https://huggingface.co', base), init);

  it("is not asked for when the model's vocabulary is the app tokenizer's", async () => {
    const untouchable: FileSet = { open: () => Promise.reject(new Error('opened')) };
    expect(await tokenizerForModel(untouchable, { vocabSize: 32000 }, app)).toBeNull();
  });

  it('is read from a Hub repository, and from any file set, when the vocabularies differ', async () => {
    const fromHub = await tokenizerForModel(hubFileSet('someone/v03', { fetch: hubFetch }), { vocabSize: 32768 }, app);
    expect(fromHub?.vocabSize).toBe(32768);
    expect(fromHub?.identity?.name).toBe("the model's own tokenizer (someone/v03/tokenizer.model)");
    expect(asked).toContain('/someone/v03/resolve/main/tokenizer.model');
    expect(fromHub?.encode('Hello')).toEqual([23325]);
    const fromFiles = await tokenizerForModel(memoryFileSet({ 'tokenizer.model': V3 }, 'picked files'), { vocabSize: 32768 }, app);
    expect(fromFiles?.identity?.checksum).toBe(fromHub?.identity?.checksum);
  });

  it('refuses a model without one, with one of yet another vocabulary, one that is no tokenizer, or one of a hostile size', async () => {
    const none = await errorOf(() => tokenizerForModel(hubFileSet('someone/v03-bare', { fetch: hubFetch }), { vocabSize: 32768 }, app));
    expect(none.message).toBe(
      "the model's vocabulary has 32768 tokens, the tokenizer 32000, and the model's files hold no tokenizer.model of its own: the model needs its own tokenizer: put its tokenizer.model beside its weights (on the page: pick the model's files or folder with it, or a Hub repository that has one), or give the command line --tokenizer DIR, a folder with it",
    );
    const other = await errorOf(() => tokenizerForModel(memoryFileSet({ 'tokenizer.model': V3 }, 'picked files'), { vocabSize: 131072 }, app));
    expect(other.message).toMatch(/^the model's vocabulary has 131072 tokens; its own tokenizer\.model \(.*tokenizer\.model\) has 32768: the two do not belong together$/);
    const junk = await errorOf(() => tokenizerForModel(memoryFileSet({ 'tokenizer.model': new Uint8Array(64).fill(0xff) }, 'picked files'), { vocabSize: 32768 }, app));
    expect(junk.message).toMatch(/tokenizer\.model is not a SentencePiece model file: /);
    // A size past any tokenizer is refused before a byte is read.
    const huge: FileSet = { open: async (name) => ({ name, size: MAX_TOKENIZER_BYTES + 1, read: () => Promise.reject(new Error('read')) }) };
    expect((await errorOf(() => tokenizerForModel(huge, { vocabSize: 32768 }, app))).message).toBe('tokenizer.model: 67,108,865 bytes, more than the 64.0 MiB a SentencePiece model could need: not a tokenizer');
  });
});
