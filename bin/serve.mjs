#!/usr/bin/env node
// `npm run serve`: the built app and the Replicate proxy (src/server/serve.ts), run through tsx like the CLI.
import { register as registerTsx } from 'tsx/esm/api';

registerTsx();
const { serveMain } = await import('../src/server/serve.ts');
try {
  await serveMain(process.argv.slice(2));
} catch (e) {
  process.stderr.write(`finetune serve: ${e instanceof Error ? e.message : String(e)}\n`);
  process.exitCode = 2;
}
