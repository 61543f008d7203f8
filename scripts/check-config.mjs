// `npm run check-config -- [--config <path>] [--env <name>] [--strict]`: validates PORTCULLIS_CONFIG and
// ORIGIN_URL offline with the Worker's own code (parseConfig, parseOrigin), so the CLI can never disagree
// with the gate, plus what only a deploy would find out (scripts/deploy-checks.mjs): the platform's 5 KB
// limit per variable and placeholders left from the template (warnings; errors with --strict, as in
// `npm run deploy`). Exit 0 = valid, 1 = invalid configuration, 2 = the file could not be read or bad arguments.
import { parseArgs } from "node:util";
import { limitIssues, placeholderIssues, routeLabel } from "./deploy-checks.mjs";
import { loadSource, readWranglerConfig } from "./lib.mjs";

let args;
try {
  ({ values: args } = parseArgs({ options: { config: { type: "string" }, env: { type: "string" }, strict: { type: "boolean" } } }));
} catch (error) {
  fail(`${error.message}\nusage: npm run check-config -- [--config wrangler.toml] [--env <name>] [--strict]`);
}
// Wrangler's own reader: same TOML parsing and env rules as deploy (an unknown --env is an error).
const wrangler = readWranglerConfig(args, fail);
const vars = wrangler.vars ?? {};

const { parseConfig, parseOrigin, formatIssues } = await loadSource(
  'export * from "./src/config/load"; export { parseOrigin } from "./src/config/origin";',
  fail,
);
const result = parseConfig(vars.PORTCULLIS_CONFIG);
const origin = parseOrigin(vars.ORIGIN_URL);
const raw = typeof vars.PORTCULLIS_CONFIG === "string" ? safeJson(vars.PORTCULLIS_CONFIG) : vars.PORTCULLIS_CONFIG;
// Same field names as the Worker's config_invalid log, except "(root)", which reads better as the var's name.
const issues = [
  ...(result.ok ? [] : result.issues).map((issue) => ({
    ...issue,
    field: issue.field === "(root)" ? "PORTCULLIS_CONFIG" : `PORTCULLIS_CONFIG.${issue.field}`,
  })),
  ...(origin instanceof Error ? [{ field: "ORIGIN_URL", message: origin.message }] : []),
  ...limitIssues(vars),
].map((issue) => ({ ...issue, message: issue.message + routeLabel(issue.field, raw) }));
const placeholders = placeholderIssues(wrangler);
const errors = args.strict ? [...issues, ...placeholders] : issues;

for (const line of formatIssues(errors)) console.log(line);
if (!args.strict) for (const line of formatIssues(placeholders)) console.log(`warning: ${line}`);
if (errors.length === 0) {
  const { issuers, routes } = result.config;
  console.log(`config OK (${issuers.length} issuer${issuers.length === 1 ? "" : "s"}, ${routes.length} route${routes.length === 1 ? "" : "s"})${placeholders.length && !args.strict ? `; ${placeholders.length} placeholder${placeholders.length === 1 ? "" : "s"} to replace before \`npm run deploy\`` : ""}`);
} else {
  process.exitCode = 1;
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
