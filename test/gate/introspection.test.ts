import { describe, expect, it } from "vitest";
import type { PortcullisConfig } from "../../src/config/schema";
import { AUDIENCE, baseConfig, bearer, expectRejected, Fixture, ISSUER, makeGate, makeKey, mint, originSaw } from "../helpers";

/**
 * RFC 7662 introspection against a scripted authorization server (every failure mode on demand). The
 * same flows against a real one (oidc-provider) are in authorization-server.test.ts.
 */

const SECRET = { GATE_CLIENT_SECRET: "s3cr3t with spaces&symbols" };
const now = () => Math.floor(Date.now() / 1000);
const active = (extra: Record<string, unknown> = {}) => ({
  active: true,
  iss: ISSUER,
  aud: AUDIENCE,
  sub: "user-9",
  client_id: "app-1",
  scope: "items:read",
  token_type: "Bearer",
  exp: now() + 3600,
  ...extra,
});

function clock() {
  let t = Date.now();
  return { now: () => t, advance: (seconds: number) => void (t += seconds * 1000) };
}

type Introspection = NonNullable<NonNullable<PortcullisConfig["issuers"]>[number]["introspection"]>;

function introspectingConfig(fixture: Fixture, introspection: Partial<Introspection> = {}, extra: Partial<PortcullisConfig> = {}) {
  return baseConfig(fixture, {
    issuers: [
      {
        issuer: ISSUER,
        audiences: [AUDIENCE],
        jwks_uri: fixture.jwksUri,
        introspection: { endpoint: fixture.introspectionEndpoint, client_id: "gate", client_secret: "GATE_CLIENT_SECRET", ...introspection },
      },
    ],
    ...extra,
  });
}

async function introspecting(answers: Parameters<Fixture["serveIntrospection"]>[0], introspection: Partial<Introspection> = {}, options: { now?: () => number } = {}) {
  const fixture = new Fixture();
  await fixture.serveIntrospection(answers);
  const gate = makeGate(fixture, introspectingConfig(fixture, introspection), { env: SECRET, ...options });
  return { fixture, gate };
}

