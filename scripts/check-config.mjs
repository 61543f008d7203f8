// `npm run check-config [-- --config <path>] [-- --env <name>]`: validates PORTCULLIS_CONFIG and ORIGIN_URL
// offline with the Worker's own code (parseConfig, parseOrigin), so the CLI can never disagree with the gate.
// Exit 0 = valid, 1 = invalid configuration, 2 = the file could not be read or bad arguments.
import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join, resolve } from "node:path";
import { fileURLToPath, pathToFileURL } from "node:url";
import { parseArgs } from "node:util";
import { build } from "esbuild";
import { unstable_readConfig } from "wrangler";

const ROOT = fileURLToPath(new URL("..", import.meta.url));

let args;
try {
  ({ values: args } = parseArgs({ options: { config: { type: "string" }, env: { type: "string" } } }));
} catch (error) {
  fail(`${error.message}\nusage: npm run check-config -- [--config wrangler.toml] [--env <name>]`);
}
const configPath = resolve(args.config ?? join(ROOT, "wrangler.toml"));

// Wrangler's own reader: same TOML parsing and env rules as deploy (`vars` are not inherited by envs;
// an unknown --env is an error).
let vars;
try {
  ({ vars } = unstable_readConfig({ config: configPath, env: args.env }, { hideWarnings: true }));
} catch (error) {
  fail(`${configPath}: ${error.message}`);
}

const { parseConfig, parseOrigin, formatIssues } = await loadSource();
const result = parseConfig(vars?.PORTCULLIS_CONFIG);
const origin = parseOrigin(vars?.ORIGIN_URL);
// Same field names as the Worker's config_invalid log, except "(root)", which reads better as the var's name.
const issues = [
  ...(result.ok ? [] : result.issues).map((issue) => ({
    ...issue,
    field: issue.field === "(root)" ? "PORTCULLIS_CONFIG" : `PORTCULLIS_CONFIG.${issue.field}`,
  })),
  ...(origin instanceof Error ? [{ field: "ORIGIN_URL", message: origin.message }] : []),
];
if (issues.length === 0) {
  const { issuers, routes } = result.config;
  console.log(`config OK (${issuers.length} issuer${issuers.length === 1 ? "" : "s"}, ${routes.length} route${routes.length === 1 ? "" : "s"})`);
} else {
  for (const line of formatIssues(issues)) console.log(line);
  process.exitCode = 1;
}

/** src/ uses extensionless imports that Node cannot resolve: bundle what we need with esbuild, then import it. */
async function loadSource() {
  const dir = await mkdtemp(join(tmpdir(), "portcullis-check-"));
  try {
    const outfile = join(dir, "config.mjs");
    await build({
      stdin: {
        contents: 'export * from "./src/config/load"; export { parseOrigin } from "./src/config/origin";',
        resolveDir: ROOT,
        loader: "ts",
      },
      outfile,
      bundle: true,
      format: "esm",
      platform: "node",
      logLevel: "silent",
    }).catch((error) => fail(`could not bundle src/config: ${error.message}`));
    return await import(pathToFileURL(outfile).href);
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
}

function fail(message) {
  console.error(`check-config: ${message}`);
  process.exit(2);
}
