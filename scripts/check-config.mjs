// `npm run check-config -- [--config wrangler.toml] [--env <name>] [--config-file portcullis.config.json] [--strict]`:
// validates the Portcullis configuration and ORIGIN_URL offline with the Worker's own code (loadConfig,
// parseOrigin), so the CLI can never disagree with the gate. The configuration comes from one place: the
// file (`--config-file`, else portcullis.config.json, or portcullis.config.<env>.json with --env, next to
// the wrangler config) or `[vars] PORTCULLIS_CONFIG`; both is refused, as the Worker refuses it. Plus what
// only a deploy would find out (scripts/deploy-checks.mjs): the platform's 5 KB limit per variable (pointing
// to the file form) and placeholders left from the template (warnings; errors with --strict, as in
// `npm run deploy`). `--emit PATH` (used by the guarded build) writes the validated file as the module the
// Worker bundles. Exit 0 = valid, 1 = invalid configuration, 2 = a file could not be read or bad arguments.
import { parseArgs } from "node:util";
import { limitIssues, placeholderIssues, routeLabel } from "./deploy-checks.mjs";
import { configFileName, findConfigFile, readConfigFile, writeBundledModule } from "./config-file.mjs";
import { loadSource, readWranglerConfig } from "./lib.mjs";

const USAGE = "usage: npm run check-config -- [--config wrangler.toml] [--env <name>] [--config-file portcullis.config.json] [--strict]";
let args;
try {
  ({ values: args } = parseArgs({ options: { config: { type: "string" }, env: { type: "string" }, "config-file": { type: "string" }, strict: { type: "boolean" }, emit: { type: "string" } } }));
} catch (error) {
  fail(`${error.message}\n${USAGE}`);
}
// First, as it also catches `--config portcullis.config.json` (the wrangler config's flag) with a clear word.
const found = findConfigFile(args, fail);
// Wrangler's own reader: same TOML parsing and env rules as deploy (an unknown --env is an error).
const wrangler = readWranglerConfig(args, fail);
const vars = wrangler.vars ?? {};
const file = found && readConfigFile(found, fail);

const { loadConfig, parseOrigin, formatIssues } = await loadSource(
  'export * from "./src/config/load"; export { parseOrigin } from "./src/config/origin";',
  fail,
);
const bundled = file && !file.error ? { file: file.name, config: file.config } : undefined;
const result = file?.error ? { ok: false, issues: [file.error] } : loadConfig(bundled, vars.PORTCULLIS_CONFIG);
const origin = parseOrigin(vars.ORIGIN_URL);
const raw = bundled ? bundled.config : typeof vars.PORTCULLIS_CONFIG === "string" ? safeJson(vars.PORTCULLIS_CONFIG) : vars.PORTCULLIS_CONFIG;
// The Worker's config_invalid field names (`PORTCULLIS_CONFIG.routes.3.path`, `portcullis.config.json:
// routes.3.path`), each route issue also naming the route.
const issues = [
  ...(result.ok ? [] : result.issues).map(withMissingHint),
  ...(origin instanceof Error ? [{ field: "ORIGIN_URL", message: origin.message }] : []),
  ...limitIssues(vars, configFileName(args.env)),
].map((issue) => ({ ...issue, message: issue.message + routeLabel(issue.field, raw) }));
const placeholders = placeholderIssues(wrangler, bundled && { name: bundled.file, config: bundled.config });
const errors = args.strict ? [...issues, ...placeholders] : issues;

for (const line of formatIssues(errors)) console.log(line);
if (!args.strict) for (const line of formatIssues(placeholders)) console.log(`warning: ${line}`);
if (errors.length === 0) {
  const { issuers, routes } = result.config;
  if (args.emit && bundled) writeBundledModule(args.emit, bundled);
  console.log(`config OK (${issuers.length} issuer${issuers.length === 1 ? "" : "s"}, ${routes.length} route${routes.length === 1 ? "" : "s"}, from ${bundled ? bundled.file : "[vars] PORTCULLIS_CONFIG"})${placeholders.length && !args.strict ? `; ${placeholders.length} placeholder${placeholders.length === 1 ? "" : "s"} to replace before \`npm run deploy\`` : ""}`);
} else {
  process.exitCode = 1;
}

/** Neither form configured: say where the configuration can go. */
function withMissingHint(issue) {
  if (issue.field !== "PORTCULLIS_CONFIG" || issue.message !== "is missing") return issue;
  const vars = args.env ? `[env.${args.env}.vars]` : "[vars]";
  return { ...issue, message: `is missing: put the configuration in ${configFileName(args.env)} next to the wrangler config, or in ${vars} PORTCULLIS_CONFIG` };
}

function safeJson(text) {
  try {
    return JSON.parse(text);
  } catch {
    return undefined;
  }
}

function fail(message) {
  console.error(`check-config: ${message}`);
  process.exit(2);
}