describe("introspection: answers", () => {
  it("an active opaque token is forwarded with identity headers; the request is RFC 7662 with Basic auth", async () => {
    const { fixture, gate } = await introspecting({ "opaque-1": { body: active() } });
    const seen = await originSaw(await gate.request("/items/1", { headers: bearer("opaque-1") }));
    expect(seen.headers["x-auth-sub"]).toBe("user-9");
    expect(seen.headers["x-auth-client-id"]).toBe("app-1");
    expect(seen.headers["x-auth-scope"]).toBe("items:read");
    const [call] = (await fixture.stats()).introspectionCalls;
    expect(call!.form).toEqual({ token: "(present)", token_type_hint: "access_token" });
    expect(call!.authorization).toBe(`Basic ${btoa("gate:s3cr3t+with+spaces%26symbols")}`);
    expect(gate.logs.at(-1)).toMatchObject({ outcome: "allow", via: "introspection" });
  });

  it("client_secret_post sends the credentials in the form instead", async () => {
    const { fixture, gate } = await introspecting({ default: { body: active() } }, { auth_method: "client_secret_post" });
    expect((await gate.request("/items/1", { headers: bearer("opaque-2") })).status).toBe(200);
    const [call] = (await fixture.stats()).introspectionCalls;
    expect(call!.authorization).toBeNull();
    expect(call!.form).toMatchObject({ client_id: "gate", client_secret: SECRET.GATE_CLIENT_SECRET });
  });

  it.each([
    ["active: false", { active: false }],
    ['active: "true" (a string)', { ...active(), active: "true" }],
    ["active missing", { sub: "x", scope: "items:read" }],
    ["active: 1", { ...active(), active: 1 }],
  ])("T-G1 %s is 401 invalid_token", async (_label, body) => {
    const { gate } = await introspecting({ default: { body } });
    await expectRejected(gate, await gate.request("/items/1", { headers: bearer("opaque") }), 401, "invalid_token");
  });

  it.each([
    ["401 (our client credentials refused)", { status: 401, body: { error: "invalid_client" } }, "client_authentication_failed"],
    ["403", { status: 403, body: {} }, "client_authentication_failed"],
    ["400", { status: 400, body: { error: "invalid_request" } }, "status_400"],
    ["500", { status: 500, body: "oops" }, "status_500"],
    ["503", { status: 503, body: "" }, "status_503"],
    ["non-JSON", { status: 200, body: "<html>" }, "not_json"],
    ["JSON that is not an object", { status: 200, body: "[true]" }, "not_an_object"],
    ["oversize", { status: 200, body: JSON.stringify({ ...active(), pad: "x".repeat(70_000) }) }, "too_large"],
    ["slow (timeout)", { status: 200, body: active(), delayMs: 2_000 }, "timeout"],
  ])("T-G1 authorization server answering %s is 503 with Retry-After, logged, not cached", async (_label, answer: { status: number; body: unknown; delayMs?: number }, reason) => {
    const { fixture, gate } = await introspecting({ default: answer }, { timeout_ms: 300 });
    for (let i = 0; i < 2; i++) {
      const response = await gate.request("/items/1", { headers: bearer("opaque") });
      await expectRejected(gate, response, 503, "temporarily_unavailable");
      expect(response.headers.get("retry-after")).toBe("5");
    }
    expect((await fixture.stats()).introspectionCalls).toHaveLength(2); // not cached
    expect(gate.logs).toContainEqual(expect.objectContaining({ event: "introspection_failed", reason }));
    expect(JSON.stringify(gate.logs)).not.toContain("opaque");
  });

  it("wrong client credentials are an operator error: 503 and a log line that says so", async () => {
    const { gate } = await introspecting({ default: { status: 401, body: { error: "invalid_client" } } });
    await expectRejected(gate, await gate.request("/items/1", { headers: bearer("opaque") }), 503);
    expect(gate.logs).toContainEqual(expect.objectContaining({ reason: "client_authentication_failed", hint: expect.stringContaining("client_secret") }));
  });

  it("a missing client secret is a 500, not a 401 or an unauthenticated call", async () => {
    const fixture = new Fixture();
    await fixture.serveIntrospection({ default: { body: active() } });
    const gate = makeGate(fixture, introspectingConfig(fixture));
    await expectRejected(gate, await gate.request("/items/1", { headers: bearer("opaque") }), 500, "server_error");
    expect((await fixture.stats()).introspectionCalls).toHaveLength(0);
  });

  it.each([
    ["iss of another issuer", { iss: "https://other/" }],
    ["aud of another resource", { aud: "https://other-api" }],
    ["aud array without ours", { aud: ["a", "b"] }],
    ["exp in the past", { exp: now() - 120 }],
    ["exp as a string", { exp: String(now() + 60) }],
    ["nbf in the future", { nbf: now() + 600 }],
    ["token_type DPoP", { token_type: "DPoP" }],
    ["token_type refresh_token", { token_type: "refresh_token" }],
    ["cnf (sender-constrained)", { cnf: { jkt: "x" } }],
  ])("T-G5 an active answer with %s is 401", async (_label, extra) => {
    const { gate } = await introspecting({ default: { body: active(extra) } });
    await expectRejected(gate, await gate.request("/items/1", { headers: bearer("opaque") }), 401, "invalid_token");
  });

  it("T-G5 without aud: accepted by default, refused with require_audience", async () => {
    const { aud: _aud, ...noAud } = active();
    const lax = await introspecting({ default: { body: noAud } });
    expect((await lax.gate.request("/items/1", { headers: bearer("opaque") })).status).toBe(200);
    const strict = await introspecting({ default: { body: noAud } }, { require_audience: true });
    await expectRejected(strict.gate, await strict.gate.request("/items/1", { headers: bearer("opaque") }), 401, "invalid_token");
  });
});

