#!/usr/bin/env node
// The `finetune` command line: the engine's TypeScript run directly through tsx, with WGSL imported as text.
import { register } from 'node:module';
import { register as registerTsx } from 'tsx/esm/api';

registerTsx();
register('./raw-loader.mjs', import.meta.url);
const { main } = await import('../src/cli/main.ts');
process.exitCode = await main(process.argv.slice(2));
