// Sentences put together from parts the page does not write itself (error messages from lower floors end with a full
// stop or not): joined with exactly one stop between them.
import { describe, expect, it } from 'vitest';
import { endSentence, joinSentences, startSentence } from '../../../src/ui/sentence.ts';

describe('endSentence', () => {
  it('adds a full stop only where the text has no closing mark of its own', () => {
    expect(endSentence('check the connection')).toBe('check the connection.');
    expect(endSentence('check the connection and the URL.')).toBe('check the connection and the URL.');
    expect(endSentence('is it there?')).toBe('is it there?');
    expect(endSentence('stop!')).toBe('stop!');
    expect(endSentence('and so on…')).toBe('and so on…');
    expect(endSentence('trailing space.  ')).toBe('trailing space.');
    expect(endSentence('')).toBe('');
  });
});

describe('joinSentences', () => {
  it('never writes a double full stop where a part already ends with one (the failed Hub load)', () => {
    const failure = 'Could not load mistralai/Mistral-7B-Instruct-v0.2: config.json: network failure (Failed to fetch): check the connection and the URL.';
    expect(joinSentences(failure, 'mistral-nano-demo is still loaded and ready')).toBe(
      'Could not load mistralai/Mistral-7B-Instruct-v0.2: config.json: network failure (Failed to fetch): check the connection and the URL. mistral-nano-demo is still loaded and ready.',
    );
    expect(joinSentences('Could not load x: 404', 'y is still loaded and ready.')).toBe('Could not load x: 404. y is still loaded and ready.');
  });

  it('leaves out empty parts', () => {
    expect(joinSentences('One', '', '  ', 'two')).toBe('One. two.');
  });
});

describe('startSentence', () => {
  it('capitalises a first plain word, and leaves names as they are written', () => {
    expect(startSentence('cannot reach the proxy')).toBe('Cannot reach the proxy');
    expect(startSentence('The proxy refused it')).toBe('The proxy refused it');
    expect(startSentence('lr_scheduler cosine: no')).toBe('lr_scheduler cosine: no');
    expect(startSentence('train_data is empty')).toBe('train_data is empty');
    expect(startSentence('data.jsonl is 3 GB')).toBe('data.jsonl is 3 GB');
    expect(startSentence('/tmp/x is gone')).toBe('/tmp/x is gone');
    expect(startSentence('')).toBe('');
  });
});
