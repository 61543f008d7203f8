import { env } from "cloudflare:test";
import { base64url, exportJWK, SignJWT, type JWK } from "jose";
import { describe, expect, it } from "vitest";
import { sha256Hex } from "../../src/lib/digest";
import { keySetKvNames } from "../../src/validate/jwks";
import { AUDIENCE, baseConfig, bearer, expectRejected, Fixture, ISSUER, makeGate, makeKey, mint as mintNow, signRaw, type Gate, type TestKey } from "../helpers";

/**
 * Threat catalogue section I, keys: rotated-in kids during a cooldown (I19), duplicate and conflicting
 * keys (I18), HMAC secret rotation and the verified-token cache (I13), one KV namespace shared by two
 * configurations (I3, key sets and verified tokens). A manual clock drives every cooldown; tokens live for
 * days so that only the key cache is under test.
 */

const mint = (key: TestKey, claims: Record<string, unknown> = {}, header: Record<string, unknown> = {}) =>
  mintNow(key, { exp: Math.floor(Date.now() / 1000) + 3 * 86_400, ...claims }, header);

function clock() {
  const start = Date.now();
  let t = start;
  return { now: () => t, advance: (seconds: number) => void (t += Math.round(seconds * 1000)), at: (seconds: number) => void (t = start + Math.round(seconds * 1000)) };
}

async function served(...keys: (TestKey | JWK)[]) {
  const fixture = new Fixture();
  await fixture.serveJwks({ keys: keys.map((k) => ("publicJwk" in k ? k.publicJwk : k)) });
  return fixture;
}

const issuerConfig = (fixture: Fixture, issuer: Record<string, unknown> = {}) =>
  baseConfig(fixture, { issuers: [{ issuer: ISSUER, audiences: [AUDIENCE], jwks_uri: fixture.jwksUri, algorithms: ["RS256", "PS256", "ES256"], ...issuer }] });

const decisions = (gate: Gate) => gate.logs.filter((line) => line.event === "decision").map((line) => line.reason ?? line.via);
const fetches = async (fixture: Fixture) => (await fixture.stats()).jwksFetches;
const withoutKid = ({ kid: _kid, ...jwk }: JWK) => jwk;

