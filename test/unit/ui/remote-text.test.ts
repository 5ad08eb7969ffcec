// The remote panel's lines that are made of numbers and other people's words: the cost estimate, and the status line
// while a call to Replicate is retried.
import { describe, expect, it } from 'vitest';
import { FinetuneError } from '../../../src/core/errors.ts';
import { estimateLine, logViewText, notSentLine, retryLine, sendBlockedReason, sendFailedLine } from '../../../src/ui/remote-text.ts';

describe('estimateLine', () => {
  it('writes the token count with thousands separators, as the rest of the page does', () => {
    expect(estimateLine({ seconds: 290, costUsd: 0.406 }, 3134, 1)).toBe(
      'Estimated: about 5 min on an A100 80 GB, about $0.41 (3,134 tokens × 1 epoch; Replicate bills the real time at $0.0014/s).',
    );
    expect(estimateLine({ seconds: 1200, costUsd: 1.68 }, 1_234_567, 3)).toContain('(1,234,567 tokens × 3 epochs;');
    // The time at the rate it quotes: $0.34 is 243 s, about 4 min (it said 5, rounded up).
    expect(estimateLine({ seconds: 243, costUsd: 0.34 }, 1000, 1)).toMatch(/^Estimated: about 4 min on an A100 80 GB, about \$0\.34 /);
  });
});

describe('retryLine', () => {
  const call = 'checking the API token';

  it('blames Replicate for an answer Replicate gave', () => {
    expect(retryLine({ status: 502, waitMs: 8000, call }, null, '')).toBe('Replicate answered 502 while checking the API token; retrying in 8 s…');
  });

  it('says so when the proxy answered itself because Replicate could not be reached', () => {
    const line = retryLine({ status: 502, waitMs: 8000, call }, { status: 502, detail: 'Replicate could not be reached (fetch failed)' }, '');
    expect(line).toBe('The proxy answered 502 while checking the API token: Replicate could not be reached (fetch failed). Retrying in 8 s…');
    expect(line).not.toMatch(/Replicate answered/);
  });

  it('keeps a lost connection a lost connection', () => {
    expect(retryLine({ status: 'network', waitMs: 1500, call }, null, '')).toBe('Connection lost while checking the API token; retrying in 2 s…');
  });

  it('never shows the token, even if the proxy quoted it', () => {
    const token = 'r8_secrettoken0123456789abcdefghijklmnop';
    const line = retryLine({ status: 502, waitMs: 1000, call }, { status: 502, detail: `could not reach https://x/?t=${token}` }, token);
    expect(line).not.toContain(token);
    expect(line).toContain('[token]');
  });
});

describe('sendBlockedReason', () => {
  const ready = { busy: false, proxyOk: true, token: true, hyperparams: true, dataOk: true, refused: false };
  it('says the first thing Send waits for, in the order the page asks for it, and nothing when it can send', () => {
    expect(sendBlockedReason(ready)).toBeNull();
    expect(sendBlockedReason({ ...ready, token: false })).toBe('Paste your Replicate API token (r8_…) to check it and to send the job.');
    expect(sendBlockedReason({ ...ready, token: false, proxyOk: false })).toBe('No proxy answers for this page (see above): without one the browser cannot reach Replicate.');
    expect(sendBlockedReason({ ...ready, hyperparams: false, dataOk: false })).toBe('Fix the hyperparameters in the form first.');
    expect(sendBlockedReason({ ...ready, dataOk: false })).toBe('Choose a training file without errors first (Dataset panel).');
    expect(sendBlockedReason({ ...ready, refused: true })).toBe('Replicate’s trainer cannot run this form as it stands: see the reasons above.');
    // While a call is going the status line speaks.
    expect(sendBlockedReason({ ...ready, busy: true, token: false })).toBeNull();
  });
});

describe('notSentLine', () => {
  it('puts the reason in sentences of its own after "Not sent", with one stop between them', () => {
    expect(notSentLine('The proxy refused POST /v1/files (403 Forbidden).')).toBe('Not sent. The proxy refused POST /v1/files (403 Forbidden).');
    expect(notSentLine('cannot read the training data')).toBe('Not sent. Cannot read the training data.');
    expect(notSentLine('lr_scheduler cosine: Replicate\'s trainer always decays the learning rate linearly after its warmup. Use linear, or train locally.')).toBe(
      'Not sent. lr_scheduler cosine: Replicate\'s trainer always decays the learning rate linearly after its warmup. Use linear, or train locally.',
    );
  });
});

describe('sendFailedLine', () => {
  it('says "Not sent" only when the training surely was not started', () => {
    expect(sendFailedLine(new FinetuneError('remote', 'Replicate refused the request (422 validation failed): lora_rank: too big'))).toBe('Not sent. Replicate refused the request (422 validation failed): lora_rank: too big.');
    const maybe = new FinetuneError('network', 'The training of alice/x may have started: no answer came back (socket hang up) while starting it, and the list of your recent trainings could not be read either. Before sending it again, check whether it runs: finetune remote list, or https://replicate.com/trainings.', { maybeStarted: true });
    expect(sendFailedLine(maybe)).toBe(maybe.message);
    expect(sendFailedLine(maybe)).not.toMatch(/not sent/i);
  });
});

// The training's logs are shown in a <pre> as Replicate sent them, a line per line: a bidirectional control in a line
// reordered the rest of it (a loss could read as another), an invisible character hid text, and an escape sequence
// of a progress bar was there unseen. Line breaks and tabs stay: the logs are meant to be read as lines.
describe('logViewText', () => {
  it('keeps line breaks and tabs, breaks lines at a carriage return, marks other controls and escapes bidi and invisible characters', () => {
    expect(logViewText('step 1: loss 2.3\n\tstep 2: loss 2.1\n')).toBe('step 1: loss 2.3\n\tstep 2: loss 2.1\n');
    expect(logViewText('a\r\nb')).toBe('a\nb');
    expect(logViewText(' 10%|█\r 20%|██')).toBe(' 10%|█\n 20%|██');
    expect(logViewText('\u001b[32mok\u001b[0m\u0007\u009b')).toBe('\ufffd[32mok\ufffd[0m\ufffd\ufffd');
    expect(logViewText('loss \u202e0.5 1.2\u202c\u200b\u2028x')).toBe('loss \\u202e0.5 1.2\\u202c\\u200b\\u2028x');
  });
});
