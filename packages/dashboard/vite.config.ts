import { defineConfig } from 'vite';
import preact from '@preact/preset-vite';

// The server serves dist/ on its own origin; assets get hashed names and a year of caching.
export default defineConfig({
  plugins: [preact()],
  build: {
    outDir: 'dist',
    emptyOutDir: true,
    target: 'es2022',
    // The CSP allows no inline script; keep Vite from inlining the module-preload helper.
    modulePreload: { polyfill: false },
    assetsInlineLimit: 0,
    reportCompressedSize: true,
  },
});
