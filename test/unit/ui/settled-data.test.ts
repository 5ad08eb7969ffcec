// The dataset as a send or a run may use it: both files read without errors, and the wait for a re-read under way.
import { describe, expect, it } from 'vitest';
import { Cell, dataBeingRead, dataUsable, settledData, type DataFile, type DataState } from '../../../src/ui/state.ts';
import type { DatasetReport } from '../../../src/worker/api.ts';

const file = (status: DataFile['status'], ok = true): DataFile => ({
  file: new File([], 'rows.jsonl'),
  report: status === 'ready' ? ({ ok } as DatasetReport) : null,
  status,
  error: null,
});

describe('dataUsable', () => {
  it('needs the training file read and without errors, and a validation file, when there is one, too', () => {
    expect(dataUsable({ train: file('ready'), validation: null })).toBe(true);
    expect(dataUsable({ train: file('ready'), validation: file('ready') })).toBe(true);
    expect(dataUsable({ train: null, validation: null })).toBe(false);
    expect(dataUsable({ train: file('ready', false), validation: null })).toBe(false);
    expect(dataUsable({ train: file('inspecting'), validation: null })).toBe(false);
    // The remote panel's button once looked at the training file only, while its click refused a validation file
    // still being read: the button was on and its click said "Fix the dataset first".
    expect(dataUsable({ train: file('ready'), validation: file('inspecting') })).toBe(false);
    expect(dataUsable({ train: file('ready'), validation: file('ready', false) })).toBe(false);
  });
});

describe('dataBeingRead', () => {
  it('is true while either file is being read, and not for a read or failed one', () => {
    expect(dataBeingRead({ train: file('inspecting'), validation: null })).toBe(true);
    expect(dataBeingRead({ train: file('ready'), validation: file('inspecting') })).toBe(true);
    expect(dataBeingRead({ train: file('ready'), validation: file('error') })).toBe(false);
    expect(dataBeingRead({ train: null, validation: null })).toBe(false);
  });
});

describe('settledData', () => {
  it('answers at once when no file is being read', async () => {
    const data = new Cell<DataState>({ train: file('ready'), validation: null });
    expect(await settledData(data)).toBe(data.value);
  });

  it('waits while a file is read again, answers with the state after it, and stops watching', async () => {
    const data = new Cell<DataState>({ train: file('inspecting'), validation: null });
    let answered: DataState | null = null;
    const pending = settledData(data).then((d) => (answered = d));
    await Promise.resolve();
    expect(answered).toBeNull();
    data.set({ train: file('ready'), validation: file('inspecting') });
    await Promise.resolve();
    expect(answered).toBeNull();
    const after: DataState = { train: file('ready'), validation: file('ready') };
    data.set(after);
    await pending;
    expect(answered).toBe(after);
    // It stopped watching: the cell holds no listener of it any more.
    await Promise.resolve();
    expect((data as unknown as { listeners: Set<unknown> }).listeners.size).toBe(0);
  });

  it('answers with an error state too: the caller says what is wrong', async () => {
    const data = new Cell<DataState>({ train: file('inspecting'), validation: null });
    const pending = settledData(data);
    const failed: DataState = { train: { ...file('error'), error: { kind: 'bad-input', message: 'line 3: not JSON' } }, validation: null };
    data.set(failed);
    expect(await pending).toBe(failed);
    expect(dataUsable(failed)).toBe(false);
  });
});
