// The export bundle (src/export/bundle.ts): what the page and the CLI both hand out — the PEFT pair, adapter.gguf and a
// README — with the file names the page shows, the same bytes in every time zone.
import { unzipSync } from 'fflate';
import { afterEach, describe, expect, it, vi } from 'vitest';
import { adapterZipName, baseModelNameProblem } from '../../../src/core/file-names.ts';
import { adapterBundle, adapterZip, GGUF_FILE, loraToGguf, withBaseModel } from '../../../src/export/index.ts';
import { parseMistralConfig } from '../../../src/model/config.ts';
import { parseAdapter } from '../../../src/model/lora-adapter.ts';
import { readGguf } from '../../helpers/gguf-reader.ts';
import { fixtureBytes, fixtureJson, TINY_ADAPTER, TINY_MISTRAL } from '../model/helpers.ts';

const base = parseMistralConfig(fixtureJson(`${TINY_MISTRAL}/config.json`));
const adapter = () => parseAdapter(fixtureJson(`${TINY_ADAPTER}/adapter_config.json`), fixtureBytes(`${TINY_ADAPTER}/adapter_model.safetensors`), { base });

afterEach(() => {
  vi.unstubAllEnvs();
});

describe('adapter bundle', () => {
  it('holds the PEFT pair, a README that names the GGUF file, and the GGUF the exporter writes', async () => {
    const a = await adapter();
    const files = adapterBundle(a, base, { name: 'mistralai/Mistral-7B-Instruct-v0.2' });
    expect(Object.keys(files)).toEqual(['adapter_config.json', 'adapter_model.safetensors', 'README.md', GGUF_FILE]);
    // Byte for byte what `finetune export --format gguf` writes for the same adapter (its general.name once differed).
    expect(files[GGUF_FILE]).toEqual(loraToGguf(a, base));
    expect(readGguf(files[GGUF_FILE]).tensors.size).toBe(2 * 7 * base.layers);
    const readme = new TextDecoder().decode(files['README.md']);
    expect(readme).toContain(`--lora ./adapter/${GGUF_FILE}`);
    // The served name is a slug: a Hub id with a slash would break vLLM's --lora-modules name=path.
    expect(readme).toContain('--lora-modules mistralai-Mistral-7B-Instruct-v0.2=./adapter');
  });

  // The page names the bundle after the loaded model, which is also the base the adapter records: the README's title
  // once read "# mistral-nano-demo: LoRA adapter for mistral-nano-demo".
  it("names the model once in the README's title when the bundle is named after the base", async () => {
    const title = (a: Awaited<ReturnType<typeof adapter>>, name: string): string => new TextDecoder().decode(adapterBundle(a, base, { name })['README.md']).split('\n')[0];
    const a = await adapter();
    expect(a.config.baseModel).toBe('tiny-mistral');
    expect(title(a, 'tiny-mistral')).toBe('# LoRA adapter for tiny-mistral');
    a.config.baseModel = 'mistralai/Mistral-7B-Instruct-v0.2';
    // The bundle's name is slugged (a slash would break vLLM's name=path), the base is not: the same model still.
    expect(title(a, 'mistralai/Mistral-7B-Instruct-v0.2')).toBe('# LoRA adapter for mistralai/Mistral-7B-Instruct-v0.2');
    a.config.baseModel = 'mistralai/Mistral-7B-Instruct-v0.2@main';
    expect(title(a, 'mistralai/Mistral-7B-Instruct-v0.2@main')).toBe('# LoRA adapter for mistralai/Mistral-7B-Instruct-v0.2');
    // Another name (an adapter loaded from outside, trained on another base) is still said, before the base.
    expect(title(a, 'mistral-nano-demo')).toBe('# mistral-nano-demo: LoRA adapter for mistralai/Mistral-7B-Instruct-v0.2');
  });

  it('zips the whole bundle or the PEFT pair alone, under the names the page shows', async () => {
    const a = await adapter();
    const full = adapterZip(a, base, { name: 'demo model', step: 12 });
    const pair = adapterZip(a, base, { name: 'demo model', step: 12, full: false });
    expect(full.fileName).toBe(adapterZipName('demo model', 12, true));
    expect(adapterZipName('demo model', 12, true)).toBe('adapter-demo-model-step12-gguf.zip');
    // An adapter loaded from outside has no step of this page's: it is named as imported, not "step0".
    expect(adapterZipName('demo model', 'imported', false)).toBe('adapter-demo-model-imported.zip');
    expect(full.fileName).toBe('adapter-demo-model-step12-gguf.zip');
    expect(pair.fileName).toBe('adapter-demo-model-step12.zip');
    expect(Object.keys(unzipSync(full.bytes))).toEqual(['adapter_config.json', 'adapter_model.safetensors', 'README.md', GGUF_FILE]);
    expect(Object.keys(unzipSync(pair.bytes))).toEqual(['adapter_config.json', 'adapter_model.safetensors']);
    expect(unzipSync(pair.bytes)['adapter_model.safetensors']).toEqual(adapterBundle(a, base, { name: 'x' })['adapter_model.safetensors']);
  });

  it('takes a base model name from the user for the config, the README, the GGUF and the file name, and checks it', async () => {
    const a = await adapter();
    const named = withBaseModel(a, 'mistralai/Mistral-7B-Instruct-v0.2');
    expect(a.config.baseModel).toBe('tiny-mistral'); // the adapter read is not changed
    const zip = unzipSync(adapterZip(named, base, { name: 'mistralai/Mistral-7B-Instruct-v0.2', step: 3 }).bytes);
    expect(JSON.parse(new TextDecoder().decode(zip['adapter_config.json'])).base_model_name_or_path).toBe('mistralai/Mistral-7B-Instruct-v0.2');
    expect(new TextDecoder().decode(zip['README.md'])).toContain('AutoModelForCausalLM.from_pretrained("mistralai/Mistral-7B-Instruct-v0.2"');
    expect(readGguf(zip[GGUF_FILE]).kv.get('general.name')?.value).toBe('LoRA adapter for mistralai/Mistral-7B-Instruct-v0.2');
    expect(adapterZip(named, base, { name: 'mistralai/Mistral-7B-Instruct-v0.2', step: 3 }).fileName).toBe('adapter-mistralai-Mistral-7B-Instruct-v0.2-step3-gguf.zip');

    expect(baseModelNameProblem('my-org/my-model')).toBeNull();
    expect(baseModelNameProblem('  ')).toBe('the base model name is empty');
    expect(baseModelNameProblem(' padded')).toBe('the base model name starts or ends with a space');
    expect(baseModelNameProblem('a\tb')).toBe('the base model name holds a control character (a line break or a tab, say): remove it');
    expect(baseModelNameProblem('x'.repeat(301))).toBe('the base model name has 301 characters; at most 300 are taken');
    expect(baseModelNameProblem('x'.repeat(300))).toBeNull();
    expect(() => withBaseModel(a, 'line\nbreak')).toThrow('the base model name holds a control character');
  });

  it('refuses a base model name with a bidirectional control, naming its code point: the name would read as another', async () => {
    // "evil/\u202Eledom" shows as "evil/model" reversed into place: base_model_name_or_path, the README's heading and
    // the GGUF's general.name would name, to a reader, a model they are not.
    const bidi: [string, string][] = [
      ['\u061c', 'U+061C (arabic letter mark)'],
      ['\u200e', 'U+200E (left-to-right mark)'],
      ['\u200f', 'U+200F (right-to-left mark)'],
      ['\u202a', 'U+202A (left-to-right embedding)'],
      ['\u202b', 'U+202B (right-to-left embedding)'],
      ['\u202c', 'U+202C (pop directional formatting)'],
      ['\u202d', 'U+202D (left-to-right override)'],
      ['\u202e', 'U+202E (right-to-left override)'],
      ['\u2066', 'U+2066 (left-to-right isolate)'],
      ['\u2067', 'U+2067 (right-to-left isolate)'],
      ['\u2068', 'U+2068 (first strong isolate)'],
      ['\u2069', 'U+2069 (pop directional isolate)'],
    ];
    for (const [c, named] of bidi) {
      expect(baseModelNameProblem(`mistralai/${c}Mistral-7B`)).toBe(`the base model name holds ${named}, a bidirectional control, which reorders the text around it so that the name reads as another: remove it`);
    }
    // The other invisible breaks quote() escapes: a line break the control-character test does not see.
    expect(baseModelNameProblem('two\u2028lines')).toBe('the base model name holds U+2028 (line separator), a line break: remove it');
    expect(baseModelNameProblem('two\u2029lines')).toBe('the base model name holds U+2029 (paragraph separator), a line break: remove it');
    // The characters that show as nothing: "mistralai/Mistral\u200B-7B" reads as "mistralai/Mistral-7B". Named as
    // what they are, not as bidirectional controls.
    const invisible: [string, string][] = [
      ['\u00ad', 'U+00AD (soft hyphen)'],
      ['\u180e', 'U+180E (mongolian vowel separator)'],
      ['\u200b', 'U+200B (zero width space)'],
      ['\u2060', 'U+2060 (word joiner)'],
      ['\ufeff', 'U+FEFF (zero width no-break space)'],
    ];
    for (const [c, named] of invisible) {
      expect(baseModelNameProblem(`mistralai/Mistral${c}-7B`)).toBe(`the base model name holds ${named}, an invisible character, which makes the name read as another: remove it`);
    }
    // ZWNJ and ZWJ write words (Persian, the Indic scripts): names like any other.
    expect(baseModelNameProblem('org/می\u200cخواهم')).toBeNull();
    expect(baseModelNameProblem('org/क्\u200dष')).toBeNull();
    // The first one is named, wherever it is; the export is refused before anything is written.
    expect(baseModelNameProblem('a\u2066b\u202ec')).toMatch(/holds U\+2066 /);
    const a = await adapter();
    expect(() => withBaseModel(a, 'evil/\u202eledom')).toThrow('the base model name holds U+202E (right-to-left override)');
    // Letters of right-to-left scripts are names like any other.
    expect(baseModelNameProblem('org/نموذج-עברית')).toBeNull();
  });

  it('gives the same bytes in another time zone and at another time', async () => {
    const a = await adapter();
    const first = adapterZip(a, base, { name: 'm', step: 1 }).bytes;
    vi.stubEnv('TZ', 'Pacific/Kiritimati');
    vi.useFakeTimers({ now: new Date('2031-07-04T23:59:59Z') });
    try {
      expect(adapterZip(a, base, { name: 'm', step: 1 }).bytes).toEqual(first);
    } finally {
      vi.useRealTimers();
    }
  });
});
