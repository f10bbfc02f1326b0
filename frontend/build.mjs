// Bundles the coding-stage page: src/task.js -> dist/task.js, src/task.css -> dist/task.css.
// Django serves dist/ as static files (STATICFILES_DIRS); nothing here is committed.
import { build } from "esbuild";
import { rmSync, statSync, readFileSync } from "node:fs";
import { gzipSync } from "node:zlib";

rmSync("dist", { recursive: true, force: true });
await build({
  entryPoints: ["src/task.js", "src/task.css", "src/questions.js"],
  outdir: "dist",
  bundle: true,
  minify: true,
  format: "iife",
  target: "es2020",
  sourcemap: false,
  legalComments: "eof",
  logLevel: "warning",
});
for (const file of ["dist/task.js", "dist/task.css"]) {
  const size = statSync(file).size;
  const gz = gzipSync(readFileSync(file)).length;
  console.log(`${file}  ${(size / 1024).toFixed(1)} KiB  (${(gz / 1024).toFixed(1)} KiB gzipped)`);
}