describe("introspection: cache", () => {
  it("T-G2 a cached active token is re-checked against each route's requirements", async () => {
    const { fixture, gate } = await introspecting({ default: { body: active({ scope: "items:read" }) } });
    expect((await gate.request("/items/1", { headers: bearer("opaque") })).status).toBe(200);
    const { challenge } = await expectRejected(gate, await gate.request("/admin/x", { headers: bearer("opaque") }), 403, "insufficient_scope");
    expect(challenge).toContain('scope="admin"');
    expect((await fixture.stats()).introspectionCalls).toHaveLength(1); // the second request was a cache hit
  });

  it("T-G3 a cache hit after the token's exp is not served; TTL = min(cache_ttl, exp - now)", async () => {
    const time = clock();
    const exp = Math.floor(time.now() / 1000) + 20;
    const { fixture, gate } = await introspecting({ default: { body: active({ exp }) } }, { cache_ttl: 60 }, { now: time.now });
    expect((await gate.request("/items/1", { headers: bearer("opaque") })).status).toBe(200);
    time.advance(10);
    expect((await gate.request("/items/1", { headers: bearer("opaque") })).status).toBe(200);
    expect((await fixture.stats()).introspectionCalls).toHaveLength(1);
    time.advance(11 + 30); // past exp and the clock tolerance: the cached entry is not used
    await fixture.serveIntrospection({ default: { body: { active: false } } });
    await expectRejected(gate, await gate.request("/items/1", { headers: bearer("opaque") }), 401, "invalid_token");
    expect((await fixture.stats()).introspectionCalls).toHaveLength(2);
  });

  it("T-G3 the cache key is a SHA-256 of issuer, flavor, endpoint, client id and token: the token is not in KV", async () => {
    const { env } = await import("cloudflare:test");
    const { gate } = await introspecting({ "secret-token-value": { body: active() } }, { kv_cache: true });
    expect((await gate.request("/items/1", { headers: bearer("secret-token-value") })).status).toBe(200);
    const listed = await env.PORTCULLIS_KV.list({ prefix: "introspection:v2:" });
    expect(listed.keys.length).toBeGreaterThan(0);
    for (const { name } of listed.keys) {
      expect(name).toMatch(/^introspection:v2:[0-9a-f]{64}$/);
      expect(await env.PORTCULLIS_KV.get(name)).not.toContain("secret-token-value");
    }
  });

  it("T-G4 a revoked token is accepted at most for cache_ttl, then refused", async () => {
    const time = clock();
    const { fixture, gate } = await introspecting({ default: { body: active() } }, { cache_ttl: 30 }, { now: time.now });
    expect((await gate.request("/items/1", { headers: bearer("opaque") })).status).toBe(200);
    await fixture.serveIntrospection({ default: { body: { active: false } } }); // revoked at the AS
    time.advance(29);
    expect((await gate.request("/items/1", { headers: bearer("opaque") })).status).toBe(200); // within the documented bound
    time.advance(2);
    await expectRejected(gate, await gate.request("/items/1", { headers: bearer("opaque") }), 401, "invalid_token");
  });

  it("cache_ttl = 0 introspects every request; inactive answers are remembered for inactive_cache_ttl (default 5 s; 0 = never)", async () => {
    const { fixture, gate } = await introspecting({ default: { body: active() } }, { cache_ttl: 0 });
    for (let i = 0; i < 3; i++) expect((await gate.request("/items/1", { headers: bearer("opaque") })).status).toBe(200);
    expect((await fixture.stats()).introspectionCalls).toHaveLength(3);

    const inactive = await introspecting({ default: { body: { active: false } } }, { inactive_cache_ttl: 0 });
    for (let i = 0; i < 2; i++) await expectRejected(inactive.gate, await inactive.gate.request("/items/1", { headers: bearer("x") }), 401);
    expect((await inactive.fixture.stats()).introspectionCalls).toHaveLength(2);
    const remembered = await introspecting({ default: { body: { active: false } } });
    for (let i = 0; i < 2; i++) await expectRejected(remembered.gate, await remembered.gate.request("/items/1", { headers: bearer("x") }), 401);
    expect((await remembered.fixture.stats()).introspectionCalls).toHaveLength(1);
  });
});

