import { createExecutionContext, createScheduledController, env, waitOnExecutionContext } from "cloudflare:test";
import { describe, expect, it } from "vitest";
import { parseConfig } from "../../src/config/load";
import { createGate } from "../../src/pipeline/gate";
import { metadataUrls } from "../../src/validate/discovery";
import { cacheMaxAge } from "../../src/validate/fetch-json";
import worker from "../../src/worker";
import { AUDIENCE, baseConfig, bearer, expectRejected, Fixture, ISSUER, makeGate, makeKey, mint as mintNow, type TestKey } from "../helpers";

/**
 * Key sets that never cause an outage (issue 3): freshness, refresh-ahead, stale-if-error with backoff,
 * unknown-kid control across isolates, discovery, service bindings and the cron refresh. A manual clock
 * drives time; tokens live for days so that only the key cache is under test.
 */

const mint = (key: TestKey, claims: Record<string, unknown> = {}, header: Record<string, unknown> = {}) =>
  mintNow(key, { exp: Math.floor(Date.now() / 1000) + 3 * 86_400, ...claims }, header);

function clock() {
  let t = Date.now();
  return { now: () => t, advance: (seconds: number) => void (t += seconds * 1000) };
}

const withIssuer = (fixture: Fixture, issuer: Record<string, unknown>) =>
  baseConfig(fixture, { issuers: [{ issuer: ISSUER, audiences: [AUDIENCE], jwks_uri: fixture.jwksUri, ...issuer }] });

async function servedWith(headers: Record<string, string>, ...keys: TestKey[]) {
  const fixture = new Fixture();
  await fixture.serveJwks({ keys: keys.map((k) => k.publicJwk) }, { headers: { "content-type": "application/json", ...headers } });
  return fixture;
}

describe("freshness", () => {
  it.each([
    ["max-age=3600 is honoured", "max-age=3600", 3600],
    ["a short max-age is raised to min_age (300 s)", "public, max-age=10", 300],
    ["a long max-age is capped at max_age (24 h)", "max-age=999999", 86_400],
    ["no-store counts as 0, raised to min_age", "no-store", 300],
    ["no Cache-Control: default_age (600 s)", "", 600],
  ])("%s", async (_label, cacheControl, lifetime) => {
    const key = await makeKey("ES256", "k");
    const fixture = await servedWith(cacheControl ? { "cache-control": cacheControl } : {}, key);
    const time = clock();
    const gate = makeGate(fixture, withIssuer(fixture, { jwks: { refresh_ahead: 0 } }), { now: time.now });
    const token = await mint(key);
    expect((await gate.request("/items/1", { headers: bearer(token) })).status).toBe(200);
    time.advance(lifetime - 1);
    expect((await gate.request("/items/1", { headers: bearer(token) })).status).toBe(200);
    expect((await fixture.stats()).jwksFetches).toBe(1);
    time.advance(2);
    expect((await gate.request("/items/1", { headers: bearer(token) })).status).toBe(200);
    expect((await fixture.stats()).jwksFetches).toBe(2);
  });

  it("the first load is logged as initial, a later fetch after expiry as expired", async () => {
    const key = await makeKey("ES256", "k");
    const fixture = await servedWith({ "cache-control": "max-age=300" }, key);
    const time = clock();
    const gate = makeGate(fixture, withIssuer(fixture, { jwks: { refresh_ahead: 0 } }), { now: time.now });
    const token = await mint(key);
    expect((await gate.request("/items/1", { headers: bearer(token) })).status).toBe(200);
    time.advance(301);
    expect((await gate.request("/items/1", { headers: bearer(token) })).status).toBe(200);
    expect(gate.logs.filter((line) => line.event === "jwks_fetch").map((line) => line.reason)).toEqual(["initial", "expired"]);
  });

  it("parses Cache-Control", () => {
    expect(cacheMaxAge("max-age=60, must-revalidate")).toBe(60);
    expect(cacheMaxAge("MAX-AGE=5")).toBe(5);
    expect(cacheMaxAge("no-cache, max-age=600")).toBe(0);
    expect(cacheMaxAge("max-age=-1")).toBeUndefined();
    expect(cacheMaxAge("max-age=1.5")).toBeUndefined();
    expect(cacheMaxAge(null)).toBeUndefined();
  });
});

