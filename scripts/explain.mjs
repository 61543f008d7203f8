// `npm run explain -- METHOD URL-or-PATH [--token TOKEN] [--header "Name: value"]... [--body JSON | --mcp METHOD[:NAME]] [--env NAME] [--config wrangler.toml] [--config-file portcullis.config.json] [--json]`
// Prints what the gate would decide for that request with the project's configuration (the file, or
// `[vars] PORTCULLIS_CONFIG`, chosen as check-config and the Worker choose): the canonical
// path, the matched rule, its requirement, on an MCP route the operation, and the decision with its reason.
// `--body` is the request body as sent; `--mcp tools/call:admin_reset` is short for the body of a JSON-RPC
// request with that method and name (`params.uri` for resources/*: `--mcp resources/read:file:///a.txt`). It runs the gate's own steps
// (src/pipeline/explain.ts). A token is checked as far as it can be without keys (structure, issuer, header,
// typ, exp/nbf/aud/iss, iat, cnf, ID-token claims, required claims, tenant); the checks that need keys or an
// upstream (signature, key selection, key sets, introspection, decryption) are listed as not checked, and the
// decision assumes they pass. With a `DPoP` header (`--token` is then sent with the DPoP scheme) the proof is
// checked as the gate checks it (typ, alg, jwk, signature, jti, htm, htu, iat, ath, the key against cnf.jkt,
// the nonce when the nonce secret is a [vars] entry); its replay check and a client certificate are listed as
// not checked. Exit 0 = allow, 1 = deny, 2 = bad arguments or configuration.
import { parseArgs } from "node:util";
import { findConfigFile, readConfigFile } from "./config-file.mjs";
import { loadSource, readVars } from "./lib.mjs";

const USAGE = 'npm run explain -- METHOD URL-or-PATH [--token TOKEN] [--header "Name: value"]... [--body JSON | --mcp METHOD[:NAME]] [--env NAME] [--config wrangler.toml] [--config-file portcullis.config.json] [--json]';

let parsed;
try {
  parsed = parseArgs({
    allowPositionals: true,
    options: {
      token: { type: "string" },
      header: { type: "string", multiple: true },
      body: { type: "string" },
      mcp: { type: "string" },
      env: { type: "string" },
      config: { type: "string" },
      "config-file": { type: "string" },
      json: { type: "boolean" },
    },
  });
} catch (error) {
  fail(error.message);
}
const { values: args, positionals } = parsed;
if (positionals.length !== 2) fail("expected METHOD and URL or path");
const [method, url] = positionals;
const headers = (args.header ?? []).map((line) => {
  const colon = line.indexOf(":");
  if (colon < 1) fail(`--header ${JSON.stringify(line)} is not "Name: value"`);
  return [line.slice(0, colon).trim(), line.slice(colon + 1).trim()];
});

const found = findConfigFile(args, fail);
const vars = readVars(args, fail);
const file = found && readConfigFile(found, fail);
const { loadConfig, formatIssues, explainWithProof, MCP_NAMED_METHODS } = await loadSource(
  'export * from "./src/config/load"; export { explainWithProof } from "./src/pipeline/explain"; export { MCP_NAMED_METHODS } from "./src/config/schema";',
  fail,
);
if (args.body !== undefined && args.mcp !== undefined) fail("give --body or --mcp, not both");
const body = args.mcp === undefined ? args.body : mcpBody(args.mcp);
const config = file?.error ? { ok: false, issues: [file.error] } : loadConfig(file && { file: file.name, config: file.config }, vars.PORTCULLIS_CONFIG);
if (!config.ok) fail(`the configuration is invalid (run npm run check-config):\n${formatIssues(config.issues).join("\n")}`);

let result;
try {
  result = await explainWithProof(config.config, { method, url, token: args.token, headers, body, env: vars });
} catch (error) {
  fail(error.message);
}
if (args.json) {
  console.log(JSON.stringify(result, null, 2));
} else {
  for (const [label, value] of rows(result)) console.log(`${label.padEnd(15)} ${value}`);
}
process.exitCode = result.decision === "allow" ? 0 : 1;

function rows(result) {
  const { token } = result;
  return [
    ["request", `${result.method} ${result.host}${result.path ?? ""}`],
    ["canonical path", result.path ?? "(refused before matching)"],
    ["rule", result.rule ?? "(none)"],
    ["requirement", result.requirement ?? "-"],
    ...(result.operation ? [["mcp operation", result.operation]] : []),
    ...(token ? tokenRows(token) : [["token", "none"]]),
    ...(result.scopes ? [["token scopes", result.scopes.join(" ") || "(none)"]] : []),
    ["decision", `${result.decision.toUpperCase()}${result.status ? ` (${result.status})` : ""}${result.report_only ? " (report-only: would be refused, forwarded)" : ""}`],
    ["reason", result.reason],
  ];
}

function tokenRows(token) {
  return [
    ["token", `${token.kind}${token.issuer ? `, issuer ${token.issuer}` : ""}`],
    ...token.checks.map((check) => ["  checked", `${check.passed ? "ok    " : "FAILED"} ${check.check}${check.reason ? ` (${check.reason})` : ""}`]),
    ...token.not_checked.map((what) => ["  not checked", what]),
  ];
}

/** `METHOD[:NAME]` as the body of one JSON-RPC request (the name in `params.name` or `params.uri`). */
function mcpBody(spec) {
  const colon = spec.indexOf(":");
  const rpcMethod = colon === -1 ? spec : spec.slice(0, colon);
  if (!rpcMethod) fail(`--mcp ${JSON.stringify(spec)} is not METHOD[:NAME]`);
  const field = MCP_NAMED_METHODS.get(rpcMethod);
  if (colon !== -1 && !field) fail(`--mcp: ${rpcMethod} carries no name`);
  const params = colon === -1 ? {} : { [field]: spec.slice(colon + 1) };
  return JSON.stringify({ jsonrpc: "2.0", id: 1, method: rpcMethod, params });
}

function fail(message) {
  console.error(`explain: ${message}\nusage: ${USAGE}`);
  process.exit(2);
}
