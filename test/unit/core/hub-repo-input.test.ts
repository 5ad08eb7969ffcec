// A repository pasted as the address of its page (what a browser's address bar gives) is read as owner/name: the
// Hugging Face tab refused it ("Write the repository as owner/name"), though the name is right there.
import { describe, expect, it } from 'vitest';
import { hubRepoFromInput } from '../../../src/core/hub-reference.ts';

describe('a Hub repository as typed or pasted', () => {
  it('takes owner/name as it is', () => {
    expect(hubRepoFromInput(' mistralai/Mistral-7B-Instruct-v0.2 ')).toEqual({ repo: 'mistralai/Mistral-7B-Instruct-v0.2', revision: null });
  });

  it("reads a model page's or file's address, with the revision it names", () => {
    expect(hubRepoFromInput('https://huggingface.co/mistralai/Mistral-7B-v0.1')).toEqual({ repo: 'mistralai/Mistral-7B-v0.1', revision: null });
    expect(hubRepoFromInput('huggingface.co/mistralai/Mistral-7B-v0.1/')).toEqual({ repo: 'mistralai/Mistral-7B-v0.1', revision: null });
    expect(hubRepoFromInput('https://hf.co/HuggingFaceH4/zephyr-7b-beta?library=transformers')).toEqual({ repo: 'HuggingFaceH4/zephyr-7b-beta', revision: null });
    expect(hubRepoFromInput('https://huggingface.co/mistralai/Mistral-7B-v0.1/tree/26bca36bde8333b5d7f72e9ed20ccda6a618af24')).toEqual({ repo: 'mistralai/Mistral-7B-v0.1', revision: '26bca36bde8333b5d7f72e9ed20ccda6a618af24' });
    expect(hubRepoFromInput('https://huggingface.co/mistralai/Mistral-7B-v0.1/blob/main/config.json')).toEqual({ repo: 'mistralai/Mistral-7B-v0.1', revision: 'main' });
    expect(hubRepoFromInput('https://huggingface.co/someone/model/tree/refs%2Fpr%2F3')).toEqual({ repo: 'someone/model', revision: 'refs/pr/3' });
  });

  it('refuses other sites, datasets, Spaces and what is not a repository', () => {
    for (const t of ['https://example.com/mistralai/Mistral-7B-v0.1', 'https://huggingface.co/datasets/someone/data', 'https://huggingface.co/spaces/someone/app', 'https://huggingface.co/mistralai', 'just words', 'ftp://huggingface.co/a/b', '']) {
      expect(hubRepoFromInput(t)).toBeNull();
    }
  });
});
