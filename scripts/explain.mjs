// `npm run explain -- METHOD URL-or-PATH [--token JWT] [--env NAME] [--config PATH] [--json]`
// Prints what the gate would decide for that request with the wrangler.toml configuration: the canonical
// path, the matched rule, its requirement and the decision with its reason. The token is decoded, NOT
// verified (no key fetch, no signature check): explain answers "does this policy let these claims in?".
// Exit 0 = allow, 1 = deny, 2 = bad arguments or configuration.
import { parseArgs } from "node:util";
import { decodeJwt } from "jose";
import { loadSource, readVars } from "./lib.mjs";

let parsed;
try {
  parsed = parseArgs({
    allowPositionals: true,
    options: { token: { type: "string" }, env: { type: "string" }, config: { type: "string" }, json: { type: "boolean" } },
  });
} catch (error) {
  fail(error.message);
}
const { values: args, positionals } = parsed;
if (positionals.length !== 2) fail("expected METHOD and URL or path");
const [method, url] = positionals;

let claims;
if (args.token !== undefined) {
  try {
    claims = decodeJwt(args.token);
  } catch {
    fail("--token is not a decodable JWT");
  }
}

const vars = readVars(args, fail);
const { parseConfig, formatIssues, explain } = await loadSource(
  'export * from "./src/config/load"; export { explain } from "./src/policy/explain";',
  fail,
);
const config = parseConfig(vars.PORTCULLIS_CONFIG);
if (!config.ok) fail(`the configuration is invalid (run npm run check-config):\n${formatIssues(config.issues).join("\n")}`);

const result = explain(config.config, { method, url, claims });
if (args.json) {
  console.log(JSON.stringify(result, null, 2));
} else {
  const rows = [
    ["request", `${result.method} ${result.host}${result.path ?? ""}`],
    ["canonical path", result.path ?? "(refused before matching)"],
    ["rule", result.rule ?? "(none)"],
    ["requirement", result.requirement ?? "-"],
    ...(result.scopes ? [["token scopes", result.scopes.join(" ") || "(none)"]] : []),
    ["token", claims ? "claims decoded, not verified" : "none"],
    ["decision", `${result.decision.toUpperCase()}${result.status ? ` (${result.status})` : ""}${result.report_only ? " (report-only: would be refused, forwarded)" : ""}`],
    ["reason", result.reason],
  ];
  for (const [label, value] of rows) console.log(`${label.padEnd(15)} ${value}`);
}
process.exitCode = result.decision === "allow" ? 0 : 1;

function fail(message) {
  console.error(`explain: ${message}\nusage: npm run explain -- METHOD URL-or-PATH [--token JWT] [--env NAME] [--config PATH] [--json]`);
  process.exit(2);
}