describe("T-I19 a rotated-in kid first seen during a cooldown", () => {
  it.each([1, 29, 29.9])("T-I19 first seen %s s after a fetch: refused until +30 s, then accepted with exactly one fetch", async (firstSeen) => {
    const old = await makeKey("ES256", "old");
    const fresh = await makeKey("ES256", "fresh");
    const fixture = await served(old);
    const time = clock();
    const gate = makeGate(fixture, issuerConfig(fixture), { now: time.now });
    expect((await gate.request("/items/1", { headers: bearer(await mint(old)) })).status).toBe(200); // fetch at +0
    await fixture.serveJwks({ keys: [old.publicJwk, fresh.publicJwk] });
    const token = await mint(fresh);
    time.at(firstSeen);
    await expectRejected(gate, await gate.request("/items/1", { headers: bearer(token) }), 401, "invalid_token");
    time.at(29.95);
    await expectRejected(gate, await gate.request("/items/1", { headers: bearer(token) }), 401, "invalid_token");
    expect(await fetches(fixture)).toBe(1);
    time.at(30);
    expect((await gate.request("/items/1", { headers: bearer(token) })).status).toBe(200);
    expect((await gate.request("/items/1", { headers: bearer(token) })).status).toBe(200);
    expect(await fetches(fixture)).toBe(2);
    expect(decisions(gate)).toEqual(["jwt", "kid_unknown", "kid_unknown", "jwt", "jwt_cached"]);
  });

  it.each([1, 29.9])("T-I19 after a kid-miss fetch (its cooldown also in KV), a kid first seen %s s later is accepted at +30 s", async (firstSeen) => {
    const old = await makeKey("ES256", "old");
    const fresh = await makeKey("ES256", "fresh");
    const fixture = await served(old);
    const time = clock();
    const gate = makeGate(fixture, issuerConfig(fixture), { now: time.now });
    expect((await gate.request("/items/1", { headers: bearer(await mint(old)) })).status).toBe(200);
    time.at(40);
    await expectRejected(gate, await gate.request("/items/1", { headers: bearer(await mint(old, {}, { kid: "ghost" })) }), 401); // fetch at +40
    await fixture.serveJwks({ keys: [old.publicJwk, fresh.publicJwk] });
    const token = await mint(fresh);
    time.at(40 + firstSeen);
    await expectRejected(gate, await gate.request("/items/1", { headers: bearer(token) }), 401, "invalid_token");
    time.at(69.9);
    await expectRejected(gate, await gate.request("/items/1", { headers: bearer(token) }), 401, "invalid_token");
    expect(await fetches(fixture)).toBe(2);
    time.at(70);
    expect((await gate.request("/items/1", { headers: bearer(token) })).status).toBe(200);
    expect(await fetches(fixture)).toBe(3);
  });

  it.each([62, 100, 120])("T-I19 during failure backoff the bound is the backoff: a kid first seen at +%s s is refused until the attempt at +121 s, accepted at it", async (firstSeen) => {
    const old = await makeKey("ES256", "old");
    const fresh = await makeKey("ES256", "fresh");
    const fixture = await served(old);
    const time = clock();
    const gate = makeGate(fixture, issuerConfig(fixture), { now: time.now });
    expect((await gate.request("/items/1", { headers: bearer(await mint(old)) })).status).toBe(200);
    await fixture.serveJwks(undefined, { status: 503, body: "down" });
    time.at(31);
    await expectRejected(gate, await gate.request("/items/1", { headers: bearer(await mint(old, {}, { kid: "ghost-1" })) }), 401); // fails: next at +61
    time.at(61);
    await expectRejected(gate, await gate.request("/items/1", { headers: bearer(await mint(old, {}, { kid: "ghost-2" })) }), 401); // fails: next at +121
    expect(await fetches(fixture)).toBe(3);
    await fixture.serveJwks({ keys: [old.publicJwk, fresh.publicJwk] });
    const token = await mint(fresh);
    for (const second of [firstSeen, 120.5, 120.95]) {
      time.at(second);
      await expectRejected(gate, await gate.request("/items/1", { headers: bearer(token) }), 401, "invalid_token");
    }
    expect(await fetches(fixture)).toBe(3); // the backoff holds: no attempt before +121
    time.at(121);
    expect((await gate.request("/items/1", { headers: bearer(token) })).status).toBe(200);
    expect(await fetches(fixture)).toBe(4);
    expect((await gate.request("/items/1", { headers: bearer(await mint(old)) })).status).toBe(200); // served stale throughout
  });

  it("T-I19 a cooldown published by another isolate bounds the wait at that attempt + refetch_cooldown", async () => {
    const old = await makeKey("ES256", "old");
    const fresh = await makeKey("ES256", "fresh");
    const fixture = await served(old);
    const time = clock();
    const a = makeGate(fixture, issuerConfig(fixture), { now: time.now });
    const b = makeGate(fixture, issuerConfig(fixture), { now: time.now });
    expect((await a.request("/items/1", { headers: bearer(await mint(old)) })).status).toBe(200);
    expect((await b.request("/items/1", { headers: bearer(await mint(old)) })).status).toBe(200); // from KV
    time.at(31);
    await expectRejected(a, await a.request("/items/1", { headers: bearer(await mint(old, {}, { kid: "ghost" })) }), 401); // A fetches at +31
    await fixture.serveJwks({ keys: [old.publicJwk, fresh.publicJwk] });
    const token = await mint(fresh);
    time.at(60.9); // B has never fetched: only A's published attempt holds it back
    await expectRejected(b, await b.request("/items/1", { headers: bearer(token) }), 401, "invalid_token");
    time.at(60.95);
    await expectRejected(b, await b.request("/items/1", { headers: bearer(token) }), 401, "invalid_token");
    expect(await fetches(fixture)).toBe(2);
    time.at(61);
    expect((await b.request("/items/1", { headers: bearer(token) })).status).toBe(200);
    expect(await fetches(fixture)).toBe(3);
  });

  it("T-I19 random kids spread over every part of the window, across two isolates, still cost one fetch per cooldown", async () => {
    const good = await makeKey("ES256", "good");
    const fixture = await served(good);
    const time = clock();
    const isolates = [makeGate(fixture, issuerConfig(fixture), { now: time.now, log: () => {} }), makeGate(fixture, issuerConfig(fixture), { now: time.now, log: () => {} })];
    const attacker = await makeKey("ES256");
    const template = await mint(attacker, {}, { kid: "PLACEHOLDER" });
    const [h, p, s] = template.split(".") as [string, string, string];
    const header = JSON.parse(new TextDecoder().decode(base64url.decode(h))) as Record<string, unknown>;
    expect((await isolates[0]!.request("/items/1", { headers: bearer(await mint(good)) })).status).toBe(200);
    const windows = 4;
    for (let step = 0; step < windows * 120; step++) {
      time.at(30 + step * 0.25); // four windows of 30 s, a new random kid every 250 ms
      const forged = `${base64url.encode(JSON.stringify({ ...header, kid: crypto.randomUUID() }))}.${p}.${s}`;
      const gate = isolates[step % 2]!;
      const response = await gate.request("/items/1", { headers: bearer(forged) });
      expect(response.status).toBe(401);
      await response.arrayBuffer();
    }
    expect(await fetches(fixture)).toBe(1 + windows);
    for (const gate of isolates) expect((await gate.request("/items/1", { headers: bearer(await mint(good)) })).status).toBe(200);
    expect(await fixture.originRequests()).toHaveLength(3); // the three good requests, none of the flood
  }, 60_000);
});

