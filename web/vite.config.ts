import { defineConfig } from "vitest/config";
import react from "@vitejs/plugin-react";
import tailwindcss from "@tailwindcss/vite";

// The build lands in internal/webui/dist, which the portlama binary embeds
// (go:embed). scripts/build.mjs empties it first (keeping the committed
// placeholder) and precompresses the output.
export default defineConfig({
  plugins: [react(), tailwindcss()],
  build: {
    outDir: "../internal/webui/dist",
    emptyOutDir: false,
    assetsDir: "assets",
    target: "es2022",
    // The CSP allows no inline script: no polyfill snippet.
    modulePreload: { polyfill: false },
    sourcemap: false,
    reportCompressedSize: false,
  },
  test: {
    environment: "jsdom",
    globals: true,
    setupFiles: ["./src/test/setup.ts"],
    css: false,
  },
});