describe("introspection: which tokens", () => {
  it("T-D7 opaque tokens go to the introspecting issuer; JWTs stay local unless configured", async () => {
    const key = await makeKey("ES256");
    const { fixture } = await introspecting({ default: { body: active() } });
    await fixture.serveJwks({ keys: [key.publicJwk] });
    const gate = makeGate(fixture, introspectingConfig(fixture), { env: SECRET });
    expect((await gate.request("/items/1", { headers: bearer(await mint(key)) })).status).toBe(200);
    expect((await fixture.stats()).introspectionCalls).toHaveLength(0);
    // An RFC 6750-style opaque token with dots is still opaque.
    expect((await gate.request("/items/1", { headers: bearer("mF_9.B5f-4.1JqM") })).status).toBe(200);
    expect((await fixture.stats()).introspectionCalls).toHaveLength(1);
  });

  it("introspection.jwts = true and route introspect = true check JWTs for revocation too", async () => {
    const key = await makeKey("ES256");
    const fixture = new Fixture();
    await fixture.serveJwks({ keys: [key.publicJwk] });
    await fixture.serveIntrospection({ default: { body: { active: false } } });
    const token = await mint(key);
    const always = makeGate(fixture, introspectingConfig(fixture, { jwts: true }), { env: SECRET });
    await expectRejected(always, await always.request("/items/1", { headers: bearer(token) }), 401, "invalid_token");
    expect(always.logs.at(-1)?.reason).toBe("token_inactive");

    const perRoute = makeGate(
      fixture,
      introspectingConfig(fixture, {}, { routes: [{ path: "/items/**", scopes: ["items:read"] }, { path: "/pay/**", scopes: ["items:read"], introspect: true }] }),
      { env: SECRET },
    );
    expect((await perRoute.request("/items/1", { headers: bearer(token) })).status).toBe(200);
    await expectRejected(perRoute, await perRoute.request("/pay/1", { headers: bearer(token) }), 401, "invalid_token");
  });

  it("the endpoint is discovered from metadata when not configured", async () => {
    const fixture = new Fixture();
    await fixture.serveIntrospection({ default: { body: active({ iss: fixture.issuerBase }) } });
    await fixture.serveMetadata({ as: { issuer: fixture.issuerBase, jwks_uri: fixture.jwksUri, introspection_endpoint: fixture.introspectionEndpoint } });
    const config = baseConfig(fixture, {
      issuers: [{ issuer: fixture.issuerBase, audiences: [AUDIENCE], introspection: { client_id: "gate", client_secret: "GATE_CLIENT_SECRET" } }],
    });
    const gate = makeGate(fixture, config, { env: SECRET });
    for (let i = 0; i < 2; i++) expect((await gate.request("/items/1", { headers: bearer(`opaque-${i}`) })).status).toBe(200);
    expect((await fixture.stats()).metadataFetches).toBe(1);
  });

  it("configuration: one opaque-token issuer at most; route introspect needs introspection everywhere", async () => {
    const { parseConfig } = await import("../../src/config/load");
    const fixture = new Fixture();
    const intro = { client_id: "gate", client_secret: "S" };
    const two = parseConfig(
      baseConfig(fixture, {
        issuers: [
          { issuer: ISSUER, audiences: [AUDIENCE], jwks_uri: fixture.jwksUri, introspection: intro },
          { issuer: "https://b.test/", audiences: [AUDIENCE], jwks_uri: fixture.jwksUri, introspection: intro },
        ],
      }),
    );
    expect(two.ok ? [] : two.issues.map((i) => i.field)).toEqual(["issuers.1.introspection.opaque_tokens"]);
    const route = parseConfig(baseConfig(fixture, { routes: [{ path: "/a", introspect: true }] }));
    expect(route.ok ? [] : route.issues.map((i) => i.field)).toEqual(["routes.0.introspect"]);
  });
});
