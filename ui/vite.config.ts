// crtd embeds what this builds (ui/dist) and serves it under a strict
// Content-Security-Policy: one script, one stylesheet, nothing inline.
import { defineConfig } from 'vite';

export default defineConfig({
  base: '/',
  build: {
    outDir: 'dist',
    emptyOutDir: true,
    assetsInlineLimit: 0,
    modulePreload: { polyfill: false },
    chunkSizeWarningLimit: 2048,
    sourcemap: false,
  },
  server: {
    // `CRT_SERVER=http://127.0.0.1:7070 npx vite` serves the UI against a running crtd.
    proxy: process.env.CRT_SERVER
      ? { '/v1': { target: process.env.CRT_SERVER, ws: true } }
      : undefined,
  },
});
