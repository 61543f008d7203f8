// The installable package: compiles src/ (the library entries src/index.ts and src/origin/verify-assertion.ts
// and what they import) with `tsc -p tsconfig.build.json` into build/ (JavaScript and .d.ts; not dist/, which
// is wrangler's --outdir), then gives every relative import its file name (`./pipeline/gate` ->
// `./pipeline/gate.js`). The sources import without extensions (bundler resolution); Node's ESM loader and
// TypeScript's node16/nodenext resolution need the full name. Run by `npm pack` (prepack).
//
//   npm run build:package
import { execFileSync } from "node:child_process";
import { existsSync, readdirSync, readFileSync, rmSync, statSync, writeFileSync } from "node:fs";
import { dirname, join, relative, resolve } from "node:path";
import { fileURLToPath } from "node:url";

const root = resolve(dirname(fileURLToPath(import.meta.url)), "..");
const out = join(root, "build");

rmSync(out, { recursive: true, force: true });
execFileSync(process.execPath, [join(root, "node_modules/typescript/bin/tsc"), "-p", join(root, "tsconfig.build.json")], { cwd: root, stdio: ["ignore", 2, 2] }); // tsc errors on stderr too

// tsc's own output: `from "..."`, `import "..."` and, in declarations, `import("...")`.
const SPECIFIER = /(\bfrom\s*|\bimport\s*\(\s*|\bimport\s+)(["'])(\.{1,2}\/[^"']*)\2/g;

let files = 0;
for (const file of walk(out)) {
  if (!file.endsWith(".js") && !file.endsWith(".d.ts")) continue;
  const text = readFileSync(file, "utf8");
  const rewritten = text.replace(SPECIFIER, (_, before, quote, specifier) => `${before}${quote}${withFileName(file, specifier)}${quote}`);
  if (rewritten !== text) writeFileSync(file, rewritten);
  files++;
}
// stderr: `npm pack --json` prints its report on stdout.
console.error(`build/: ${files} files (JavaScript and declarations), relative imports with file names`);

/** `./x` -> `./x.js` or `./x/index.js`, whichever tsc emitted; anything else is a build error. */
function withFileName(file, specifier) {
  if (specifier.endsWith(".js")) return specifier;
  const base = resolve(dirname(file), specifier);
  if (existsSync(`${base}.js`)) return `${specifier}.js`;
  if (existsSync(join(base, "index.js"))) return `${specifier}/index.js`;
  throw new Error(`${relative(root, file)}: import "${specifier}" resolves to no emitted file`);
}

function* walk(dir) {
  for (const name of readdirSync(dir)) {
    const path = join(dir, name);
    if (statSync(path).isDirectory()) yield* walk(path);
    else yield path;
  }
}
