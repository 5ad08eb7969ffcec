// Every WGSL source in shaders/, by file name. Vite (app, vitest) and the CLI's loader hook both import
// `?raw` as a string, so the engine sees the same text everywhere.
import matmul from '../../shaders/matmul.wgsl?raw';

export const shaderSources: Readonly<Record<string, string>> = {
  matmul,
};
