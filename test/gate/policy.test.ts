import { describe, expect, it } from "vitest";
import type { PortcullisConfig } from "../../src/config/schema";
import { AUDIENCE, baseConfig, bearer, expectRejected, ISSUER, mint, originSaw, setup, type Fixture } from "../helpers";

/** The route policy engine (issue 4) at the gate: access kinds, requirements, report-only, request forms. */

const withRoutes = (routes: PortcullisConfig["routes"], extra: Partial<PortcullisConfig> = {}) => (fixture: Fixture) => baseConfig(fixture, { routes, ...extra });
const identityHeaders = (headers: Record<string, unknown>) => Object.keys(headers).filter((name) => name.startsWith("x-auth-"));

describe("access kinds", () => {
  it("T-E5 optional: anonymous without a token, identity with a valid one, 401 with an invalid one", async () => {
    const { key, gate } = await setup(withRoutes([{ path: "/feed/**", access: "optional" }]));
    expect(identityHeaders((await originSaw(await gate.request("/feed/1", { headers: { "x-auth-sub": "forged" } }))).headers)).toEqual([]);
    const seen = await originSaw(await gate.request("/feed/1", { headers: bearer(await mint(key)) }));
    expect(seen.headers["x-auth-sub"]).toBe("user-123");
    for (const bad of ["junk", await mint(key, { aud: "https://elsewhere" })]) {
      await expectRejected(gate, await gate.request("/feed/1", { headers: bearer(bad) }), 401, "invalid_token");
    }
  });

  it("deny refuses with 403 whatever the token", async () => {
    const { key, gate } = await setup(withRoutes([{ path: "/internal/**", access: "deny" }, { path: "/**", access: "public" }]));
    await expectRejected(gate, await gate.request("/internal/x"), 403, "access_denied");
    await expectRejected(gate, await gate.request("/internal/x", { headers: bearer(await mint(key, { scope: "admin" })) }), 403, "access_denied");
    expect((await gate.request("/other")).status).toBe(200);
  });
});

describe("requirements", () => {
  it("scopes_any: one of the listed scopes suffices; none -> 403 naming them", async () => {
    const { key, gate } = await setup(withRoutes([{ path: "/r", scopes_any: ["read", "admin"] }]));
    expect((await gate.request("/r", { headers: bearer(await mint(key, { scope: "admin" })) })).status).toBe(200);
    const { challenge } = await expectRejected(gate, await gate.request("/r", { headers: bearer(await mint(key, { scope: "write" })) }), 403, "insufficient_scope");
    expect(challenge).toContain('scope="read admin"');
  });

  it("scopes (all-of) and scopes_any combine", async () => {
    const { key, gate } = await setup(withRoutes([{ path: "/r", scopes: ["base"], scopes_any: ["x", "y"] }]));
    expect((await gate.request("/r", { headers: bearer(await mint(key, { scope: "base y" })) })).status).toBe(200);
    await expectRejected(gate, await gate.request("/r", { headers: bearer(await mint(key, { scope: "y" })) }), 403, "insufficient_scope");
    await expectRejected(gate, await gate.request("/r", { headers: bearer(await mint(key, { scope: "base" })) }), 403, "insufficient_scope");
  });

  it.each([
    [{ claim: "tid", equals: "t-1" }, { tid: "t-1" }, { tid: "t-2" }],
    [{ claim: "org.tier", one_of: ["gold", "platinum"] }, { org: { tier: "gold" } }, { org: { tier: "silver" } }],
    [{ claim: "groups", contains: "ops" }, { groups: ["dev", "ops"] }, { groups: ["dev", "ops-lead"] }],
    [{ claim: "amr", contains: "mfa" }, { amr: "pwd mfa" }, { amr: "pwd mfa-pending" }],
    [{ claim: "email_verified", equals: true }, { email_verified: true }, { email_verified: "true" }],
    [{ claim: "level", one_of: [3, 4] }, { level: 3 }, { level: "3" }],
  ])("claim condition %j holds for %j, not for %j (403 access_denied)", async (condition, good, bad) => {
    const { key, gate } = await setup(withRoutes([{ path: "/c", claims: [condition] }]));
    expect((await gate.request("/c", { headers: bearer(await mint(key, good)) })).status).toBe(200);
    await expectRejected(gate, await gate.request("/c", { headers: bearer(await mint(key, bad)) }), 403, "access_denied");
    await expectRejected(gate, await gate.request("/c", { headers: bearer(await mint(key)) }), 403, "access_denied");
  });

  it("claim conditions never read through the prototype chain", async () => {
    const { key, gate } = await setup(withRoutes([{ path: "/c", claims: [{ claim: "constructor.name", equals: "Object" }] }]));
    await expectRejected(gate, await gate.request("/c", { headers: bearer(await mint(key)) }), 403, "access_denied");
  });

  it("scope sources per issuer: permissions and realm_access.roles with a prefix, merged", async () => {
    const { key, gate } = await setup((f) =>
      baseConfig(f, {
        issuers: [
          {
            issuer: ISSUER,
            audiences: [AUDIENCE],
            jwks_uri: f.jwksUri,
            scopes_from: [{ claim: "permissions" }, { claim: "realm_access.roles", prefix: "role:" }],
          },
        ],
        routes: [{ path: "/admin", scopes: ["role:admin", "items:delete"] }],
      }),
    );
    const token = await mint(key, { scope: "role:admin items:delete", permissions: ["items:delete"], realm_access: { roles: ["admin"] } });
    const seen = await originSaw(await gate.request("/admin", { headers: bearer(token) }));
    expect(seen.headers["x-auth-scope"]).toBe("items:delete role:admin");
    // `scope` is not a source for this issuer, so it grants nothing here.
    const scopeOnly = await mint(key, { scope: "role:admin items:delete" });
    await expectRejected(gate, await gate.request("/admin", { headers: bearer(scopeOnly) }), 403, "insufficient_scope");
  });
});