describe("refresh-ahead", () => {
  it("near expiry the set is served while a background refresh fetches the next one", async () => {
    const key = await makeKey("ES256", "k");
    const next = await makeKey("ES256", "next");
    const fixture = await servedWith({}, key);
    const time = clock();
    const gate = makeGate(fixture, withIssuer(fixture, {}), { now: time.now });
    expect((await gate.request("/items/1", { headers: bearer(await mint(key)) })).status).toBe(200);
    await fixture.serveJwks({ keys: [key.publicJwk, next.publicJwk] });
    time.advance(550); // 50 s left of 600: inside the 60 s refresh-ahead window
    expect((await gate.request("/items/1", { headers: bearer(await mint(key)) })).status).toBe(200);
    expect((await fixture.stats()).jwksFetches).toBe(2); // the background refresh ran (waitUntil)
    expect(gate.logs).toContainEqual(expect.objectContaining({ event: "jwks_fetch", reason: "refresh_ahead" }));
    time.advance(100); // past the first set's expiry: the refreshed set is current, no user request waits
    expect((await gate.request("/items/1", { headers: bearer(await mint(next)) })).status).toBe(200);
    expect((await fixture.stats()).jwksFetches).toBe(2);
  });
});

describe("stale-if-error", () => {
  it("a simulated one-hour IdP outage rejects no valid token, and retries back off", async () => {
    const key = await makeKey("ES256", "k");
    const fixture = await servedWith({}, key);
    const time = clock();
    const gate = makeGate(fixture, withIssuer(fixture, {}), { now: time.now, log: () => {} });
    const token = await mint(key);
    expect((await gate.request("/items/1", { headers: bearer(token) })).status).toBe(200);
    await fixture.serveJwks(undefined, { status: 503, body: "down" });
    const statuses = new Set<number>();
    for (let second = 10; second <= 3_600 + 600; second += 10) {
      time.advance(10);
      const response = await gate.request("/items/1", { headers: bearer(token) });
      statuses.add(response.status);
      await response.arrayBuffer();
    }
    expect([...statuses]).toEqual([200]);
    // Attempts after expiry (t = 600 s): 30, 60, 120, 240, 480 s apart, then every 600 s (max_backoff).
    const fetches = (await fixture.stats()).jwksFetches - 1;
    expect(fetches).toBeGreaterThanOrEqual(6);
    expect(fetches).toBeLessThanOrEqual(12);
  }, 60_000);

  it("with no good set, 503 carries a Retry-After that grows with the backoff", async () => {
    const fixture = new Fixture();
    await fixture.serveJwks(undefined, { status: 500, body: "" });
    const time = clock();
    const gate = makeGate(fixture, withIssuer(fixture, {}), { now: time.now });
    const key = await makeKey("ES256");
    const retryAfter: number[] = [];
    for (let i = 0; i < 4; i++) {
      const response = await gate.request("/items/1", { headers: bearer(await mint(key)) });
      await expectRejected(gate, response, 503, "temporarily_unavailable");
      retryAfter.push(Number(response.headers.get("retry-after")));
      time.advance(retryAfter.at(-1)!);
    }
    expect(retryAfter).toEqual([30, 60, 120, 240]);
    expect((await fixture.stats()).jwksFetches).toBe(4);
  });
});

