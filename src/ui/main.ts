// The page: starts the engine worker and lays out the panels.

import * as Comlink from 'comlink';
import type { EngineApi } from '../worker.ts';
import { installErrorTransfer } from '../worker-protocol.ts';
import { gpuPanel, noWebGpuPanel } from './gpu-panel.ts';

installErrorTransfer();
const app = document.getElementById('app');
if (!app) throw new Error('index.html has no #app');

if (!('gpu' in navigator)) {
  app.append(noWebGpuPanel());
} else {
  const worker = new Worker(new URL('../worker.ts', import.meta.url), { type: 'module', name: 'engine' });
  const engine = Comlink.wrap<EngineApi>(worker);
  // The engine proxy, for the browser console and for automation (the browser test tier drives it).
  (window as unknown as { finetuneEngine: Comlink.Remote<EngineApi> }).finetuneEngine = engine;
  app.append(gpuPanel(engine));
}
