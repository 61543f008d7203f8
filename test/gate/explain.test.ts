import { decodeJwt } from "jose";
import { describe, expect, it } from "vitest";
import { parseConfig } from "../../src/config/load";
import type { PortcullisConfig } from "../../src/config/schema";
import { explain } from "../../src/pipeline/explain";
import { AUDIENCE, baseConfig, bearer, mint, nowSeconds, setup, type Fixture } from "../helpers";

/** `explain` tells the gate's decision without sending anything; this checks it agrees with the gate. */

const config = (fixture: Fixture): PortcullisConfig =>
  baseConfig(fixture, {
    routes: [
      { path: "/public/**", access: "public" },
      { path: "/feed/**", access: "optional" },
      { path: "/items/**", methods: ["GET"], scopes: ["items:read"] },
      { path: "/items/**", methods: ["POST", "DELETE"], scopes: ["items:write"] },
      { path: "/admin/**", scopes: ["admin"], claims: [{ claim: "tid", equals: "t-1" }] },
      { path: "/beta/**", scopes: ["beta"], report_only: true },
      { path: "/internal/**", access: "deny" },
    ],
  });

const CASES: [string, string, Record<string, unknown> | undefined][] = [
  ["GET", "/public/x", undefined],
  ["GET", "/feed/1", undefined],
  ["GET", "/feed/1", {}],
  ["GET", "/items/1", undefined],
  ["GET", "/items/1", { scope: "items:read" }],
  ["HEAD", "/items/1", { scope: "items:read" }],
  ["POST", "/items", { scope: "items:read" }],
  ["POST", "/items", { scope: "items:write" }],
  ["PATCH", "/items/1", { scope: "items:write" }],
  ["GET", "/admin/x", { scope: "admin", tid: "t-1" }],
  ["GET", "/admin/x", { scope: "admin", tid: "t-2" }],
  ["GET", "/admin/x", { scope: "items:read" }],
  ["GET", "/beta/x", { scope: "none" }],
  ["GET", "/internal/x", { scope: "admin" }],
  ["GET", "/public/..%2Fadmin", undefined],
  ["GET", "/public/../admin/x", { scope: "admin", tid: "t-1" }],
  ["GET", "/nowhere", { scope: "admin" }],
];

describe("explain", () => {
  it.each(CASES)("%s %s with claims %j: explain agrees with the gate", async (method, path, claims) => {
    const { key, gate, fixture } = await setup(config);
    const parsed = parseConfig(config(fixture));
    if (!parsed.ok) throw new Error("config");
    const token = claims ? await mint(key, { scope: undefined, ...claims }) : undefined;
    const explained = explain(parsed.config, { method, url: `https://api.test${path}`, claims: token ? decodeJwt(token) : undefined });
    const response = await gate.request(path, { method, headers: token ? bearer(token) : {} });
    await response.arrayBuffer();
    expect(explained.decision).toBe(response.status === 200 ? "allow" : "deny");
    if (response.status !== 200) expect(explained.status).toBe(response.status);
    const decision = gate.logs.filter((line) => line.event === "decision").at(-1)!;
    if (explained.reason !== "requirements_met" && explained.reason !== "anonymous_allowed") {
      expect(decision.reason ?? (decision.would as { reason: string }).reason).toBe(explained.reason);
    }
    if (explained.rule) expect(decision.rule).toBe(explained.rule);
  });

  it("a path alone is a path: //admin/x and /\\admin/x are never read as a host; a preflight's body counts (agrees with the gate)", async () => {
    for (const paths of [{ empty_segments: "merge" as const }, {}]) {
      const withPaths = (f: Fixture) => ({ ...config(f), paths, routes: [...config(f).routes, { path: "/**", access: "public" as const }] });
      const { gate, fixture } = await setup(withPaths);
      const parsed = parseConfig(withPaths(fixture));
      if (!parsed.ok) throw new Error(JSON.stringify(parsed.issues));
      for (const path of ["//admin/x", "/\\admin/x", "//public/x"]) {
        const explained = explain(parsed.config, { method: "GET", url: path });
        const response = await gate.request(`https://api.test${path}`);
        await response.arrayBuffer();
        expect([paths, path, explained.host, explained.status ?? 200]).toEqual([paths, path, "localhost", response.status]);
      }
    }
    const { gate, fixture } = await setup(config);
    const parsed = parseConfig(config(fixture));
    if (!parsed.ok) throw new Error("config");
    const preflight = { origin: "https://app.test", "access-control-request-method": "POST" };
    const explained = explain(parsed.config, { method: "OPTIONS", url: "/items/1", headers: preflight, body: "x" });
    const response = await gate.request("/items/1", { method: "OPTIONS", headers: preflight, body: "x" });
    await response.arrayBuffer();
    expect([explained.status, explained.reason]).toEqual([response.status, "preflight_with_body"]);
    expect(explain(parsed.config, { method: "OPTIONS", url: "/items/1", headers: preflight })).toMatchObject({ decision: "allow", reason: "preflight_allowed" });
  });

  it("describes the canonical path, rule and requirement", async () => {
    const fixture = (await setup()).fixture;
    const parsed = parseConfig(config(fixture));
    if (!parsed.ok) throw new Error("config");
    expect(explain(parsed.config, { method: "get", url: "/admin/%61b", claims: { iss: "https://issuer.test/", scope: "admin", tid: "t-1" } })).toEqual({
      method: "GET",
      host: "localhost",
      path: "/admin/ab",
      rule: "* /admin/**",
      requirement: 'valid token, all of scopes [admin], claim tid = "t-1"',
      scopes: ["admin"],
      decision: "allow",
      reason: "requirements_met",
    });
    expect(explain(parsed.config, { method: "GET", url: "/items/1", claims: { iss: "https://other/" } })).toMatchObject({ decision: "deny", status: 401, reason: "issuer_unknown" });
    expect(explain(parsed.config, { method: "GET", url: "/beta/1", claims: { iss: "https://issuer.test/" } })).toMatchObject({ decision: "allow", report_only: true, status: 403 });
  });

  it("with a token: the checks made without keys, in the verifier's order, and what it could not check", async () => {
    const { key, fixture } = await setup();
    const parsed = parseConfig(config(fixture));
    if (!parsed.ok) throw new Error("config");
    const valid = explain(parsed.config, { method: "GET", url: "/items/1", token: await mint(key) });
    expect(valid).toMatchObject({ decision: "allow", reason: "requirements_met", token: { kind: "jwt", issuer: "https://issuer.test/" } });
    expect(valid.token!.checks.map((check) => [check.check.split(":")[0], check.passed])).toEqual([
      ["structure", true],
      ["issuer", true],
      ["header", true],
      ["typ", true],
      ["claims (jose)", true],
      ["claims", true],
    ]);
    expect(valid.token!.not_checked).toEqual(expect.arrayContaining(["signature", "key selection and key policy"]));
    const expired = explain(parsed.config, { method: "GET", url: "/items/1", token: await mint(key, { exp: nowSeconds() - 120 }) });
    expect(expired).toMatchObject({ decision: "deny", status: 401, reason: "token_expired" });
    expect(expired.token!.checks.at(-1)).toMatchObject({ passed: false, reason: "token_expired" });
    const wrongType = explain(parsed.config, { method: "GET", url: "/items/1", token: await mint(key, {}, { typ: "JWT" }) });
    expect(wrongType).toMatchObject({ decision: "deny", reason: "typ_not_allowed" });
    expect(explain(parsed.config, { method: "GET", url: "/items/1", token: "opaque-token" })).toMatchObject({ decision: "deny", status: 401, reason: "malformed_token", token: { kind: "opaque" } });
  });

  it("a tenant-templated issuer: the tenant's token is selected as the gate selects it", async () => {
    const tenant = "11111111-1111-4111-8111-111111111111";
    const { key, fixture } = await setup();
    const parsed = parseConfig({ ...config(fixture), issuers: [{ issuer: "https://login.test/{tenantid}/v2.0", tenants: [tenant], audiences: [AUDIENCE], jwks_uri: fixture.jwksUri, algorithms: ["ES256"] }] });
    if (!parsed.ok) throw new Error(JSON.stringify(parsed.issues));
    const token = (tid: string, iss = `https://login.test/${tid}/v2.0`) => mint(key, { iss, tid, scope: "items:read" });
    expect(explain(parsed.config, { method: "GET", url: "/items/1", token: await token(tenant) })).toMatchObject({ decision: "allow", token: { issuer: "https://login.test/{tenantid}/v2.0" } });
    const other = "22222222-2222-4222-8222-222222222222";
    expect(explain(parsed.config, { method: "GET", url: "/items/1", token: await token(other) })).toMatchObject({ decision: "deny", reason: "tenant_not_allowed" });
    expect(explain(parsed.config, { method: "GET", url: "/items/1", token: await token(other, `https://login.test/${tenant}/v2.0`) })).toMatchObject({ decision: "deny", reason: "tenant_mismatch" });
  });
});

