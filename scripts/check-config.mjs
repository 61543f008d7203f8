// `npm run check-config [-- --config <path>] [-- --env <name>]`: validates PORTCULLIS_CONFIG and ORIGIN_URL
// offline with the Worker's own code (parseConfig, parseOrigin), so the CLI can never disagree with the gate.
// Exit 0 = valid, 1 = invalid configuration, 2 = the file could not be read or bad arguments.
import { parseArgs } from "node:util";
import { loadSource, readVars } from "./lib.mjs";

let args;
try {
  ({ values: args } = parseArgs({ options: { config: { type: "string" }, env: { type: "string" } } }));
} catch (error) {
  fail(`${error.message}\nusage: npm run check-config -- [--config wrangler.toml] [--env <name>]`);
}
// Wrangler's own reader: same TOML parsing and env rules as deploy (an unknown --env is an error).
const vars = readVars(args, fail);

const { parseConfig, parseOrigin, formatIssues } = await loadSource(
  'export * from "./src/config/load"; export { parseOrigin } from "./src/config/origin";',
  fail,
);
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

function fail(message) {
  console.error(`check-config: ${message}`);
  process.exit(2);
}
