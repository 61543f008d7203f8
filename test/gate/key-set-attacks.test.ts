import { env } from "cloudflare:test";
import { base64url } from "jose";
import { describe, expect, it } from "vitest";
import { keySetKvNames } from "../../src/validate/jwks";
import { AUDIENCE, baseConfig, bearer, expectRejected, Fixture, ISSUER, makeGate, makeKey, mint as mintNow, originSaw, signRaw, type TestKey } from "../helpers";

/**
 * Threat catalogue section B: keys and JWKS. A manual clock drives expiry and cooldowns (no real waiting);
 * tokens here live for days, so that clock steps test the key cache, not token expiry.
 */
const mint = (key: TestKey, claims: Record<string, unknown> = {}, header: Record<string, unknown> = {}) =>
  mintNow(key, { exp: Math.floor(Date.now() / 1000) + 3 * 86_400, ...claims }, header);

function clock() {
  let t = Date.now();
  return { now: () => t, advance: (seconds: number) => void (t += seconds * 1000) };
}

async function served(...keys: TestKey[]) {
  const fixture = new Fixture();
  await fixture.serveJwks({ keys: keys.map((k) => k.publicJwk) });
  return fixture;
}

const issuerConfig = (fixture: Fixture, jwks: Record<string, number> = {}) =>
  baseConfig(fixture, { issuers: [{ issuer: ISSUER, audiences: [AUDIENCE], jwks_uri: fixture.jwksUri, jwks }] });