describe("T-I18 duplicate and conflicting keys", () => {
  const conflictLines = (gate: Gate) => gate.logs.filter((line) => line.event === "jwks_kid_conflict");

  it.each([
    ["twice with the same kid", (k: TestKey) => [k.publicJwk, k.publicJwk], {}],
    ["twice with the same kid and other members (x5t, key_ops)", (k: TestKey) => [k.publicJwk, { ...k.publicJwk, key_ops: ["verify"], x5t: "dGVzdA" }], {}],
    ["with and without its kid", (k: TestKey) => [k.publicJwk, withoutKid(k.publicJwk)], {}],
    ["without and with its kid", (k: TestKey) => [withoutKid(k.publicJwk), k.publicJwk], {}],
    ["with and without kid, token without kid", (k: TestKey) => [k.publicJwk, withoutKid(k.publicJwk)], { kid: undefined }],
    ["three times, token without kid", (k: TestKey) => [k.publicJwk, k.publicJwk, withoutKid(k.publicJwk)], { kid: undefined }],
    ["with and without its alg (two entries, one key)", (k: TestKey) => [k.publicJwk, { ...k.publicJwk, alg: undefined }], {}],
  ])("T-I18 a JWKS listing the key %s: deduplicated, tokens verify, one fetch, no conflict", async (label, keys, header) => {
    for (const alg of ["ES256", "RS256"] as const) {
      const key = await makeKey(alg, "k1");
      const fixture = await served(...keys(key));
      const gate = makeGate(fixture, issuerConfig(fixture));
      for (let i = 0; i < 2; i++) expect((await gate.request("/items/1", { headers: bearer(await mint(key, {}, header)) })).status).toBe(200);
      expect(await fetches(fixture)).toBe(1);
      expect(conflictLines(gate)).toHaveLength(0);
      const stored = await env.PORTCULLIS_KV.get<{ keys: JWK[] }>((await keySetKvNames({ issuer: ISSUER, jwks_uri: fixture.jwksUri })).set, "json");
      expect(stored?.keys).toHaveLength(label.includes("two entries") ? 2 : 1);
    }
  });

  it.each([
    ["two EC keys", "ES256", "ES256", {}],
    ["two RSA keys", "RS256", "RS256", {}],
    ["an RSA key for RS256 and one without alg", "RS256", "RS256", { withoutAlg: true }],
  ] as const)("T-I18 %s under one kid: 401 kid_conflict for either, one jwks_kid_conflict line, no key material logged", async (_label, algA, algB, options) => {
    const a = await makeKey(algA, "shared");
    const b = await makeKey(algB, "shared");
    const other = await makeKey("ES256", "other");
    const bJwk = "withoutAlg" in options ? { ...b.publicJwk, alg: undefined } : b.publicJwk;
    const fixture = await served(a.publicJwk, bJwk, other.publicJwk);
    const gate = makeGate(fixture, issuerConfig(fixture));
    for (const signer of [a, b, a]) {
      await expectRejected(gate, await gate.request("/items/1", { headers: bearer(await mint(signer)) }), 401, "invalid_token");
    }
    expect((await gate.request("/items/1", { headers: bearer(await mint(other)) })).status).toBe(200); // other kids unaffected
    expect(decisions(gate)).toEqual(["kid_conflict", "kid_conflict", "kid_conflict", "jwt"]);
    expect(conflictLines(gate)).toEqual([{ event: "jwks_kid_conflict", issuer: ISSUER, kid: "shared" }]);
    expect(await fetches(fixture)).toBe(1); // a conflict is not an unknown kid: no refetch
    const logged = JSON.stringify(gate.logs);
    for (const member of [a.publicJwk.x ?? a.publicJwk.n, b.publicJwk.x ?? b.publicJwk.n]) expect(logged).not.toContain(member!.slice(0, 16));
  });

  it("T-I18 a conflicting kid that is not short and plain is logged as (unprintable)", async () => {
    const kid = "shared kid with spaces";
    const a = await makeKey("ES256", kid);
    const b = await makeKey("ES256", kid);
    const fixture = await served(a, b);
    const gate = makeGate(fixture, issuerConfig(fixture));
    await expectRejected(gate, await gate.request("/items/1", { headers: bearer(await mint(a)) }), 401, "invalid_token");
    expect(conflictLines(gate)).toEqual([{ event: "jwks_kid_conflict", issuer: ISSUER, kid: "(unprintable)" }]);
  });

  it("T-I18 one kid on keys that never fit the same algorithm (RSA + EC; RSA for PS256 + RSA for RS256) is not a conflict", async () => {
    const rsa = await makeKey("RS256", "shared");
    const ec = await makeKey("ES256", "shared");
    const ps = await makeKey("PS256", "shared");
    for (const [first, second] of [[rsa, ec], [ps, rsa]] as const) {
      const fixture = await served(first, second);
      const gate = makeGate(fixture, issuerConfig(fixture));
      for (const signer of [first, second]) expect((await gate.request("/items/1", { headers: bearer(await mint(signer)) })).status).toBe(200);
      expect(conflictLines(gate)).toHaveLength(0);
    }
  });

  it("T-I18 a conflict is only one for the issuer's algorithms: two RSA keys under one kid, RS256 not allowed, ES256 token", async () => {
    const a = await makeKey("RS256", "shared");
    const b = await makeKey("RS256", "shared");
    const ec = await makeKey("ES256", "ec");
    const fixture = await served(a, b, ec);
    const gate = makeGate(fixture, issuerConfig(fixture, { algorithms: ["ES256"] }));
    expect((await gate.request("/items/1", { headers: bearer(await mint(ec)) })).status).toBe(200);
    expect(conflictLines(gate)).toHaveLength(0);
    await expectRejected(gate, await gate.request("/items/1", { headers: bearer(await mint(a)) }), 401, "invalid_token");
    expect(decisions(gate)).toEqual(["jwt", "alg_not_allowed"]);
  });

  it("T-I18 a KV-stored set is deduplicated and checked for conflicts like a fetched one", async () => {
    const key = await makeKey("ES256", "k1");
    const a = await makeKey("ES256", "shared");
    const b = await makeKey("ES256", "shared");
    const fixture = await served(key);
    const time = clock();
    const stored = { v: 2, keys: [key.publicJwk, key.publicJwk, withoutKid(key.publicJwk), a.publicJwk, b.publicJwk], fetched_at: time.now(), expires_at: time.now() + 600_000, jwks_uri: fixture.jwksUri, jwks_uri_expires_at: null };
    await env.PORTCULLIS_KV.put((await keySetKvNames({ issuer: ISSUER, jwks_uri: fixture.jwksUri })).set, JSON.stringify(stored));
    const gate = makeGate(fixture, issuerConfig(fixture), { now: time.now });
    expect((await gate.request("/items/1", { headers: bearer(await mint(key)) })).status).toBe(200);
    await expectRejected(gate, await gate.request("/items/1", { headers: bearer(await mint(key, {}, { kid: undefined })) }), 401, "invalid_token"); // a and b fit too
    await expectRejected(gate, await gate.request("/items/1", { headers: bearer(await mint(b)) }), 401, "invalid_token");
    expect(decisions(gate)).toEqual(["jwt", "no_single_key", "kid_conflict"]);
    expect(conflictLines(gate)).toHaveLength(1);
    expect(await fetches(fixture)).toBe(0);
  });

  it("T-I18 static keys: the same key twice verifies; two keys under one kid refuse with kid_conflict", async () => {
    const key = await makeKey("ES256", "k1");
    const a = await makeKey("ES256", "shared");
    const b = await makeKey("ES256", "shared");
    const fixture = new Fixture();
    const config = baseConfig(fixture, { issuers: [{ issuer: ISSUER, audiences: [AUDIENCE], keys: [key.publicJwk, key.publicJwk, withoutKid(key.publicJwk), a.publicJwk, b.publicJwk] as { kty: string }[], algorithms: ["ES256"] }] });
    const gate = makeGate(fixture, config);
    expect((await gate.request("/items/1", { headers: bearer(await mint(key)) })).status).toBe(200);
    await expectRejected(gate, await gate.request("/items/1", { headers: bearer(await mint(a)) }), 401, "invalid_token");
    expect(decisions(gate)).toEqual(["jwt", "kid_conflict"]);
    expect(conflictLines(gate)).toEqual([{ event: "jwks_kid_conflict", issuer: ISSUER, kid: "shared" }]);
  });
});

