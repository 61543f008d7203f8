import { build } from "esbuild";
import { mkdir, rename, writeFile } from "node:fs/promises";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";

/**
 * A second gate isolate for THREATS J3 (a proof accepted once, also through two isolates): the real Worker
 * (src/worker.ts, bundled here by esbuild as wrangler would) run by miniflare as an auxiliary Worker, its
 * own isolate, with its PORTCULLIS_DPOP binding on the Durable Object namespace the test Worker uses.
 * vitest.config.ts declares it; globalSetup (global.ts) bundles it before the Workers start.
 */

export { isolateBConfig } from "./isolate-b-config.ts";

const root = join(dirname(fileURLToPath(import.meta.url)), "..", "..");

/** Where the bundle goes (.wrangler is git-ignored). */
export const ISOLATE_B_SCRIPT = join(root, ".wrangler", "tmp", "isolate-b", "worker.mjs");

/**
 * Bundles src/worker.ts to ISOLATE_B_SCRIPT. globalSetup runs once per vitest project, so this may run while
 * another project's Worker reads the file: it is written aside and renamed into place (atomic).
 */
export async function bundleIsolateB(): Promise<void> {
  const { outputFiles } = await build({
    entryPoints: [join(root, "src", "worker.ts")],
    bundle: true,
    write: false,
    format: "esm",
    platform: "neutral",
    target: "es2022",
    conditions: ["workerd", "worker", "browser"],
    mainFields: ["module", "main"],
    external: ["cloudflare:*"],
    logLevel: "warning",
  });
  const aside = `${ISOLATE_B_SCRIPT}.${process.pid}.${crypto.randomUUID()}`;
  await mkdir(dirname(ISOLATE_B_SCRIPT), { recursive: true });
  await writeFile(aside, outputFiles[0]!.contents);
  await rename(aside, ISOLATE_B_SCRIPT);
}
