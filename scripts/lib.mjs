// Shared by the operator CLIs (check-config, explain): read wrangler.toml the way wrangler does, and load
// src/ code (extensionless TypeScript imports, which Node cannot resolve) by bundling it with esbuild.
// The configuration file (portcullis.config.json) is found and read by config-file.mjs.
import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join, resolve } from "node:path";
import { pathToFileURL } from "node:url";
import { build } from "esbuild";
import { unstable_readConfig } from "wrangler";
import { ROOT } from "./config-file.mjs";

export { ROOT };

/** `[vars]` (or `[env.NAME.vars]`) of the wrangler config; `vars` are not inherited by envs, as in deploy. */
export function readVars(args, fail) {
  return readWranglerConfig(args, fail).vars ?? {};
}

/** The whole wrangler config for `env`, read by wrangler itself; a TOML error keeps its file, line and column. */
export function readWranglerConfig({ config, env }, fail) {
  const configPath = resolve(config ?? join(ROOT, "wrangler.toml"));
  try {
    return unstable_readConfig({ config: configPath, env }, { hideWarnings: true });
  } catch (error) {
    const at = error?.location;
    if (at && typeof at.line === "number") {
      fail(`${at.file ?? configPath}:${at.line}:${at.column ?? 0}: ${error.text ?? error.message}\n  ${at.lineText ?? ""}`);
    }
    fail(`${configPath}: ${error.message}`);
  }
}

/** Bundles `contents` (TypeScript re-exports from src/) and imports the result. */
export async function loadSource(contents, fail) {
  const dir = await mkdtemp(join(tmpdir(), "portcullis-cli-"));
  try {
    const outfile = join(dir, "entry.mjs");
    await build({
      stdin: { contents, resolveDir: ROOT, loader: "ts" },
      outfile,
      bundle: true,
      format: "esm",
      platform: "node",
      logLevel: "silent",
    }).catch((error) => fail(`could not bundle src/: ${error.message}`));
    return await import(pathToFileURL(outfile).href);
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
}
