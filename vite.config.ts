import { defineConfig } from 'vite';

export default defineConfig({
  worker: { format: 'es' },
  build: { target: 'es2022', outDir: 'dist' },
  server: { host: '127.0.0.1' },
  preview: { host: '127.0.0.1' },
});
