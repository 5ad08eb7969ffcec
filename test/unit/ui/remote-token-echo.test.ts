// The remote panel against a proxy whose answers echo the API token (in a training's error, logs, model, output, inputs;
// in the account's name): what the panel shows and stores (src/ui/remote-panel.ts, src/ui/remote-text.ts, and the
// README summary of src/remote/provenance.ts) holds no token, because the answers are scrubbed where they come in.
import type { IncomingMessage, ServerResponse } from 'node:http';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createRemoteClient, validateToken, type RemoteClient } from '../../../src/remote/client.ts';
import { cancelTraining, followTraining, getTraining, viewTraining } from '../../../src/remote/flow.ts';
import { remoteTrainingSummary } from '../../../src/remote/provenance.ts';
import { cancelMessage, endedMessage, jobRowTexts, mergedJob } from '../../../src/ui/remote-panel.ts';
import { logViewText } from '../../../src/ui/remote-text.ts';
import { listen, type Loopback } from '../../helpers/loopback.ts';

const TOKEN = 'r8_pagetokenecho0123456789abcdefghijklmn';
const SECRET = TOKEN.slice(3);

let server: Loopback;
let c: RemoteClient;
let answer: (req: IncomingMessage) => unknown = () => ({});

function echoingTraining(status: string): Record<string, unknown> {
  return {
    id: 't1',
    status,
    error: `bad Bearer ${TOKEN}; Token ${TOKEN}; bare ${TOKEN}`,
    logs: `log Bearer ${TOKEN}\n${TOKEN}`,
    model: `alice/${TOKEN}`,
    version: TOKEN,
    input: { validation_prompt: `Token ${TOKEN}`, [`extra_${TOKEN}`]: { nested: [TOKEN] } },
    output: { weights: `https://replicate.delivery/${TOKEN}.zip`, version: `alice/${TOKEN}:1` },
  };
}

beforeAll(async () => {
  server = await listen((req, res) => {
    req.resume();
    req.on('end', () => void res.writeHead(200, { 'content-type': 'application/json' }).end(JSON.stringify(answer(req))));
  });
  // As the page makes it: through its proxy (here the fake stands in for it).
  c = createRemoteClient({ token: TOKEN, apiBase: `${server.url}/replicate/v1`, proxied: true, retry: { baseDelayMs: 1 } });
});
afterAll(() => server.close());

describe('the remote panel when the answers echo the token', () => {
  it('Follow: the job row, the status line and the log view hold no token', async () => {
    let polls = 0;
    answer = () => echoingTraining(++polls < 2 ? 'processing' : 'failed');
    const shown: string[] = [];
    const end = await followTraining(c, 't1', {
      minDelayMs: 1,
      maxDelayMs: 1,
      onUpdate: (v) => {
        const row = mergedJob(undefined, v, undefined, new Date());
        shown.push(JSON.stringify(row), JSON.stringify(row && jobRowTexts(row)), logViewText(v.logs));
      },
    });
    const v = viewTraining(end);
    shown.push(endedMessage('t1', v), JSON.stringify(v));
    expect(shown.join('\n')).toContain('bad Bearer [token]; Token [token]; bare [token]');
    expect(shown.join('\n')).not.toContain(SECRET);
  });

  it('Load adapter and Cancel: the training, its view and its README summary hold no token', async () => {
    answer = () => echoingTraining('succeeded');
    const t = await getTraining(c, 't1');
    expect(JSON.stringify(t)).not.toContain(SECRET);
    expect(JSON.stringify(viewTraining(t))).not.toContain(SECRET);
    expect(JSON.stringify(remoteTrainingSummary(t))).not.toContain(SECRET);
    const canceled = viewTraining(await cancelTraining(c, 't1'));
    expect(cancelMessage('t1', undefined, canceled) + JSON.stringify(canceled)).not.toContain(SECRET);
  });

  it('Check token: the account name shown holds no token', async () => {
    answer = () => ({ type: 'user', username: `alice ${TOKEN}` });
    const a = await validateToken(c);
    expect(a.username).toBe('alice [token]');
  });
});
