// The builds: Portcullis as wrangler bundles it for a deploy, and the bench's own Workers (bench/workers/)
// with the same esbuild settings; plus the compatibility settings of wrangler.toml every Worker runs with.
import { spawnSync } from "node:child_process";
import { mkdirSync, readFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { gzipSync } from "node:zlib";
import { BENCH, OUT, ROOT } from "./constants.mjs";

const { build } = await import("esbuild");

const wranglerToml = () => readFileSync(join(ROOT, "wrangler.toml"), "utf8");

/** wrangler.toml's compatibility date and flags, for every Worker the bench runs. */
export function compatibility() {
  const toml = wranglerToml();
  return {
    compatibilityDate: toml.match(/^compatibility_date\s*=\s*"([^"]+)"/m)[1],
    compatibilityFlags: JSON.parse(toml.match(/^compatibility_flags\s*=\s*(\[[^\]]*\])/m)?.[1] ?? "[]"),
  };
}

/** wrangler's own bundle of src/worker.ts: `wrangler deploy --dry-run` on a copy of wrangler.toml whose
 * `main` points back at src/worker.ts, so that wrangler's scratch files stay in bench/.out. */
export function wranglerBundle() {
  const configDir = join(OUT, "wrangler");
  const outdir = join(OUT, "portcullis");
  mkdirSync(configDir, { recursive: true });
  const toml = wranglerToml().replace(/^main\s*=.*$/m, `main = ${JSON.stringify(join(ROOT, "src/worker.ts"))}`);
  writeFileSync(join(configDir, "wrangler.toml"), toml);
  const result = spawnSync(
    process.execPath,
    [join(ROOT, "node_modules/wrangler/bin/wrangler.js"), "deploy", "--dry-run", "--config", join(configDir, "wrangler.toml"), "--outdir", outdir, "--env="],
    {
      cwd: ROOT,
      encoding: "utf8",
      env: { ...process.env, WRANGLER_SEND_METRICS: "false", WRANGLER_SEND_ERROR_REPORTS: "false", WRANGLER_HIDE_BANNER: "true", CLOUDFLARE_CF_FETCH_ENABLED: "false" },
    },
  );
  const output = `${result.stdout}\n${result.stderr}`;
  const sizes = output.match(/Total Upload:\s*([\d.]+)\s*KiB\s*\/\s*gzip:\s*([\d.]+)\s*KiB/);
  if (result.status !== 0 || !sizes) throw new Error(`wrangler deploy --dry-run failed:\n${output}`);
  const script = join(outdir, "worker.js");
  const source = readFileSync(script);
  return {
    script,
    uploadKiB: Number(sizes[1]),
    gzipKiB: Number(sizes[2]),
    bytes: source.length,
    ownGzipKiB: gzipSync(source, { level: 9 }).length / 1024,
    pathComments: (source.toString().match(/^\/\/ \.\.\/\.\.\/\.\.\//gm) ?? []).length,
  };
}

/** The bench's own Workers, bundled with the same esbuild settings wrangler uses for Workers. */
export async function bundleBenchWorkers({ profile }) {
  const entries = { baseline: "baseline.js", hono: "hono-jwk.js", verify: "verify.js", nolog: "portcullis-nolog.js", floor: "floor.js", jose: "jose-gate.js", kvRead: "kv-read.js", kvWarm: "kv-warm.js" };
  const scripts = {};
  for (const [name, file] of Object.entries(entries)) {
    const outfile = join(OUT, "workers", `${name}.mjs`);
    await build({
      entryPoints: [join(BENCH, "workers", file)],
      outfile,
      bundle: true,
      format: "esm",
      platform: "neutral",
      target: "es2024",
      conditions: ["workerd", "worker", "browser"],
      mainFields: ["module", "main"],
      // Same as wrangler.toml's `minify`, except under --profile (readable function names).
      minify: !profile && /^minify\s*=\s*true/m.test(wranglerToml()),
      logLevel: "warning",
    });
    scripts[name] = outfile;
  }
  return scripts;
}