describe("T-I13 HMAC secret rotation and the verified-token cache", () => {
  const SECRET_A = "secret-A-".padEnd(40, "a");
  const SECRET_B = "secret-B-".padEnd(40, "b");

  const signHs = (secret: string, claims: Record<string, unknown> = {}) => {
    const now = Math.floor(Date.now() / 1000);
    return new SignJWT({ iss: ISSUER, aud: AUDIENCE, sub: "user-123", scope: "items:read", iat: now, exp: now + 3600, ...claims })
      .setProtectedHeader({ alg: "HS256", typ: "at+jwt" })
      .sign(new TextEncoder().encode(secret));
  };

  function hmacGate() {
    const fixture = new Fixture();
    const secrets: Record<string, unknown> = { HS_SECRET: SECRET_A };
    const config = baseConfig(fixture, { issuers: [{ issuer: ISSUER, audiences: [AUDIENCE], jwks_uri: fixture.jwksUri, algorithms: ["HS256"], hmac_secret: "HS_SECRET" }] });
    return { gate: makeGate(fixture, config, { env: secrets }), secrets };
  }

  it("T-I13 a token cached under secret A is refused once the secret is B; B's tokens work; rolling back restores A", async () => {
    const { gate, secrets } = hmacGate();
    const tokenA = await signHs(SECRET_A);
    const tokenB = await signHs(SECRET_B);
    for (let i = 0; i < 2; i++) expect((await gate.request("/items/1", { headers: bearer(tokenA) })).status).toBe(200);
    secrets.HS_SECRET = SECRET_B;
    await expectRejected(gate, await gate.request("/items/1", { headers: bearer(tokenA) }), 401, "invalid_token");
    await expectRejected(gate, await gate.request("/items/1", { headers: bearer(tokenA) }), 401, "invalid_token");
    for (let i = 0; i < 2; i++) expect((await gate.request("/items/1", { headers: bearer(tokenB) })).status).toBe(200);
    secrets.HS_SECRET = SECRET_A;
    await expectRejected(gate, await gate.request("/items/1", { headers: bearer(tokenB) }), 401, "invalid_token");
    expect((await gate.request("/items/1", { headers: bearer(tokenA) })).status).toBe(200);
    expect(decisions(gate)).toEqual(["jwt", "jwt_cached", "signature_invalid", "signature_invalid", "jwt", "jwt_cached", "signature_invalid", "jwt_cached"]);
  });

  it("T-I13 with the secret unchanged, hits skip verification; a removed or short secret is never served from the cache", async () => {
    for (const replacement of [undefined, "too-short"]) {
      const { gate, secrets } = hmacGate();
      const token = await signHs(SECRET_A);
      for (let i = 0; i < 3; i++) expect((await gate.request("/items/1", { headers: bearer(token) })).status).toBe(200);
      secrets.HS_SECRET = replacement;
      await expectRejected(gate, await gate.request("/items/1", { headers: bearer(token) }), 500, "server_error");
      expect(decisions(gate)).toEqual(["jwt", "jwt_cached", "jwt_cached", "hmac_secret_unusable"]);
    }
  });

  it("T-I13 neither secret nor its SHA-256 appears in any log line", async () => {
    const { gate, secrets } = hmacGate();
    const tokenA = await signHs(SECRET_A);
    await gate.request("/items/1", { headers: bearer(tokenA) });
    await gate.request("/items/1", { headers: bearer(tokenA) });
    secrets.HS_SECRET = SECRET_B;
    await gate.request("/items/1", { headers: bearer(tokenA) });
    await gate.request("/items/1", { headers: bearer(await signHs(SECRET_B)) });
    const logged = JSON.stringify(gate.logs);
    for (const secret of [SECRET_A, SECRET_B]) {
      const hex = await sha256Hex(secret);
      const bytes = new Uint8Array(hex.match(/../g)!.map((byte) => parseInt(byte, 16)));
      for (const form of [secret, hex, base64url.encode(bytes), btoa(String.fromCharCode(...bytes))]) expect(logged).not.toContain(form.slice(0, 20));
    }
  });
});

