import { describe, expect, it } from "vitest";
import { parseConfig } from "../../src/config/load";

const minimal = {
  issuers: [{ issuer: "https://issuer.test/", audiences: ["https://api.test"], jwks_uri: "https://issuer.test/jwks" }],
  routes: [{ path: "/v1/**", scopes: ["read"] }],
};

function issuesOf(raw: unknown): Record<string, string> {
  const result = parseConfig(raw);
  if (result.ok) throw new Error("expected the configuration to be rejected");
  return Object.fromEntries(result.issues.map((issue) => [issue.field, issue.message]));
}

describe("configuration", () => {
  it("applies documented defaults", () => {
    const result = parseConfig(minimal);
    if (!result.ok) throw new Error(JSON.stringify(result.issues));
    const { config } = result;
    expect(config.realm).toBe("api");
    expect(config.token).toEqual({ max_length: 8192, allow_query: false, extra_characters: "" });
    expect(config.issuers[0]).toMatchObject({ algorithms: ["RS256", "ES256"], types: ["at+jwt"], clock_tolerance: 30 });
    expect(config.issuers[0]!.jwks).toEqual({
      timeout_ms: 5000,
      max_bytes: 262144,
      default_age: 600,
      min_age: 300,
      max_age: 86400,
      refresh_ahead: 60,
      max_stale: 86400,
      refetch_cooldown: 30,
      max_backoff: 600,
    });
    expect(config.routes[0]).toEqual({ path: "/v1/**", methods: ["*"], access: "token", scopes: ["read"], scopes_any: [], claims: [], report_only: false, introspect: false });
    expect(config.issuers[0]).toMatchObject({ scopes_from: [{ claim: "scope", prefix: "" }, { claim: "scp", prefix: "" }], report_only: false });
    expect(config.paths).toEqual({ semicolons: "reject", empty_segments: "reject", case_insensitive: false, trailing_dots: "reject", suffix_match: false });
    expect(config.methods).toEqual({ override_headers: "strip", cors_preflight: "forward" });
    expect(config.forward).toEqual({ authorization: "strip", header_prefix: "x-auth-", claim_headers: {}, max_header_bytes: 1024, timeout_ms: 30000 });
    expect(config.kv_binding).toBe("PORTCULLIS_KV");
  });

  it("accepts its JSON text form (vars set as a string)", () => {
    expect(parseConfig(JSON.stringify(minimal)).ok).toBe(true);
  });

  it("names each bad field, with plain messages for unknown and missing fields", () => {
    const issues = issuesOf({
      relam: "typo",
      issuers: [{ issuer: "https://issuer.test/", jwks_uri: "https://issuer.test/jwks", algorithms: ["none"] }],
      routes: [{ path: "v1", scopes: ["has space"] }],
    });
    expect(issues.relam).toMatch(/not a known field/);
    expect(issues["issuers.0.audiences"]).toBe("must list at least one audience");
    expect(issues["issuers.0.algorithms.0"]).toMatch(/not a supported algorithm/);
    expect(issues["routes.0.path"]).toMatch(/start with \//);
    expect(issues["routes.0.scopes.0"]).toMatch(/scope token/);
  });

  it("a route path must start with / and a header prefix end with -, wherever else they have one", () => {
    for (const path of ["v1/a", "v1/", "", " /v1"]) {
      expect(issuesOf({ ...minimal, routes: [{ path }] })["routes.0.path"], path).toBe("must start with /");
    }
    for (const header_prefix of ["x-auth", "x-auth-id", "-x-auth"]) {
      expect(issuesOf({ ...minimal, forward: { header_prefix } })["forward.header_prefix"], header_prefix).toBe("must end with -");
    }
    expect(parseConfig({ ...minimal, routes: [{ path: "/" }], forward: { header_prefix: "x-a-b-" } }).ok).toBe(true);
  });

  it.each([
    ["http JWKS for a non-loopback host", { jwks_uri: "http://issuer.test/jwks" }, "issuers.0.jwks_uri"],
    ["not a URL", { jwks_uri: "jwks" }, "issuers.0.jwks_uri"],
    ["HS256 without a secret", { algorithms: ["HS256"] }, "issuers.0.hmac_secret"],
    ["a secret without HS*", { hmac_secret: "S" }, "issuers.0.hmac_secret"],
    ["empty audiences", { audiences: [] }, "issuers.0.audiences"],
    ["negative tolerance", { clock_tolerance: -1 }, "issuers.0.clock_tolerance"],
    ["a tiny JWKS cap", { jwks: { max_bytes: 10 } }, "issuers.0.jwks.max_bytes"],
  ])("rejects an issuer with %s", (_label, change, field) => {
    const issues = issuesOf({ ...minimal, issuers: [{ ...minimal.issuers[0], ...change }] });
    expect(Object.keys(issues)).toContain(field);
  });

  it("rejects duplicate issuers, claim headers outside the prefix, and public routes with scopes", () => {
    const issues = issuesOf({
      issuers: [minimal.issuers[0], minimal.issuers[0]],
      routes: [{ path: "/a", access: "public", scopes: ["x"] }],
      forward: { claim_headers: { "x-user": "sub", "x-auth-sub": "sub" } },
    });
    expect(issues["issuers.1.issuer"]).toMatch(/twice/);
    expect(issues["routes.0.scopes"]).toMatch(/access = "token"/);
    expect(issues["forward.claim_headers.x-user"]).toMatch(/header prefix/);
    expect(issues["forward.claim_headers.x-auth-sub"]).toMatch(/built-in/);
  });

  it("rejects claim conditions without exactly one operator, and report_only outside token rules", () => {
    const issues = issuesOf({
      ...minimal,
      routes: [
        { path: "/a", claims: [{ claim: "tid" }, { claim: "tid", equals: "x", one_of: ["y"] }] },
        { path: "/b", access: "optional", report_only: true },
      ],
    });
    expect(issues["routes.0.claims.0"]).toMatch(/exactly one/);
    expect(issues["routes.0.claims.1"]).toMatch(/exactly one/);
    expect(issues["routes.1.report_only"]).toMatch(/access = "token"/);
    // Field-level errors are reported first; cross-field rules run on a configuration that parses.
    expect(issuesOf({ ...minimal, routes: [{ path: "/c", access: "bogus" }] })["routes.0.access"]).toMatch(/token, optional, public or deny/);
    expect(Object.keys(issuesOf({ ...minimal, log: { allowed: "no" } }))).toEqual(["log.allowed"]);
    expect(Object.keys(issuesOf({ ...minimal, log: { everything: true } }))).toEqual(["log.everything"]);
  });

  it("rejects route patterns that are not canonical or put ** anywhere but last", () => {
    for (const path of ["/a/**/b", "/a/../b", "/a/%2f", "/a b"]) {
      const issues = issuesOf({ ...minimal, routes: [{ path }] });
      expect(Object.keys(issues)).toContain("routes.0.path");
    }
  });

  it("rejects realms that could break out of the challenge's quoted-string", () => {
    expect(Object.keys(issuesOf({ ...minimal, realm: 'x", error="forged' }))).toContain("realm");
  });

  it("rejects a missing or non-JSON configuration", () => {
    expect(issuesOf(undefined)).toEqual({ "(root)": "is missing" });
    expect(issuesOf("{")).toEqual({ "(root)": "is not valid JSON" });
  });
});