describe("report-only", () => {
  it("per rule: a failed requirement is logged as report_only and forwarded; authentication is still enforced", async () => {
    const { key, gate } = await setup(withRoutes([{ path: "/new/**", scopes: ["new:read"], report_only: true }]));
    const seen = await originSaw(await gate.request("/new/x", { headers: bearer(await mint(key, { scope: "other" })) }));
    expect(seen.headers["x-auth-sub"]).toBe("user-123");
    expect(gate.logs.at(-1)).toMatchObject({ event: "decision", outcome: "allow", report_only: true, would: { status: 403, reason: "scope_missing" } });
    await expectRejected(gate, await gate.request("/new/x"), 401);
    await expectRejected(gate, await gate.request("/new/x", { headers: bearer("junk") }), 401, "invalid_token");
  });

  it("per issuer: that issuer's tokens are reported, not refused, on failed requirements", async () => {
    const { key, gate } = await setup((f) =>
      baseConfig(f, { issuers: [{ issuer: ISSUER, audiences: [AUDIENCE], jwks_uri: f.jwksUri, report_only: true }] }),
    );
    expect((await gate.request("/admin/x", { headers: bearer(await mint(key, { scope: "items:read" })) })).status).toBe(200);
    expect(gate.logs.at(-1)).toMatchObject({ report_only: true, would: { status: 403 } });
    await expectRejected(gate, await gate.request("/admin/x", { headers: bearer(await mint(key, { exp: 1 })) }), 401, "invalid_token");
  });
});

describe("decision log lines", () => {
  const decisions = (logs: Record<string, unknown>[]) => logs.filter((line) => line.event === "decision");

  it("log.allowed = false: allowed requests write no line; denials and report-only lines are still written", async () => {
    const { key, gate } = await setup(
      withRoutes([{ path: "/items/**", scopes: ["items:read"] }, { path: "/new/**", scopes: ["new:read"], report_only: true }, { path: "/health", access: "public" }], { log: { allowed: false } }),
    );
    expect((await originSaw(await gate.request("/items/1", { headers: bearer(await mint(key)) }))).headers["x-auth-sub"]).toBe("user-123");
    expect((await gate.request("/health")).status).toBe(200);
    expect(decisions(gate.logs)).toEqual([]);
    await expectRejected(gate, await gate.request("/items/1", { headers: bearer(await mint(key, { scope: "other" })) }), 403, "insufficient_scope");
    await expectRejected(gate, await gate.request("/items/1"), 401);
    expect(decisions(gate.logs).map((line) => line.reason)).toEqual(["scope_missing", "token_missing"]);
    expect((await gate.request("/new/x", { headers: bearer(await mint(key, { scope: "other" })) })).status).toBe(200);
    expect(decisions(gate.logs).at(-1)).toMatchObject({ outcome: "allow", report_only: true });
  });

  it("by default every allowed request writes one line", async () => {
    const { key, gate } = await setup();
    await originSaw(await gate.request("/items/1", { headers: bearer(await mint(key)) }));
    expect(decisions(gate.logs)).toEqual([expect.objectContaining({ outcome: "allow", rule: expect.any(String) })]);
  });
});

