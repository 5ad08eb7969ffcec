// A child process for the kill-during-write test: writes checkpoints through the CLI's folder store, resuming from
// what the folder holds, as `finetune train --resume` does. Every step of every file write is announced on stdout
// ("point N what"); at point `killAt` it says "paused" and waits to be killed.
//   node --import tsx test/helpers/store-writer.ts DIR TARGET_STEP KILL_AT VALUES
import { folderRunStore } from '../../src/cli/node-store.ts';
import { readSavedRun, type RunData } from '../../src/run/saved-run.ts';
import { commitFakeCheckpoint, readConsistentStep } from './fake-checkpoint.ts';

const [dir, targetArg, killAtArg, valuesArg] = process.argv.slice(2);
const target = Number(targetArg);
const killAt = Number(killAtArg);
const values = Number(valuesArg);
const say = (line: string): void => void process.stdout.write(`${line}\n`);

let points = 0;
const store = folderRunStore(dir, async (what) => {
  points++;
  say(`point ${points} ${what}`);
  if (points === killAt) {
    say('paused');
    await new Promise(() => setInterval(() => undefined, 1000));
  }
});

let step = 0;
let data: RunData | null = { train: new TextEncoder().encode('{"text": "rows"}\n'), validation: null };
if (await readSavedRun(store)) {
  step = (await readConsistentStep(store)).step;
  data = null;
}
say(`resumed ${step}`);
while (step < target) {
  step++;
  await commitFakeCheckpoint(store, step, values, data);
  data = null;
  say(`committed ${step}`);
}