describe("unknown kid control", () => {
  it("an unknown kid is remembered: repeated use costs no fetch until the cooldown passes", async () => {
    const key = await makeKey("ES256", "k");
    const fixture = await servedWith({}, key);
    const time = clock();
    const gate = makeGate(fixture, withIssuer(fixture, {}), { now: time.now });
    expect((await gate.request("/items/1", { headers: bearer(await mint(key)) })).status).toBe(200);
    time.advance(31);
    const unknown = await mint(key, {}, { kid: "ghost" });
    for (let i = 0; i < 50; i++) await expectRejected(gate, await gate.request("/items/1", { headers: bearer(unknown) }), 401, "invalid_token");
    expect((await fixture.stats()).jwksFetches).toBe(2);
    expect(gate.logs.filter((l) => l.event === "jwks_cooldown_skip")).toHaveLength(0); // remembered, not even a skip
  });

  it("the cooldown is shared across isolates through KV", async () => {
    const key = await makeKey("ES256", "k");
    const fixture = await servedWith({}, key);
    const time = clock();
    const first = makeGate(fixture, withIssuer(fixture, {}), { now: time.now });
    expect((await first.request("/items/1", { headers: bearer(await mint(key)) })).status).toBe(200);
    time.advance(31);
    await expectRejected(first, await first.request("/items/1", { headers: bearer(await mint(key, {}, { kid: "new-1" })) }), 401);
    expect((await fixture.stats()).jwksFetches).toBe(2);
    // Another isolate (fresh memory, same KV), 5 s later: it takes the set from KV and respects the cooldown.
    time.advance(5);
    const second = makeGate(fixture, withIssuer(fixture, {}), { now: time.now });
    await expectRejected(second, await second.request("/items/1", { headers: bearer(await mint(key, {}, { kid: "new-2" })) }), 401);
    expect((await fixture.stats()).jwksFetches).toBe(2);
    expect(second.logs).toContainEqual(expect.objectContaining({ event: "jwks_cooldown_skip", reason: "unknown_kid" }));
  });

  it("T-B3 a flood of new kids during another isolate's published cooldown reads that cooldown from KV once, not once per request", async () => {
    const key = await makeKey("ES256", "k");
    const fixture = await servedWith({}, key);
    const time = clock();
    const first = makeGate(fixture, withIssuer(fixture, {}), { now: time.now });
    expect((await first.request("/items/1", { headers: bearer(await mint(key)) })).status).toBe(200);
    // The second isolate loads the set now, so that it is past its own cooldown when the flood comes.
    const reads: string[] = [];
    const counted = { get: (name: string, type?: unknown) => (reads.push(name), env.PORTCULLIS_KV.get(name, type as "text")), put: (...args: Parameters<KVNamespace["put"]>) => env.PORTCULLIS_KV.put(...args) };
    const second = makeGate(fixture, withIssuer(fixture, {}), { now: time.now, env: { PORTCULLIS_KV: counted } });
    expect((await second.request("/items/1", { headers: bearer(await mint(key)) })).status).toBe(200);
    time.advance(31);
    await expectRejected(first, await first.request("/items/1", { headers: bearer(await mint(key, {}, { kid: "new-1" })) }), 401);
    time.advance(2);
    for (let i = 0; i < 50; i++) await expectRejected(second, await second.request("/items/1", { headers: bearer(await mint(key, {}, { kid: `flood-${i}` })) }), 401);
    expect(reads.filter((name) => name.startsWith("jwks-attempt:")).length).toBeLessThanOrEqual(1);
    expect((await fixture.stats()).jwksFetches).toBe(2); // the first load and the first isolate's kid-miss fetch
  });

  it("a rotation another isolate already fetched is found in KV without a fetch", async () => {
    const old = await makeKey("ES256", "old");
    const fresh = await makeKey("ES256", "fresh");
    const fixture = await servedWith({}, old);
    const time = clock();
    const a = makeGate(fixture, withIssuer(fixture, {}), { now: time.now });
    const b = makeGate(fixture, withIssuer(fixture, {}), { now: time.now });
    expect((await a.request("/items/1", { headers: bearer(await mint(old)) })).status).toBe(200);
    expect((await b.request("/items/1", { headers: bearer(await mint(old)) })).status).toBe(200);
    await fixture.serveJwks({ keys: [old.publicJwk, fresh.publicJwk] });
    time.advance(40);
    expect((await a.request("/items/1", { headers: bearer(await mint(fresh)) })).status).toBe(200);
    time.advance(2);
    expect((await b.request("/items/1", { headers: bearer(await mint(fresh)) })).status).toBe(200);
    expect((await fixture.stats()).jwksFetches).toBe(2);
  });
});