describe("B: keys and JWKS", () => {
  it("T-B1 a token claiming issuer A but signed with issuer B's key and kid is refused: keys are never pooled", async () => {
    const keyA = await makeKey("ES256", "a-1");
    const keyB = await makeKey("ES256", "b-1");
    const fixtureA = await served(keyA);
    const fixtureB = await served(keyB);
    const config = baseConfig(fixtureA, {
      issuers: [
        { issuer: ISSUER, audiences: [AUDIENCE], jwks_uri: fixtureA.jwksUri },
        { issuer: "https://issuer-b.test/", audiences: [AUDIENCE], jwks_uri: fixtureB.jwksUri },
      ],
    });
    const gate = makeGate(fixtureA, config);
    // B's own token works, and has loaded B's keys into this gate.
    expect((await gate.request("/items/1", { headers: bearer(await mint(keyB, { iss: "https://issuer-b.test/" })) })).status).toBe(200);
    await fixtureA.originRequests().then(() => undefined);
    const crossed = await mint(keyB, { iss: ISSUER });
    const gateA = makeGate(new Fixture(), config);
    await expectRejected(gateA, await gateA.request("/items/1", { headers: bearer(crossed) }), 401, "invalid_token");
  });

  it("T-B2 a rotated-in kid causes exactly one refetch (after the cooldown), then is accepted", async () => {
    const old = await makeKey("ES256", "old");
    const fresh = await makeKey("ES256", "new");
    const fixture = await served(old);
    const time = clock();
    const gate = makeGate(fixture, issuerConfig(fixture), { now: time.now });
    expect((await gate.request("/items/1", { headers: bearer(await mint(old)) })).status).toBe(200);
    await fixture.serveJwks({ keys: [old.publicJwk, fresh.publicJwk] });
    time.advance(31);
    expect((await gate.request("/items/1", { headers: bearer(await mint(fresh)) })).status).toBe(200);
    expect((await gate.request("/items/1", { headers: bearer(await mint(fresh)) })).status).toBe(200);
    expect((await gate.request("/items/1", { headers: bearer(await mint(old)) })).status).toBe(200);
    expect((await fixture.stats()).jwksFetches).toBe(2);
  });

  it("T-B3 10,000 tokens with random kids cause at most one JWKS fetch per cooldown; good keys stay", async () => {
    const good = await makeKey("ES256", "good");
    const fixture = await served(good);
    const time = clock();
    const gate = makeGate(fixture, issuerConfig(fixture), { now: time.now, log: () => {} });
    const attacker = await makeKey("ES256");
    const template = await mint(attacker, {}, { kid: "RANDOM-KID-PLACEHOLDER" });
    const [h, p, s] = template.split(".") as [string, string, string];
    const header = JSON.parse(new TextDecoder().decode(base64url.decode(h))) as Record<string, unknown>;
    let statuses = new Set<number>();
    for (let i = 0; i < 10_000; i++) {
      if (i === 5_000) time.advance(31); // a second cooldown window opens halfway
      const forged = `${base64url.encode(JSON.stringify({ ...header, kid: crypto.randomUUID() }))}.${p}.${s}`;
      const response = await gate.request("/items/1", { headers: bearer(forged) });
      statuses.add(response.status);
      await response.arrayBuffer();
    }
    expect([...statuses]).toEqual([401]);
    // One load, then one refetch in the second cooldown window (the first window starts at the load).
    expect((await fixture.stats()).jwksFetches).toBe(2);
    statuses = new Set();
    expect((await gate.request("/items/1", { headers: bearer(await mint(good)) })).status).toBe(200);
    expect((await fixture.originRequests()).length).toBe(1);
  }, 120_000);

  it.each([
    ["empty key set", { keys: [] }],
    ["keys not an array", { keys: {} }],
    ["only unparseable keys", { keys: [{ kty: "EC", crv: "P-256", x: "not-base64!", y: "??" }, "junk", null] }],
    ["only private keys", { keys: [{ kty: "EC", crv: "P-256", x: "AA", y: "AA", d: "AA" }] }],
  ])("T-B4 a refresh returning %s keeps the last good set and the cooldown still applies", async (_label, bad) => {
    const good = await makeKey("ES256", "good");
    const fixture = await served(good);
    const time = clock();
    const gate = makeGate(fixture, issuerConfig(fixture), { now: time.now });
    expect((await gate.request("/items/1", { headers: bearer(await mint(good)) })).status).toBe(200);
    await fixture.serveJwks(bad);
    time.advance(601); // past max_age: the set must be refreshed
    expect((await gate.request("/items/1", { headers: bearer(await mint(good)) })).status).toBe(200);
    expect((await gate.request("/items/1", { headers: bearer(await mint(good, {}, { kid: "unknown" })) })).status).toBe(401);
    expect((await fixture.stats()).jwksFetches).toBe(2);
    expect(gate.logs).toContainEqual(expect.objectContaining({ event: "jwks_fetch_failed" }));
  });

  it("T-B4 a first fetch with no usable key fails closed with 503, and the cooldown applies", async () => {
    const fixture = new Fixture();
    await fixture.serveJwks({ keys: [] });
    const gate = makeGate(fixture, issuerConfig(fixture));
    const key = await makeKey("ES256");
    for (let i = 0; i < 3; i++) {
      const response = await gate.request("/items/1", { headers: bearer(await mint(key)) });
      await expectRejected(gate, response, 503, "temporarily_unavailable");
      expect(Number(response.headers.get("retry-after"))).toBeGreaterThan(0);
    }
    expect((await fixture.stats()).jwksFetches).toBe(1);
  });

  it.each([
    ["302 redirect", { status: 302, body: "", headers: { location: "https://attacker.example/jwks" } }],
    ["404", { status: 404, body: "not found", headers: {} }],
    ["HTML", { status: 200, body: "<html>login</html>", headers: { "content-type": "text/html" } }],
    ["invalid JSON", { status: 200, body: '{"keys":[', headers: { "content-type": "application/json" } }],
    ["huge body", { status: 200, body: JSON.stringify({ keys: [], pad: "x".repeat(300_000) }), headers: { "content-type": "application/json" } }],
  ])("T-B5 JWKS answering %s: last good set served within max-stale, else 503 with Retry-After", async (_label, failure) => {
    const good = await makeKey("ES256", "good");
    const fixture = await served(good);
    const time = clock();
    const gate = makeGate(fixture, issuerConfig(fixture), { now: time.now });
    expect((await gate.request("/items/1", { headers: bearer(await mint(good)) })).status).toBe(200);
    await fixture.serveJwks(undefined, failure);
    time.advance(601);
    expect((await gate.request("/items/1", { headers: bearer(await mint(good)) })).status).toBe(200);
    // A cold gate whose issuer never answered well (own JWKS URL, so no KV copy): 503, never 200.
    const broken = new Fixture();
    await broken.serveJwks(undefined, failure);
    const cold = makeGate(broken, issuerConfig(broken));
    const response = await cold.request("/items/1", { headers: bearer(await mint(good)) });
    await expectRejected(cold, response, 503, "temporarily_unavailable");
    expect(response.headers.get("retry-after")).toMatch(/^\d+$/);
    expect(response.headers.get("www-authenticate")).toBeNull();
  });

  it("T-B5 past max-stale the last good set is no longer served", async () => {
    const good = await makeKey("ES256", "good");
    const fixture = await served(good);
    const time = clock();
    const gate = makeGate(fixture, issuerConfig(fixture), { now: time.now });
    expect((await gate.request("/items/1", { headers: bearer(await mint(good)) })).status).toBe(200);
    await fixture.serveJwks(undefined, { status: 500, body: "" });
    time.advance(600 + 24 * 3600 + 1);
    const token = await mint(good);
    await expectRejected(gate, await gate.request("/items/1", { headers: bearer(token) }), 503, "temporarily_unavailable");
  });

  it("T-B6 a hanging JWKS fetch is aborted by the timeout and the request answered within the budget", async () => {
    const fixture = new Fixture();
    const key = await makeKey("ES256");
    await fixture.serveJwks({ keys: [key.publicJwk] }, { delayMs: 5_000 });
    const gate = makeGate(fixture, issuerConfig(fixture, { timeout_ms: 300 }));
    const started = Date.now();
    const response = await gate.request("/items/1", { headers: bearer(await mint(key)) });
    await expectRejected(gate, response, 503, "temporarily_unavailable");
    expect(Date.now() - started).toBeLessThan(2_000);
    expect(gate.logs).toContainEqual(expect.objectContaining({ event: "jwks_fetch_failed" }));
  });

  it("T-B7 a token without kid is accepted only when exactly one key fits its algorithm", async () => {
    const ec1 = await makeKey("ES256", "ec-1");
    const ec2 = await makeKey("ES256", "ec-2");
    const rsa = await makeKey("RS256", "rsa-1");
    const ambiguous = await served(ec1, ec2, rsa);
    const gate = makeGate(ambiguous, issuerConfig(ambiguous));
    await expectRejected(gate, await gate.request("/items/1", { headers: bearer(await mint(ec1, {}, { kid: undefined })) }), 401, "invalid_token");
    expect(gate.logs.at(-1)?.reason).toBe("no_single_key");
    // Exactly one ES256 key (the RSA key does not fit ES256): accepted.
    const single = await served(ec1, rsa);
    const gate2 = makeGate(single, issuerConfig(single));
    expect((await gate2.request("/items/1", { headers: bearer(await mint(ec1, {}, { kid: undefined })) })).status).toBe(200);
  });

  it("T-B8 weak RSA (1024-bit, e = 1), use: enc and key_ops without verify make a key unusable", async () => {
    const good = await makeKey("ES256", "good");
    const small = (await crypto.subtle.generateKey({ name: "RSASSA-PKCS1-v1_5", modulusLength: 1024, publicExponent: new Uint8Array([1, 0, 1]), hash: "SHA-256" }, true, ["sign", "verify"])) as CryptoKeyPair;
    const smallJwk = { ...((await crypto.subtle.exportKey("jwk", small.publicKey)) as JsonWebKey), kid: "small", alg: "RS256" };
    const enc = await makeKey("ES256", "enc");
    const ops = await makeKey("ES256", "ops");
    const fixture = new Fixture();
    // e = 1: RSA "verification" becomes identity, so the encoded message itself is a valid signature.
    const n = new Uint8Array(256).fill(0xff);
    const eOne = { kty: "RSA", kid: "e-one", alg: "RS256", n: base64url.encode(n), e: "AQ" };
    await fixture.serveJwks({
      keys: [good.publicJwk, smallJwk, { ...enc.publicJwk, use: "enc" }, { ...ops.publicJwk, key_ops: ["sign"] }, eOne],
    });
    const gate = makeGate(fixture, issuerConfig(fixture));
    const smallKey = { alg: "RS256" as const, kid: "small", privateKey: small.privateKey, publicJwk: smallJwk };
    const now = Math.floor(Date.now() / 1000);
    const smallToken = await signRaw(smallKey, { alg: "RS256", typ: "at+jwt", kid: "small" }, { iss: ISSUER, aud: AUDIENCE, sub: "u", exp: now + 300, scope: "items:read" });
    for (const token of [smallToken, await mint(enc), await mint(ops)]) {
      await expectRejected(gate, await gate.request("/items/1", { headers: bearer(token) }), 401, "invalid_token");
    }
    const forged = await forgeWithExponentOne();
    await expectRejected(gate, await gate.request("/items/1", { headers: bearer(forged) }), 401, "invalid_token");
    const skipped = gate.logs.filter((l) => l.event === "jwks_key_skipped").map((l) => l.reason);
    expect(skipped.sort()).toEqual(["no_verify_op", "not_for_signatures", "weak_rsa", "weak_rsa"]);
    expect((await gate.request("/items/1", { headers: bearer(await mint(good)) })).status).toBe(200);
  });

  it("T-B9 a key removed from the JWKS is rejected once the cached set is past max-age", async () => {
    const leaving = await makeKey("ES256", "leaving");
    const staying = await makeKey("ES256", "staying");
    const fixture = await served(leaving, staying);
    const time = clock();
    const gate = makeGate(fixture, issuerConfig(fixture, { default_age: 120, min_age: 60, refresh_ahead: 30 }), { now: time.now });
    const token = await mint(leaving);
    expect((await gate.request("/items/1", { headers: bearer(token) })).status).toBe(200);
    await fixture.serveJwks({ keys: [staying.publicJwk] });
    time.advance(60);
    expect((await gate.request("/items/1", { headers: bearer(token) })).status).toBe(200); // still within max-age
    time.advance(61);
    await expectRejected(gate, await gate.request("/items/1", { headers: bearer(token) }), 401, "invalid_token");
    expect((await gate.request("/items/1", { headers: bearer(await mint(staying)) })).status).toBe(200);
  });

  it.each([
    ["malformed", (_good: TestKey) => "{not json"],
    ["wrong shape", (good: TestKey) => JSON.stringify({ v: 2, keys: "nope", fetched_at: Date.now(), expires_at: Date.now() + 600_000, jwks_uri: good.kid })],
    ["old format", (good: TestKey) => JSON.stringify({ v: 1, keys: [good.publicJwk], fetched_at: Date.now(), expires_at: Date.now() + 600_000 })],
    ["expired", (good: TestKey) => JSON.stringify({ v: 2, keys: [good.publicJwk], fetched_at: 1, expires_at: 2, jwks_uri: "x", jwks_uri_expires_at: null })],
  ])("T-B10 a %s KV-cached JWKS is ignored and refetched", async (_label, stored) => {
    const good = await makeKey("ES256", "good");
    const fixture = await served(good);
    const name = (await keySetKvNames({ issuer: ISSUER, jwks_uri: fixture.jwksUri })).set;
    await env.PORTCULLIS_KV.put(name, stored(good));
    const gate = makeGate(fixture, issuerConfig(fixture));
    expect((await gate.request("/items/1", { headers: bearer(await mint(good)) })).status).toBe(200);
    expect((await fixture.stats()).jwksFetches).toBe(1);
    const rewritten = await env.PORTCULLIS_KV.get<{ v: number; keys: unknown[] }>(name, "json");
    expect(rewritten?.keys).toHaveLength(1);
  });

  it("T-B10 a KV-cached JWKS claiming to be fetched in the future is ignored and refetched, not pinned", async () => {
    const good = await makeKey("ES256", "good");
    const planted = await makeKey("ES256", "good");
    const fixture = await served(good);
    const name = (await keySetKvNames({ issuer: ISSUER, jwks_uri: fixture.jwksUri })).set;
    const later = Date.now() + 10 * 365 * 86_400_000;
    await env.PORTCULLIS_KV.put(name, JSON.stringify({ v: 2, keys: [planted.publicJwk], fetched_at: later, expires_at: later, jwks_uri: fixture.jwksUri, jwks_uri_expires_at: null }));
    const gate = makeGate(fixture, issuerConfig(fixture));
    expect((await gate.request("/items/1", { headers: bearer(await mint(good)) })).status).toBe(200);
    await expectRejected(gate, await gate.request("/items/1", { headers: bearer(await mint(planted)) }), 401, "invalid_token");
    expect((await fixture.stats()).jwksFetches).toBe(1);
  });

  it("the origin sees the verified identity after a JWKS load", async () => {
    const good = await makeKey("ES256", "good");
    const fixture = await served(good);
    const gate = makeGate(fixture, issuerConfig(fixture));
    const seen = await originSaw(await gate.request("/items/1", { headers: bearer(await mint(good)) }));
    expect(seen.headers["x-auth-sub"]).toBe("user-123");
  });
});

/** An RS256 "signature" for a key with e = 1: the PKCS#1 v1.5 encoded digest itself. */
async function forgeWithExponentOne(): Promise<string> {
  const encode = (value: unknown) => base64url.encode(JSON.stringify(value));
  const now = Math.floor(Date.now() / 1000);
  const input = `${encode({ alg: "RS256", typ: "at+jwt", kid: "e-one" })}.${encode({ iss: ISSUER, aud: AUDIENCE, sub: "forged", exp: now + 300, scope: "items:read" })}`;
  const digest = new Uint8Array(await crypto.subtle.digest("SHA-256", new TextEncoder().encode(input)));
  const prefix = [0x30, 0x31, 0x30, 0x0d, 0x06, 0x09, 0x60, 0x86, 0x48, 0x01, 0x65, 0x03, 0x04, 0x02, 0x01, 0x05, 0x00, 0x04, 0x20];
  const em = new Uint8Array(256);
  em.set([0x00, 0x01]);
  em.fill(0xff, 2, 256 - prefix.length - digest.length - 1);
  em.set([0x00, ...prefix, ...digest], 256 - prefix.length - digest.length - 1);
  return `${input}.${base64url.encode(em)}`;
}
