import { decodeJwt } from "jose";
import { describe, expect, it } from "vitest";
import { parseConfig } from "../../src/config/load";
import type { PortcullisConfig } from "../../src/config/schema";
import { explain } from "../../src/policy/explain";
import { baseConfig, bearer, mint, setup, type Fixture } from "../helpers";

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
});
