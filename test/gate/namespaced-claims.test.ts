import { describe, expect, it } from "vitest";
import { parseConfig } from "../../src/config/load";
import { claimAt, claimPathParts } from "../../src/lib/claim-path";
import { AUDIENCE, baseConfig, bearer, expectRejected, ISSUER, mint, originSaw, setup } from "../helpers";

/**
 * Claims named by URL (Auth0 and others namespace custom claims: `https://acme.example/roles`), usable
 * wherever a claim path is accepted: claim headers, route claim conditions, scope sources, required claims.
 * A segment with characters a plain name cannot hold is written in brackets.
 */

const ROLES = "[https://acme.example/roles]";
const TIER = "[https://acme.example/app].tier";

describe("claim paths with bracketed names", () => {
  it("claimAt reads bracketed names, also with dots inside and nested under them; own properties only", () => {
    const claims = { iss: ISSUER, "https://acme.example/roles": ["ops"], "https://acme.example/app": { tier: "gold" }, "a.b": { c: 1 }, org: { "x.y": 2 } };
    expect(claimAt(claims, ROLES)).toEqual(["ops"]);
    expect(claimAt(claims, TIER)).toBe("gold");
    expect(claimAt(claims, "[a.b].c")).toBe(1);
    expect(claimAt(claims, "org.[x.y]")).toBe(2);
    expect(claimAt(claims, "a.b.c")).toBeUndefined(); // without brackets the dot separates
    expect(claimAt(claims, "[__proto__]")).toBeUndefined();
    expect(claimPathParts("[https://a.example/x].y.[z]")).toEqual(["https://a.example/x", "y", "z"]);
  });

  it("the syntax is validated, naming the field", () => {
    const issues = (claim: string) => {
      const parsed = parseConfig({ issuers: [{ issuer: ISSUER, audiences: [AUDIENCE], jwks_uri: "https://issuer.test/jwks" }], routes: [{ path: "/x", claims: [{ claim, equals: 1 }] }] });
      return parsed.ok ? [] : parsed.issues.map((issue) => issue.field);
    };
    for (const good of [ROLES, TIER, "org.id", "[a b].c"]) expect(issues(good), good).toEqual([]);
    for (const bad of ["https://acme.example/roles", "[]", "[a]b", "[a[b]]", "a..b", "[a].", ".a", "[a\"b\\]"]) expect(issues(bad), bad).toEqual(["routes.0.claims.0.claim"]);
  });
});

describe("claims named by URL through the gate", () => {
  const config = (fixture: Parameters<typeof baseConfig>[0]) =>
    baseConfig(fixture, {
      issuers: [{ issuer: ISSUER, audiences: [AUDIENCE], jwks_uri: fixture.jwksUri, algorithms: ["ES256"], scopes_from: [{ claim: "scope" }, { claim: "[https://acme.example/permissions]", prefix: "perm:" }], required_claims: ["[https://acme.example/app]"] }],
      routes: [
        { path: "/items/**", methods: ["GET"], scopes: ["perm:items"] },
        { path: "/admin/**", claims: [{ claim: TIER, equals: "gold" }, { claim: ROLES, contains: "ops" }] },
      ],
      forward: { claim_headers: { "x-auth-roles": ROLES, "x-auth-tier": TIER } },
    });

  it("scope sources, claim headers, conditions and required claims read URL-named claims", async () => {
    const { key, gate } = await setup(config);
    const token = await mint(key, { scope: "", "https://acme.example/permissions": ["items"], "https://acme.example/roles": ["ops", "dev"], "https://acme.example/app": { tier: "gold" } });
    const seen = await originSaw(await gate.request("/items/1", { headers: bearer(token) }));
    expect(seen.headers["x-auth-scope"]).toBe("perm:items");
    expect(seen.headers["x-auth-roles"]).toBe('["ops","dev"]');
    expect(seen.headers["x-auth-tier"]).toBe("gold");
    expect((await gate.request("/admin/x", { headers: bearer(token) })).status).toBe(200);
  });

  it("a failing condition on a URL-named claim is 403; a missing required URL-named claim is 401; nothing reaches the origin", async () => {
    const { key, gate } = await setup(config);
    const silver = await mint(key, { "https://acme.example/roles": ["ops"], "https://acme.example/app": { tier: "silver" } });
    await expectRejected(gate, await gate.request("/admin/x", { headers: bearer(silver) }), 403, "access_denied");
    const noApp = await mint(key, { "https://acme.example/permissions": ["items"] });
    await expectRejected(gate, await gate.request("/items/1", { headers: bearer(noApp) }), 401, "invalid_token");
    const noPermission = await mint(key, { "https://acme.example/app": { tier: "gold" } });
    await expectRejected(gate, await gate.request("/items/1", { headers: bearer(noPermission) }), 403, "insufficient_scope");
  });
});