describe("discovery (RFC 8414, then OpenID Connect)", () => {
  const metadataFor = (fixture: Fixture, issuer: string) => ({ issuer, jwks_uri: fixture.jwksUri, token_endpoint: `${issuer}/token` });

  it("builds both metadata URLs per the specs", () => {
    expect(metadataUrls("https://as.example/tenant/")).toEqual([
      "https://as.example/.well-known/oauth-authorization-server/tenant",
      "https://as.example/tenant/.well-known/openid-configuration",
    ]);
    expect(metadataUrls("https://as.example")).toEqual([
      "https://as.example/.well-known/oauth-authorization-server",
      "https://as.example/.well-known/openid-configuration",
    ]);
  });

  it.each(["as", "oidc"] as const)("finds jwks_uri through %s metadata, once, and caches it", async (kind) => {
    const fixture = new Fixture();
    const key = await makeKey("ES256", "k");
    await fixture.serveJwks({ keys: [key.publicJwk] });
    const issuer = fixture.issuerBase;
    await fixture.serveMetadata({ [kind]: metadataFor(fixture, issuer) });
    const gate = makeGate(fixture, baseConfig(fixture, { issuers: [{ issuer, audiences: [AUDIENCE] }] }));
    for (let i = 0; i < 3; i++) expect((await gate.request("/items/1", { headers: bearer(await mint(key, { iss: issuer })) })).status).toBe(200);
    const stats = await fixture.stats();
    expect(stats.jwksFetches).toBe(1);
    expect(stats.metadataFetches).toBe(kind === "as" ? 1 : 2); // RFC 8414 404, then OIDC
  });

  it("refuses metadata whose issuer differs (trailing slash included): 503, no keys", async () => {
    const fixture = new Fixture();
    const key = await makeKey("ES256", "k");
    await fixture.serveJwks({ keys: [key.publicJwk] });
    const issuer = fixture.issuerBase;
    await fixture.serveMetadata({ as: metadataFor(fixture, `${issuer}/`), oidc: metadataFor(fixture, issuer) });
    const gate = makeGate(fixture, baseConfig(fixture, { issuers: [{ issuer, audiences: [AUDIENCE] }] }));
    await expectRejected(gate, await gate.request("/items/1", { headers: bearer(await mint(key, { iss: issuer })) }), 503, "temporarily_unavailable");
    expect((await fixture.stats()).jwksFetches).toBe(0);
    expect(gate.logs).toContainEqual(expect.objectContaining({ event: "jwks_fetch_failed", reason: "discovery_metadata_issuer_mismatch" }));
  });
});

describe("service binding and cron", () => {
  it("fetches through jwks_service when configured, and answers 500 when the binding is missing", async () => {
    const key = await makeKey("ES256", "k");
    const fixture = await servedWith({}, key);
    const seen: string[] = [];
    const IDP = { fetch: (url: string, init?: RequestInit) => (seen.push(url), fetch(url, init)) };
    const config = withIssuer(fixture, { jwks_service: "IDP" });
    const gate = makeGate(fixture, config, { env: { IDP } });
    expect((await gate.request("/items/1", { headers: bearer(await mint(key)) })).status).toBe(200);
    expect(seen).toEqual([fixture.jwksUri]);
    const missing = makeGate(new Fixture(), config);
    await expectRejected(missing, await missing.request("/items/1", { headers: bearer(await mint(key)) }), 500, "server_error");
  });

  it("the scheduled refresh fetches into KV, skips fresh sets, and refreshes past half-life", async () => {
    const key = await makeKey("ES256", "k");
    const fixture = await servedWith({}, key);
    const time = clock();
    const parsed = parseConfig(withIssuer(fixture, {}));
    if (!parsed.ok) throw new Error("config");
    const gate = createGate(parsed.config, { now: time.now, log: () => {} });
    const run = async () => {
      const ctx = createExecutionContext();
      const result = await gate.refreshKeys({ ...env }, (promise) => ctx.waitUntil(promise));
      await waitOnExecutionContext(ctx);
      return result[ISSUER];
    };
    expect(await run()).toBe("refreshed");
    expect(await run()).toBe("fresh");
    time.advance(301);
    expect(await run()).toBe("refreshed");
    expect((await fixture.stats()).jwksFetches).toBe(2);
    // A cold isolate afterwards verifies without any fetch: the keys were put in KV ahead of use.
    const cold = makeGate(fixture, withIssuer(fixture, {}), { now: time.now });
    expect((await cold.request("/items/1", { headers: bearer(await mint(key)) })).status).toBe(200);
    expect((await fixture.stats()).jwksFetches).toBe(2);
  });

  it("the Worker's scheduled handler refreshes the configured issuers", async () => {
    const ctx = createExecutionContext();
    await worker.scheduled(createScheduledController({ cron: "*/5 * * * *" }), { ...env }, ctx);
    await waitOnExecutionContext(ctx);
    const listed = await env.PORTCULLIS_KV.list({ prefix: "jwks:v2:" });
    expect(listed.keys.length).toBeGreaterThan(0);
  });
});
