import { execFile } from "node:child_process";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";
import { promisify } from "node:util";
import { calculateJwkThumbprint, exportJWK, generateKeyPair, SignJWT } from "jose";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { sha256Base64url } from "../src/lib/digest";

/**
 * `npm run explain` (scripts/explain.mjs) from outside, as an operator runs it: a temporary wrangler.toml and
 * portcullis.config.json with an MCP route and a DPoP route, the script run with execFile; its output and
 * its exit code (0 allow, 1 deny, 2 bad arguments or configuration). Tokens are signed with a key of the
 * test's own (explain checks no signature). No network: explain sends nothing.
 */

const root = join(dirname(fileURLToPath(import.meta.url)), "..");
const script = join(root, "scripts/explain.mjs");
const run = promisify(execFile);
const ISSUER = "https://auth.cli.test/";
const AUDIENCE = "https://api.cli.test";

const config = {
  realm: "cli",
  issuers: [{ issuer: ISSUER, audiences: [AUDIENCE], jwks_uri: "https://auth.cli.test/jwks", algorithms: ["ES256"], dpop: { mode: "allowed" } }],
  routes: [
    { name: "mcp", path: "/mcp", methods: ["POST"], scopes: ["mcp"], mcp: { operations: [{ method: "tools/list" }, { method: "tools/call", name: "search" }, { method: "tools/call", name: "admin_*", scopes: ["admin"] }] } },
    { name: "bound", path: "/bound/**", dpop: "required" },
  ],
};

let dir: string;
let issuerKey: CryptoKey;
let proofKey: { privateKey: CryptoKey; jwk: Record<string, unknown>; jkt: string };

beforeAll(async () => {
  dir = mkdtempSync(join(tmpdir(), "portcullis-explain-"));
  writeFileSync(join(dir, "wrangler.toml"), `name = "explain-cli"\nmain = "${join(root, "src/worker.ts")}"\ncompatibility_date = "2026-11-01"\n[vars]\nORIGIN_URL = "https://origin.cli.test"\n`);
  writeFileSync(join(dir, "portcullis.config.json"), JSON.stringify(config));
  writeFileSync(join(dir, "invalid.json"), JSON.stringify({ ...config, routes: [{ path: "/mcp", access: "sometimes" }] }));
  issuerKey = (await generateKeyPair("ES256")).privateKey;
  const pair = await generateKeyPair("ES256", { extractable: true });
  const jwk = await exportJWK(pair.publicKey);
  proofKey = { privateKey: pair.privateKey, jwk: { ...jwk }, jkt: await calculateJwkThumbprint(jwk) };
});

afterAll(() => rmSync(dir, { recursive: true, force: true }));

const now = () => Math.floor(Date.now() / 1000);
const token = (claims: Record<string, unknown>) =>
  new SignJWT({ aud: AUDIENCE, ...claims }).setProtectedHeader({ alg: "ES256", typ: "at+jwt", kid: "k1" }).setIssuer(ISSUER).setIssuedAt().setExpirationTime(now() + 300).sign(issuerKey);
const proof = async (htu: string, accessToken: string) =>
  new SignJWT({ jti: crypto.randomUUID(), htm: "GET", htu, iat: now(), ath: await sha256Base64url(accessToken) }).setProtectedHeader({ typ: "dpop+jwt", alg: "ES256", jwk: proofKey.jwk }).sign(proofKey.privateKey);

/** Runs explain with the temporary configuration: exit code and output (stdout and stderr). */
async function explain(...args: string[]): Promise<{ code: number; out: string }> {
  try {
    const { stdout, stderr } = await run(process.execPath, [script, ...args, "--config", join(dir, "wrangler.toml")], { cwd: root, encoding: "utf8" });
    return { code: 0, out: stdout + stderr };
  } catch (error) {
    const failed = error as { code?: unknown; stdout?: string; stderr?: string };
    if (typeof failed.code !== "number") throw error;
    return { code: failed.code, out: `${failed.stdout ?? ""}${failed.stderr ?? ""}` };
  }
}

const json = (out: string) => JSON.parse(out) as Record<string, unknown> & { token?: { checks: { check: string; passed: boolean; reason?: string }[]; not_checked: string[] } };

