import { describe, expect, it } from "vitest";
import { tokenKey, VerifiedTokenCache } from "../../src/validate/token-cache";
import { AUDIENCE, baseConfig, bearer, expectRejected, Fixture, ISSUER, makeGate, makeKey, mint } from "../helpers";

/** The verified-token cache (issue 7): successes only, bounded, time and route re-checked on every hit. */

function clock() {
  let t = Date.now();
  return { now: () => t, advance: (seconds: number) => void (t += seconds * 1000) };
}

async function cachedGate(tokenCache: Record<string, unknown> = {}, now?: () => number) {
  const fixture = new Fixture();
  const key = await makeKey("ES256", "k1");
  await fixture.serveJwks({ keys: [key.publicJwk] });
  const gate = makeGate(fixture, baseConfig(fixture, { token_cache: tokenCache }), now ? { now } : {});
  const via = () => gate.logs.filter((line) => line.event === "decision").map((line) => line.reason ?? line.via);
  return { fixture, key, gate, via };
}

describe("verified-token cache", () => {
  it("a repeated token is served from the cache; the route's requirements are checked on every hit", async () => {
    const { key, gate, via } = await cachedGate();
    const token = await mint(key, { scope: "items:read" });
    for (let i = 0; i < 3; i++) expect((await gate.request("/items/1", { headers: bearer(token) })).status).toBe(200);
    await expectRejected(gate, await gate.request("/admin/x", { headers: bearer(token) }), 403, "insufficient_scope");
    expect(via()).toEqual(["jwt", "jwt_cached", "jwt_cached", "scope_missing"]);
  });

  it("only successes are cached: a bad token is verified (and refused) every time", async () => {
    const { key, gate, via } = await cachedGate();
    const bad = await mint(key, { aud: "https://elsewhere" });
    for (let i = 0; i < 3; i++) await expectRejected(gate, await gate.request("/items/1", { headers: bearer(bad) }), 401, "invalid_token");
    expect(via()).toEqual(["audience_mismatch", "audience_mismatch", "audience_mismatch"]);
  });

  it("a cached token is refused once exp (plus the clock tolerance) has passed", async () => {
    const time = clock();
    const { key, gate, via } = await cachedGate({}, time.now);
    const token = await mint(key, { exp: Math.floor(time.now() / 1000) + 60 });
    expect((await gate.request("/items/1", { headers: bearer(token) })).status).toBe(200);
    time.advance(60 + 29);
    expect((await gate.request("/items/1", { headers: bearer(token) })).status).toBe(200);
    time.advance(2);
    await expectRejected(gate, await gate.request("/items/1", { headers: bearer(token) }), 401, "invalid_token");
    expect(via()).toEqual(["jwt", "jwt_cached", "token_expired"]);
  });

  it("an entry lives at most max_ttl, then the token is verified again", async () => {
    const time = clock();
    const { key, gate, via } = await cachedGate({ max_ttl: 60 }, time.now);
    const token = await mint(key, { exp: Math.floor(time.now() / 1000) + 3600 });
    await gate.request("/items/1", { headers: bearer(token) });
    time.advance(59);
    await gate.request("/items/1", { headers: bearer(token) });
    time.advance(2);
    await gate.request("/items/1", { headers: bearer(token) });
    expect(via()).toEqual(["jwt", "jwt_cached", "jwt"]);
  });

  it("a key removed at the issuer invalidates its cached tokens as soon as the key set is refreshed", async () => {
    const time = clock();
    const fixture = new Fixture();
    const leaving = await makeKey("ES256", "leaving");
    const staying = await makeKey("ES256", "staying");
    await fixture.serveJwks({ keys: [leaving.publicJwk, staying.publicJwk] });
    const gate = makeGate(fixture, baseConfig(fixture, { issuers: [{ issuer: ISSUER, audiences: [AUDIENCE], jwks_uri: fixture.jwksUri }] }), { now: time.now });
    const token = await mint(leaving, { exp: Math.floor(time.now() / 1000) + 3600 });
    expect((await gate.request("/items/1", { headers: bearer(token) })).status).toBe(200);
    await fixture.serveJwks({ keys: [staying.publicJwk] });
    time.advance(601); // the set expires and is refetched without the key
    await expectRejected(gate, await gate.request("/items/1", { headers: bearer(token) }), 401, "invalid_token");
  });

  it("T-B9 the same key re-listed under another alg or kid ends its cached tokens as a fresh verification would", async () => {
    for (const [label, relisted] of [
      ["another alg", (jwk: Record<string, unknown>) => [{ ...jwk, alg: "PS256" }]],
      ["another kid", (jwk: Record<string, unknown>) => [{ ...jwk, kid: "new" }]],
    ] as const) {
      for (const enabled of [true, false]) {
        const time = clock();
        const fixture = new Fixture();
        const key = await makeKey("RS256", "old");
        await fixture.serveJwks({ keys: [key.publicJwk] });
        const issuers = [{ issuer: ISSUER, audiences: [AUDIENCE], jwks_uri: fixture.jwksUri, algorithms: ["RS256", "PS256"] as ("RS256" | "PS256")[], jwks: { default_age: 60, min_age: 60, refresh_ahead: 0 } }];
        const gate = makeGate(fixture, baseConfig(fixture, { token_cache: { enabled }, issuers }), { now: time.now });
        const token = await mint(key, { exp: Math.floor(time.now() / 1000) + 3600 });
        expect((await gate.request("/items/1", { headers: bearer(token) })).status).toBe(200);
        await fixture.serveJwks({ keys: relisted(key.publicJwk as Record<string, unknown>) });
        time.advance(61); // the set expires and is refetched
        const response = await gate.request("/items/1", { headers: bearer(token) });
        expect([label, enabled, response.status]).toEqual([label, enabled, 401]);
      }
    }
  });

  it("enabled = false verifies every request", async () => {
    const { key, gate, via } = await cachedGate({ enabled: false });
    const token = await mint(key);
    for (let i = 0; i < 2; i++) await gate.request("/items/1", { headers: bearer(token) });
    expect(via()).toEqual(["jwt", "jwt"]);
  });

  it("is bounded: the least recently used entry goes first", () => {
    const cache = new VerifiedTokenCache(2, 60_000);
    const entry = { issuer: "i", claims: { exp: 10_000_000_000 }, kid: "k", alg: "ES256" as const, thumbprint: "t" };
    cache.set("a", entry, 0, 0);
    cache.set("b", entry, 0, 0);
    expect(cache.get("a", 1)).toBeDefined(); // a is now the most recently used
    cache.set("c", entry, 0, 0);
    expect(cache.get("b", 1)).toBeUndefined();
    expect(cache.get("a", 1)).toBeDefined();
    expect(cache.get("c", 1)).toBeDefined();
    expect(cache.size).toBe(2);
  });

  it("keys are SHA-256 hashes of the token, never the token", async () => {
    const key = await tokenKey("eyJhbGciOiJFUzI1NiJ9.eyJzdWIiOiJ4In0.c2ln");
    expect(key).toMatch(/^[A-Za-z0-9+/]{43}=$/);
    expect(key).not.toContain("eyJ");
  });
});