describe("request forms", () => {
  it("CORS preflight is forwarded without a token for a method a rule allows, identity headers stripped", async () => {
    const { gate } = await setup();
    const preflight = { Origin: "https://app.example", "Access-Control-Request-Method": "GET", "X-Auth-Sub": "forged" };
    const seen = await originSaw(await gate.request("/items/1", { method: "OPTIONS", headers: preflight }));
    expect(seen.method).toBe("OPTIONS");
    expect(identityHeaders(seen.headers)).toEqual([]);
    await expectRejected(gate, await gate.request("/items/1", { method: "OPTIONS", headers: { ...preflight, "Access-Control-Request-Method": "PATCH" } }), 403, "access_denied");
    await expectRejected(gate, await gate.request("/nowhere", { method: "OPTIONS", headers: preflight }), 403, "access_denied");
    // Without Origin it is an ordinary OPTIONS request: no rule lists OPTIONS for /items.
    await expectRejected(gate, await gate.request("/items/1", { method: "OPTIONS", headers: { "Access-Control-Request-Method": "GET" } }), 403);
  });

  it("cors_preflight = authorize treats preflights like any request", async () => {
    const { gate } = await setup((f) => baseConfig(f, { methods: { cors_preflight: "authorize" } }));
    const preflight = { Origin: "https://app.example", "Access-Control-Request-Method": "GET" };
    await expectRejected(gate, await gate.request("/items/1", { method: "OPTIONS", headers: preflight }), 403, "access_denied");
  });

  it("T-E3 method override headers are rejected with 400 when configured", async () => {
    const { key, gate } = await setup((f) => baseConfig(f, { methods: { override_headers: "reject" } }));
    const token = await mint(key);
    for (const name of ["X-HTTP-Method-Override", "x-http-method", "X_Method_Override"]) {
      await expectRejected(gate, await gate.request("/items/1", { headers: { ...bearer(token), [name]: "DELETE" } }), 400, "invalid_request");
    }
    expect((await gate.request("/items/1", { headers: bearer(token) })).status).toBe(200);
  });

  it("paths.semicolons = allow matches and forwards `;` literally (no rule bypass through it)", async () => {
    const { key, gate } = await setup((f) => baseConfig(f, { paths: { semicolons: "allow" } }));
    const token = await mint(key, { scope: "items:read" });
    const seen = await originSaw(await gate.request("/items/a;v=1", { headers: bearer(token) }));
    expect(seen.path).toBe("/items/a;v=1");
    // `/admin;x` is the literal segment "admin;x": no rule matches it, so it is denied, not passed to /admin.
    await expectRejected(gate, await gate.request("/admin;x/panel", { headers: bearer(token) }), 403, "access_denied");
  });

  it("paths.empty_segments = merge collapses // and forwards the merged path", async () => {
    const { key, gate } = await setup((f) => baseConfig(f, { paths: { empty_segments: "merge" } }));
    const seen = await originSaw(await gate.request("//items//1", { headers: bearer(await mint(key)) }));
    expect(seen.path).toBe("/items/1");
    await expectRejected(gate, await gate.request("//admin//x", { headers: bearer(await mint(key)) }), 403, "insufficient_scope");
  });

  it("paths.case_insensitive matches /ADMIN against /admin rules", async () => {
    const { key, gate } = await setup((f) => baseConfig(f, { paths: { case_insensitive: true } }));
    await expectRejected(gate, await gate.request("/ADMIN/x", { headers: bearer(await mint(key)) }), 403, "insufficient_scope");
    const seen = await originSaw(await gate.request("/ADMIN/x", { headers: bearer(await mint(key, { scope: "admin" })) }));
    expect(seen.path).toBe("/ADMIN/x");
  });

  it("T-E4 host rules compare the normalized host: upper case, trailing dot and :443 match", async () => {
    const { key, gate } = await setup(
      withRoutes([
        { path: "/**", host: "admin.api.test", scopes: ["admin"] },
        { path: "/**", access: "public" },
      ]),
    );
    const token = await mint(key);
    for (const url of ["https://admin.api.test/x", "https://ADMIN.API.TEST./x", "https://admin.api.test:443/x", "https://Admin.Api.Test.:443/x"]) {
      await expectRejected(gate, await gate.request(url, { headers: bearer(token) }), 403, "insufficient_scope");
    }
    expect((await gate.request("https://public.api.test/x")).status).toBe(200);
  });

  it("T-E4 another port of a host stays under the host's rules; a name with an empty label is refused", async () => {
    const { key, gate } = await setup(
      withRoutes([
        { path: "/**", host: "admin.api.test", scopes: ["admin"] },
        { path: "/**", scopes: ["items:read"] },
      ]),
    );
    const weak = await mint(key, { scope: "items:read" });
    // Ports Cloudflare proxies, and the other scheme's default port: origins pick the virtual host by name.
    for (const url of ["https://admin.api.test:8443/x", "https://admin.api.test:2053/x", "http://admin.api.test:8080/x", "http://admin.api.test:443/x", "https://ADMIN.api.test.:8443/x"]) {
      await expectRejected(gate, await gate.request(url, { headers: bearer(weak) }), 403, "insufficient_scope");
    }
    const admin = await mint(key, { scope: "admin" });
    expect((await originSaw(await gate.request("https://admin.api.test:8443/x", { headers: bearer(admin) }))).headers["x-forwarded-host"]).toBe("admin.api.test:8443");
    for (const url of ["https://admin.api.test../x", "https://admin.api.test..:8443/x", "https://admin..api.test/x"]) {
      await expectRejected(gate, await gate.request(url, { headers: bearer(weak) }), 400, "invalid_request");
    }
    // Another name that merely starts like it is another host.
    expect((await originSaw(await gate.request("https://admin.api.test.evil.test:8443/x", { headers: bearer(weak) }))).headers["x-auth-scope"]).toBe("items:read");
  });
});