// Each run bundles src/ with esbuild (a few seconds on a busy machine).
describe("npm run explain (scripts/explain.mjs)", { timeout: 90_000 }, () => {
  it("--mcp tools/call:NAME: a listed tool is allowed (exit 0), the operation shown", async () => {
    const { code, out } = await explain("POST", "https://api.cli.test/mcp", "--token", await token({ scope: "mcp" }), "--mcp", "tools/call:search");
    expect(out).toMatch(/^mcp operation\s+tools\/call search$/m);
    expect(out).toMatch(/^decision\s+ALLOW$/m);
    expect(code).toBe(0);
  });

  it("--mcp tools/call:NAME: an operation's own scope missing, or a tool not listed, is denied (exit 1)", async () => {
    const scoped = await explain("POST", "/mcp", "--token", await token({ scope: "mcp" }), "--mcp", "tools/call:admin_reset", "--json");
    expect(json(scoped.out)).toMatchObject({ rule: "mcp", operation: "tools/call admin_reset", decision: "deny", status: 403, reason: "scope_missing" });
    expect(scoped.code).toBe(1);
    const unlisted = await explain("POST", "/mcp", "--token", await token({ scope: "mcp admin" }), "--mcp", "tools/call:delete", "--json");
    expect(json(unlisted.out)).toMatchObject({ operation: "tools/call delete", decision: "deny", reason: "mcp_operation_not_listed" });
    expect(unlisted.code).toBe(1);
  });

  it("--body: the JSON-RPC message sent is decided; a batch and a message without a token are denied", async () => {
    const listed = await explain("POST", "/mcp", "--token", await token({ scope: "mcp" }), "--body", '{"jsonrpc":"2.0","id":1,"method":"tools/list"}', "--json");
    expect(json(listed.out)).toMatchObject({ operation: "tools/list", decision: "allow", reason: "requirements_met" });
    expect(listed.code).toBe(0);
    const batch = await explain("POST", "/mcp", "--token", await token({ scope: "mcp" }), "--body", '[{"jsonrpc":"2.0","id":1,"method":"tools/list"}]', "--json");
    expect(json(batch.out)).toMatchObject({ decision: "deny", reason: "mcp_batch" });
    expect(batch.code).toBe(1);
    const anonymous = await explain("POST", "/mcp", "--body", '{"jsonrpc":"2.0","id":1,"method":"tools/list"}');
    expect(anonymous.out).toMatch(/^reason\s+token_missing$/m);
    expect(anonymous.code).toBe(1);
  });

  it("--token with a DPoP header: the proof is checked as the gate checks it; its replay check is listed as not checked", async () => {
    const bound = await token({ cnf: { jkt: proofKey.jkt } });
    const valid = await explain("GET", "https://api.cli.test/bound/1", "--token", bound, "--header", `DPoP: ${await proof("https://api.cli.test/bound/1", bound)}`, "--json");
    const report = json(valid.out);
    expect(report).toMatchObject({ decision: "allow", reason: "requirements_met" });
    expect(report.token!.checks.at(-1)).toMatchObject({ check: expect.stringMatching(/^DPoP proof: .*htu.*key matches cnf\.jkt$/), passed: true });
    expect(report.token!.not_checked).toContain("DPoP proof replay check (whether its jti was used before: the replay store)");
    expect(valid.code).toBe(0);
    const elsewhere = await explain("GET", "https://api.cli.test/bound/1", "--token", bound, "--header", `DPoP: ${await proof("https://api.cli.test/bound/2", bound)}`);
    expect(elsewhere.out).toMatch(/^\s+checked\s+FAILED DPoP proof: .* \(dpop_proof_htu_mismatch\)$/m);
    expect(elsewhere.out).toMatch(/^reason\s+dpop_proof_htu_mismatch$/m);
    expect(elsewhere.code).toBe(1);
    const asBearer = await explain("GET", "https://api.cli.test/bound/1", "--token", bound);
    expect(asBearer.out).toMatch(/^reason\s+dpop_bound_token_as_bearer$/m);
    expect(asBearer.code).toBe(1);
  });

  it("bad arguments or configuration exit 2 with the usage", async () => {
    const cases: [string[], RegExp][] = [
      [["POST", "/mcp", "--body", "{}", "--mcp", "tools/list"], /give --body or --mcp, not both/],
      [["POST", "/mcp", "--mcp", "tools/list:x"], /--mcp: tools\/list carries no name/],
      [["POST", "/mcp", "--mcp", ":x"], /--mcp ":x" is not METHOD\[:NAME\]/],
      [["POST"], /expected METHOD and URL or path/],
      [["GET", "/mcp", "--header", "no colon"], /--header "no colon" is not "Name: value"/],
      [["GET", "/mcp", "--config-file", join(dir, "invalid.json")], /the configuration is invalid/],
    ];
    for (const [args, message] of cases) {
      const { code, out } = await explain(...args);
      expect(out, args.join(" ")).toMatch(message);
      expect(out).toMatch(/usage: npm run explain/);
      expect(code, args.join(" ")).toBe(2);
    }
  });
});
