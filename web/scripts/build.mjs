// Builds the UI into internal/webui/dist (the panel, index.html) or, with
// the argument "home", the home control UI (home.html) into
// internal/homeui/dist as its index.html: empties the directory (keeping
// the committed README that keeps go:embed happy on a fresh clone), runs
// vite build, and writes .gz and .br beside every compressible file, so the
// server sends them without compressing per request.
import { build } from "vite";
import { readdirSync, rmSync, readFileSync, writeFileSync, statSync, renameSync } from "node:fs";
import { join } from "node:path";
import { gzipSync, brotliCompressSync, constants } from "node:zlib";

const home = process.argv[2] === "home";
const out = new URL(home ? "../../internal/homeui/dist/" : "../../internal/webui/dist/", import.meta.url).pathname;
const keep = new Set(["README.md"]);

for (const name of readdirSync(out)) {
  if (!keep.has(name)) rmSync(join(out, name), { recursive: true, force: true });
}

await build(home ? { logLevel: "warn", build: { outDir: out, rollupOptions: { input: new URL("../home.html", import.meta.url).pathname } } } : { logLevel: "warn" });
if (home) renameSync(join(out, "home.html"), join(out, "index.html"));

const compressible = /\.(html|js|css|svg|json|txt|map)$/;
let raw = 0, br = 0;
function walk(dir) {
  for (const name of readdirSync(dir)) {
    const p = join(dir, name);
    if (statSync(p).isDirectory()) { walk(p); continue; }
    if (!compressible.test(name) || keep.has(name)) continue;
    const data = readFileSync(p);
    const b = brotliCompressSync(data, { params: { [constants.BROTLI_PARAM_QUALITY]: 11, [constants.BROTLI_PARAM_SIZE_HINT]: data.length } });
    const g = gzipSync(data, { level: 9 });
    writeFileSync(p + ".br", b);
    writeFileSync(p + ".gz", g);
    raw += data.length; br += b.length;
  }
}
walk(out);
console.log(`${home ? "home UI" : "web UI"} built into ${home ? "internal/homeui/dist" : "internal/webui/dist"}: ${(raw / 1024).toFixed(1)} KiB, ${(br / 1024).toFixed(1)} KiB with brotli`);