describe("authorize exactly what you forward (property, through the gate)", () => {
  it("for arbitrary paths: forwarded path = matched canonical path; unmatched or refused = nothing forwarded", async () => {
    const fc = (await import("fast-check")).default;
    const { canonicalPath } = await import("../../src/policy/path");
    const { key, gate, fixture } = await setup(withRoutes([{ path: "/public/**", access: "public" }, { path: "/items/:id", methods: ["GET"], scopes: ["items:read"] }]));
    const token = await mint(key, { scope: "items:read" });
    const outcomes = { forwarded: 0, refused: 0 };
    const segment = fc.oneof(fc.webSegment(), fc.constantFrom("..", ".", "%2e%2e", "%2F", "%5C", "%00", "%25", ";x", "public", "items", "%70ublic", "admin", "", "%C3%A9"));
    await fc.assert(
      fc.asyncProperty(fc.constantFrom("public", "items", "%70ublic", "%69tems", "admin"), fc.array(segment, { maxLength: 4 }), async (first, rest) => {
        const raw = `/${[first, ...rest].join("/")}`;
        const pathname = new URL(`https://api.test${raw}`).pathname;
        const response = await gate.request(raw, { headers: bearer(token) });
        const tag = response.headers.get("content-type");
        const body = (await response.json()) as { path?: string; headers?: Record<string, string> };
        if (response.status === 200) {
          // The origin received exactly the canonical path the gate matched.
          expect(tag).toContain("application/json");
          expect(body.path).toBe(canonicalPath(pathname));
          // T-I12: a trailing slash does not change the rule (`/items/:id` matches `/items/7/`).
          expect(body.path!.startsWith("/public") || /^\/items\/[^/]+\/?$/.test(body.path!)).toBe(true);
          outcomes.forwarded++;
        } else {
          expect([400, 403]).toContain(response.status);
          outcomes.refused++;
        }
      }),
      { numRuns: 300 },
    );
    // Both sides of the property were exercised.
    expect(outcomes.forwarded).toBeGreaterThan(20);
    expect(outcomes.refused).toBeGreaterThan(20);
    // Every forwarded request was a 200 above; nothing else reached the origin.
    const forwarded = (await fixture.originRequests()).map((record) => record.path);
    expect(forwarded.every((path) => path.startsWith("/public") || /^\/items\/[^/?]+\/?$/.test(path))).toBe(true);
  }, 60_000);
});