describe("T-I3 one KV namespace, two configurations", () => {
  it("T-I3 a set fetched through a jwks_service binding is never used by a configuration fetching the public URL, and back", async () => {
    const publicKey = await makeKey("ES256", "public");
    const serviceKey = await makeKey("ES256", "service");
    const fixture = await served(publicKey);
    const IDP = { fetch: async () => Response.json({ keys: [serviceKey.publicJwk] }) };
    const viaService = makeGate(fixture, issuerConfig(fixture, { jwks_service: "IDP" }), { env: { IDP } });
    expect((await viaService.request("/items/1", { headers: bearer(await mint(serviceKey)) })).status).toBe(200);
    const direct = makeGate(fixture, issuerConfig(fixture));
    await expectRejected(direct, await direct.request("/items/1", { headers: bearer(await mint(serviceKey)) }), 401, "invalid_token");
    expect((await direct.request("/items/1", { headers: bearer(await mint(publicKey)) })).status).toBe(200);
    expect(await fetches(fixture)).toBe(1); // the public URL was fetched by `direct` itself
    expect(direct.logs.filter((line) => line.event === "jwks_kv_hit")).toHaveLength(0);
    // And the other way round: a fresh service-bound isolate does not take the public set from KV.
    const viaService2 = makeGate(fixture, issuerConfig(fixture, { jwks_service: "IDP" }), { env: { IDP } });
    await expectRejected(viaService2, await viaService2.request("/items/1", { headers: bearer(await mint(publicKey)) }), 401, "invalid_token");
    // Two service names are two sets as well.
    const names = await Promise.all(["IDP", "OTHER_IDP", undefined].map((service) => keySetKvNames({ issuer: ISSUER, jwks_uri: fixture.jwksUri, jwks_service: service })));
    expect(new Set(names.map((name) => name.set)).size).toBe(3);
  });

  async function storedBy(fixture: Fixture, entry: Record<string, unknown>) {
    const now = Date.now();
    const stored = { v: 2, fetched_at: now, expires_at: now + 600_000, jwks_uri: fixture.jwksUri, jwks_uri_expires_at: null, ...entry };
    await env.PORTCULLIS_KV.put((await keySetKvNames({ issuer: ISSUER, jwks_uri: fixture.jwksUri })).set, JSON.stringify(stored));
  }

  /** A 1024-bit RSA key (jose refuses to make or use one) and a token it signs. */
  async function weakRsa(kid: string): Promise<{ jwk: JWK; token: string }> {
    const pair = (await crypto.subtle.generateKey({ name: "RSASSA-PKCS1-v1_5", modulusLength: 1024, publicExponent: new Uint8Array([1, 0, 1]), hash: "SHA-256" }, true, ["sign", "verify"])) as CryptoKeyPair;
    const jwk = { ...((await crypto.subtle.exportKey("jwk", pair.publicKey)) as JWK), kid, alg: "RS256" };
    const key = { alg: "RS256" as const, kid, privateKey: pair.privateKey, publicJwk: jwk };
    const now = Math.floor(Date.now() / 1000);
    return { jwk, token: await signRaw(key, { alg: "RS256", typ: "at+jwt", kid }, { iss: ISSUER, aud: AUDIENCE, sub: "u", exp: now + 300, scope: "items:read" }) };
  }

  it.each([
    ["a 1024-bit RSA key", () => weakRsa("lenient"), "weak_rsa"],
    ["a key marked for encryption", async () => {
      const key = await makeKey("ES256", "lenient");
      return { jwk: { ...key.publicJwk, use: "enc" }, token: await mint(key) };
    }, "not_for_signatures"],
    ["a private key", async () => {
      const key = await makeKey("ES256", "lenient");
      return { jwk: { ...(await exportJWK(key.privateKey)), kid: "lenient", alg: "ES256" }, token: await mint(key) };
    }, "private_material"],
  ])("T-I3 a KV entry holding %s (written by a more lenient configuration) is filtered by this one's key policy", async (_label, makeLenient, reason) => {
    const good = await makeKey("ES256", "good");
    const lenient = await makeLenient();
    const fixture = await served(good);
    await storedBy(fixture, { keys: [good.publicJwk, lenient.jwk] });
    const gate = makeGate(fixture, issuerConfig(fixture));
    expect((await gate.request("/items/1", { headers: bearer(await mint(good)) })).status).toBe(200);
    expect(await fetches(fixture)).toBe(0); // the entry itself was used, minus the key
    expect(gate.logs).toContainEqual(expect.objectContaining({ event: "jwks_key_skipped", reason }));
    await expectRejected(gate, await gate.request("/items/1", { headers: bearer(lenient.token) }), 401, "invalid_token");
    expect(decisions(gate)).toEqual(["jwt", "kid_unknown"]);
  });

  it("T-I3 a KV entry written for another jwks_uri is not used", async () => {
    const good = await makeKey("ES256", "good");
    const planted = await makeKey("ES256", "planted");
    const fixture = await served(good);
    await storedBy(fixture, { keys: [planted.publicJwk], jwks_uri: "https://elsewhere.test/jwks" });
    const gate = makeGate(fixture, issuerConfig(fixture));
    await expectRejected(gate, await gate.request("/items/1", { headers: bearer(await mint(planted)) }), 401, "invalid_token");
    expect((await gate.request("/items/1", { headers: bearer(await mint(good)) })).status).toBe(200);
    expect(await fetches(fixture)).toBe(1);
  });

  it("T-I3 a KV entry written with a longer max_age lives only this configuration's max_age", async () => {
    const old = await makeKey("ES256", "old");
    const fresh = await makeKey("ES256", "fresh");
    const fixture = await served(fresh); // `old` was removed at the IdP
    const time = clock();
    await storedBy(fixture, { keys: [old.publicJwk], fetched_at: time.now(), expires_at: time.now() + 7 * 86_400_000 });
    const config = issuerConfig(fixture, { jwks: { min_age: 60, default_age: 60, max_age: 120, refresh_ahead: 0 } });
    const gate = makeGate(fixture, config, { now: time.now });
    expect((await gate.request("/items/1", { headers: bearer(await mint(old)) })).status).toBe(200);
    time.at(119);
    expect((await gate.request("/items/1", { headers: bearer(await mint(old)) })).status).toBe(200);
    expect(await fetches(fixture)).toBe(0);
    time.at(121);
    await expectRejected(gate, await gate.request("/items/1", { headers: bearer(await mint(old)) }), 401, "invalid_token");
    expect((await gate.request("/items/1", { headers: bearer(await mint(fresh)) })).status).toBe(200);
    expect(await fetches(fixture)).toBe(1);
  });

  it("T-I3 the verified-token cache is per configuration: two gates in one isolate never share verifications", async () => {
    const key = await makeKey("ES256", "k1");
    const fixture = await served(key);
    const gateFor = (audience: string) => makeGate(fixture, baseConfig(fixture, { issuers: [{ issuer: ISSUER, audiences: [audience], jwks_uri: fixture.jwksUri }] }));
    const staging = gateFor("https://staging.api.test");
    const production = gateFor(AUDIENCE);
    const productionTwin = gateFor(AUDIENCE);
    const stagingToken = await mint(key, { aud: "https://staging.api.test" });
    const productionToken = await mint(key);
    for (let i = 0; i < 2; i++) expect((await staging.request("/items/1", { headers: bearer(stagingToken) })).status).toBe(200);
    for (let i = 0; i < 2; i++) expect((await production.request("/items/1", { headers: bearer(productionToken) })).status).toBe(200);
    await expectRejected(production, await production.request("/items/1", { headers: bearer(stagingToken) }), 401, "invalid_token");
    await expectRejected(staging, await staging.request("/items/1", { headers: bearer(productionToken) }), 401, "invalid_token");
    expect(decisions(staging)).toEqual(["jwt", "jwt_cached", "audience_mismatch"]);
    expect(decisions(production)).toEqual(["jwt", "jwt_cached", "audience_mismatch"]);
    // Even an identical configuration verifies for itself: its first sight of a token is never a hit.
    expect((await productionTwin.request("/items/1", { headers: bearer(productionToken) })).status).toBe(200);
    expect(decisions(productionTwin)).toEqual(["jwt"]);
    // Another issuer set: the cached issuer is not this gate's.
    const otherIssuer = makeGate(fixture, baseConfig(fixture, { issuers: [{ issuer: "https://other.test/", audiences: [AUDIENCE], jwks_uri: fixture.jwksUri }] }));
    await expectRejected(otherIssuer, await otherIssuer.request("/items/1", { headers: bearer(productionToken) }), 401, "invalid_token");
    expect(decisions(otherIssuer)).toEqual(["issuer_unknown"]);
  });
});