describe("explain on an MCP route", () => {
  const mcpConfig = (fixture: Fixture): PortcullisConfig =>
    baseConfig(fixture, {
      routes: [{ path: "/mcp", scopes: ["mcp"], mcp: { operations: [{ method: "tools/list" }, { method: "tools/call", name: "admin_*", scopes: ["mcp:admin"] }] } }],
    });
  const body = (method: string, name?: string) => JSON.stringify({ jsonrpc: "2.0", id: 1, method, ...(name ? { params: { name } } : {}) });

  it("names the operation and its requirement, and decides as the gate does (T-K1, T-K2)", async () => {
    const { fixture } = await setup();
    const parsed = parseConfig(mcpConfig(fixture));
    if (!parsed.ok) throw new Error(JSON.stringify(parsed.issues));
    const claims = (scope: string) => ({ iss: "https://issuer.test/", aud: AUDIENCE, sub: "u", scope });
    const run = (input: { body?: string; headers?: Record<string, string> }, scope = "mcp") => explain(parsed.config, { method: "POST", url: "/mcp", claims: claims(scope), ...input });
    expect(run({ body: body("tools/list") })).toMatchObject({ decision: "allow", operation: "tools/list", requirement: "valid token, all of scopes [mcp]; operation: listed" });
    expect(run({ body: body("tools/call", "admin_reset") })).toMatchObject({ decision: "deny", status: 403, reason: "scope_missing", operation: "tools/call admin_reset", requirement: "valid token, all of scopes [mcp]; operation: all of scopes [mcp:admin]" });
    expect(run({ body: body("tools/call", "admin_reset") }, "mcp mcp:admin")).toMatchObject({ decision: "allow" });
    expect(run({ body: body("tools/call", "Admin_reset") }, "mcp mcp:admin")).toMatchObject({ decision: "deny", status: 403, reason: "mcp_operation_not_listed" });
    expect(run({ body: body("tools/call", "admin_reset"), headers: { "mcp-method": "tools/list" } }, "mcp mcp:admin")).toMatchObject({ decision: "deny", status: 400, reason: "mcp_header_mismatch" });
    expect(run({ body: `[${body("tools/list")}]` })).toMatchObject({ decision: "deny", status: 400, reason: "mcp_batch" });
    expect(run({})).toMatchObject({ decision: "deny", status: 400, reason: "mcp_body_invalid" });
  });
});
