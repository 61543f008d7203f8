import { base64url, CompactEncrypt, exportJWK, generateKeyPair, importPKCS8, SignJWT } from "jose";
import { describe, expect, inject, it } from "vitest";
import { parseConfig } from "../../src/config/load";
import type { PortcullisConfig } from "../../src/config/schema";
import { AUDIENCE, baseConfig, bearer, expectRejected, Fixture, ISSUER, makeGate, makeKey, mint, originSaw, type TestKey } from "../helpers";
import { githubToken, googleToken } from "../provider-tokens";

/**
 * Issue 8: every way a resource server validates tokens. Provider token checks run against local fakes
 * answering the documented shapes (nothing reaches Google, GitHub, Amazon or Microsoft).
 */

const now = () => Math.floor(Date.now() / 1000);
type Issuer = NonNullable<PortcullisConfig["issuers"]>[number];

function providerGate(fixture: Fixture, issuers: Issuer[], env: Record<string, unknown> = {}, extra: Partial<PortcullisConfig> = {}) {
  return makeGate(fixture, baseConfig(fixture, { issuers, ...extra }), { env });
}

const google = (fixture: Fixture, extra: Partial<Issuer> = {}): Issuer => ({
  preset: "google",
  audiences: ["1234.apps.googleusercontent.com"],
  introspection: { endpoint: `${fixture.issuerBase}/introspect` },
  ...extra,
});
const github = (fixture: Fixture): Issuer => ({
  preset: "github",
  introspection: { client_id: "Iv1.abc123", client_secret: "GITHUB_SECRET", endpoint: `${fixture.issuerBase}/applications/{client_id}/token` },
});
const amazon = (fixture: Fixture): Issuer => ({
  preset: "amazon",
  audiences: ["amzn1.application-oa2-client.abc"],
  introspection: { endpoint: `${fixture.issuerBase}/introspect` },
});

const googleAnswer = (extra: Record<string, unknown> = {}) => ({
  azp: "1234.apps.googleusercontent.com",
  aud: "1234.apps.googleusercontent.com",
  sub: "10769150350006150715113082367",
  scope: "items:read openid",
  exp: String(now() + 3000),
  expires_in: "3000",
  email: "user@example.com",
  email_verified: "true",
  access_type: "online",
  ...extra,
});

describe("Google tokeninfo", () => {
  it("an active token: GET ?access_token=, numbers as strings mapped, identity headers", async () => {
    const fixture = new Fixture();
    await fixture.serveIntrospection({ [googleToken("good")]: { body: googleAnswer() } });
    const gate = providerGate(fixture, [google(fixture)], {}, { forward: { claim_headers: { "x-auth-email": "email" } } });
    const seen = await originSaw(await gate.request("/items/1", { headers: bearer(googleToken("good")) }));
    expect(seen.headers).toMatchObject({
      "x-auth-sub": "10769150350006150715113082367",
      "x-auth-client-id": "1234.apps.googleusercontent.com",
      "x-auth-scope": "items:read openid",
      "x-auth-issuer": "https://accounts.google.com",
      "x-auth-email": "user@example.com",
    });
    const [call] = (await fixture.stats()).introspectionCalls;
    expect(call).toMatchObject({ method: "GET", tokenIn: "query" });
    expect(JSON.stringify(gate.logs)).not.toContain(googleToken("good"));
  });

  it("relative expiry: without exp, expires_in (a string) is used", async () => {
    const fixture = new Fixture();
    const { exp: _exp, ...answer } = googleAnswer();
    await fixture.serveIntrospection({ default: { body: answer } });
    const gate = providerGate(fixture, [google(fixture)]);
    expect((await gate.request("/items/1", { headers: bearer(googleToken("rel")) })).status).toBe(200);
  });

  it.each([
    ["invalid, expired or revoked (Google says 400)", { status: 400, body: { error: "invalid_token", error_description: "Invalid Value" } }, 401],
    ["expired by its own exp", { body: googleAnswer({ exp: String(now() - 600), expires_in: "0" }) }, 401],
    ["issued to another client (aud and azp)", { body: googleAnswer({ aud: "9999.apps.googleusercontent.com", azp: "9999.apps.googleusercontent.com" }) }, 401],
    ["no usable expiry", { body: googleAnswer({ exp: "soon", expires_in: undefined }) }, 401],
    ["5xx", { status: 503, body: "unavailable" }, 503],
    ["429 (throttled)", { status: 429, body: { error: "rate_limited" } }, 503],
    ["slow", { body: googleAnswer(), delayMs: 1_500 }, 503],
  ])("%s -> %i", async (_label, answer, status) => {
    const fixture = new Fixture();
    await fixture.serveIntrospection({ default: answer as { status?: number; body: unknown; delayMs?: number } });
    const gate = providerGate(fixture, [google(fixture, { introspection: { endpoint: `${fixture.issuerBase}/introspect`, timeout_ms: 300 } })]);
    await expectRejected(gate, await gate.request("/items/1", { headers: bearer(googleToken("x")) }), status);
  });

  it("answers are cached (hashed key, bounded by expiry): tokeninfo may be throttled", async () => {
    const fixture = new Fixture();
    await fixture.serveIntrospection({ default: { body: googleAnswer() } });
    const gate = providerGate(fixture, [google(fixture)]);
    for (let i = 0; i < 3; i++) expect((await gate.request("/items/1", { headers: bearer(googleToken("same")) })).status).toBe(200);
    expect((await fixture.stats()).introspectionCalls).toHaveLength(1);
  });
});

describe("GitHub token check", () => {
  const ECHOED = githubToken("theTokenEchoedBack");
  const answer = (extra: Record<string, unknown> = {}) => ({
    id: 1,
    token: ECHOED,
    token_last_eight: "ed_back1",
    scopes: ["items:read", "repo"],
    expires_at: null,
    user: { login: "octocat", id: 583231 },
    app: { client_id: "Iv1.abc123", name: "app" },
    ...extra,
  });

  it("POST /applications/{client_id}/token with Basic auth, JSON body and the API headers; identity from user and app", async () => {
    const fixture = new Fixture();
    await fixture.serveIntrospection({ [ECHOED]: { body: answer() } });
    const gate = providerGate(fixture, [github(fixture)], { GITHUB_SECRET: "gh-secret" });
    const seen = await originSaw(await gate.request("/items/1", { headers: bearer(ECHOED) }));
    expect(seen.headers).toMatchObject({ "x-auth-sub": "583231", "x-auth-client-id": "Iv1.abc123", "x-auth-scope": "items:read repo", "x-auth-issuer": "https://github.com" });
    const [call] = (await fixture.stats()).introspectionCalls;
    expect(call).toMatchObject({
      method: "POST",
      path: "applications/Iv1.abc123/token",
      authorization: `Basic ${btoa("Iv1.abc123:gh-secret")}`,
      accept: "application/vnd.github+json",
      apiVersion: "2022-11-28",
      tokenIn: "json",
    });
    // The response echoes the token: it is neither logged nor kept in the claims.
    expect(JSON.stringify(gate.logs)).not.toContain(ECHOED);
    expect(JSON.stringify(seen.headers)).not.toContain(ECHOED);
  });

  it.each([
    ["404 (not a token of this app)", { status: 404, body: { message: "Not Found" } }, 401],
    ["another app's client_id", { body: answer({ app: { client_id: "Iv1.other" } }) }, 401],
    ["expired expires_at", { body: answer({ expires_at: new Date(Date.now() - 60_000).toISOString() }) }, 401],
    ["422", { status: 422, body: { message: "Validation Failed" } }, 503],
    ["500", { status: 500, body: "" }, 503],
    ["401 (our client credentials)", { status: 401, body: { message: "Bad credentials" } }, 503],
  ])("%s -> %i", async (_label, reply, status) => {
    const fixture = new Fixture();
    await fixture.serveIntrospection({ default: reply as { status?: number; body: unknown } });
    const gate = providerGate(fixture, [github(fixture)], { GITHUB_SECRET: "gh-secret" });
    await expectRejected(gate, await gate.request("/items/1", { headers: bearer(githubToken("x")) }), status);
  });

  it("scopes: null grants nothing; expires_at null is cached for cache_ttl", async () => {
    const fixture = new Fixture();
    await fixture.serveIntrospection({ default: { body: answer({ scopes: null }) } });
    const gate = providerGate(fixture, [github(fixture)], { GITHUB_SECRET: "gh-secret" });
    await expectRejected(gate, await gate.request("/items/1", { headers: bearer(githubToken("y")) }), 403, "insufficient_scope");
    expect((await gate.request("/public/x", { headers: bearer(githubToken("y")) })).status).toBe(200);
    expect((await fixture.stats()).introspectionCalls).toHaveLength(1);
  });
});

describe("Amazon tokeninfo", () => {
  const answer = (extra: Record<string, unknown> = {}) => ({
    iss: "https://www.amazon.com",
    user_id: "amzn1.account.K2LI23KL2LK2",
    aud: "amzn1.application-oa2-client.abc",
    app_id: "amzn1.application.436457DFHDH",
    exp: 3597,
    iat: now() - 3,
    ...extra,
  });

  it("exp is seconds remaining; `|` in Amazon tokens is admitted by the preset", async () => {
    const fixture = new Fixture();
    await fixture.serveIntrospection({ "Atza|IQEBLjAsAhRmHjNgHpi0U": { body: answer() } });
    const gate = providerGate(fixture, [amazon(fixture)]);
    const seen = await originSaw(await gate.request("/public/x", { headers: bearer("Atza|IQEBLjAsAhRmHjNgHpi0U") }));
    expect(seen.headers["x-auth-sub"]).toBeUndefined(); // public route: no identity headers
    const feed = makeGate(fixture, baseConfig(fixture, { issuers: [amazon(fixture)], routes: [{ path: "/**", access: "optional" }] }));
    const identified = await originSaw(await feed.request("/x", { headers: bearer("Atza|IQEBLjAsAhRmHjNgHpi0U") }));
    expect(identified.headers).toMatchObject({ "x-auth-sub": "amzn1.account.K2LI23KL2LK2", "x-auth-client-id": "amzn1.application-oa2-client.abc" });
  });

  it.each([
    ["another client's aud", { body: answer({ aud: "amzn1.application-oa2-client.other" }) }, 401],
    ["another iss", { body: answer({ iss: "https://evil.example" }) }, 401],
    ["0 seconds left (beyond the tolerance)", { body: answer({ exp: -60 }) }, 401],
    ["exp as a string", { body: answer({ exp: "3597" }) }, 200],
    ["400 invalid_token", { status: 400, body: { error: "invalid_token" } }, 401],
    ["500", { status: 500, body: "" }, 503],
  ])("%s -> %i", async (_label, reply, status) => {
    const fixture = new Fixture();
    await fixture.serveIntrospection({ default: reply as { status?: number; body: unknown } });
    const gate = makeGate(fixture, baseConfig(fixture, { issuers: [amazon(fixture)], routes: [{ path: "/**", access: "optional" }] }));
    const response = await gate.request("/x", { headers: bearer("Atza|abc") });
    if (status === 200) expect(response.status).toBe(200);
    else await expectRejected(gate, response, status);
  });

  it("without the Amazon preset, `|` is outside RFC 6750 b64token: 400", async () => {
    const fixture = new Fixture();
    const gate = makeGate(fixture, baseConfig(fixture));
    await expectRejected(gate, await gate.request("/items/1", { headers: bearer("Atza|abc") }), 400, "invalid_request");
  });
});

describe("several opaque-token providers side by side", () => {
  it("tokens are routed by prefix; an unknown opaque token is 401 with no call", async () => {
    const g = new Fixture();
    const h = new Fixture();
    await g.serveIntrospection({ default: { body: googleAnswer() } });
    await h.serveIntrospection({ default: { body: { scopes: ["items:read"], user: { id: 7, login: "x" }, app: { client_id: "Iv1.abc123" }, expires_at: null } } });
    const gate = providerGate(g, [google(g), github(h)], { GITHUB_SECRET: "s" });
    expect((await gate.request("/items/1", { headers: bearer(googleToken("a")) })).status).toBe(200);
    expect((await gate.request("/items/1", { headers: bearer(githubToken("b")) })).status).toBe(200);
    await expectRejected(gate, await gate.request("/items/1", { headers: bearer("zzz_unknown") }), 401, "invalid_token");
    expect((await g.stats()).introspectionCalls).toHaveLength(1);
    expect((await h.stats()).introspectionCalls).toHaveLength(1);
  });

  it("a JWT naming a provider issuer is refused without any fetch", async () => {
    const g = new Fixture();
    const key = await makeKey("ES256");
    const gate = providerGate(g, [google(g)]);
    await expectRejected(gate, await gate.request("/items/1", { headers: bearer(await mint(key, { iss: "https://accounts.google.com" })) }), 401, "invalid_token");
    expect((await g.stats()).introspectionCalls).toHaveLength(0);
    expect((await g.stats()).metadataFetches).toBe(0);
  });
});

describe("Microsoft Entra ID", () => {
  const TENANT_A = "72f988bf-86f1-41af-91ab-2d7cd011db47";
  const TENANT_B = "9188040d-6c67-4c5b-b112-36a304b66dad";
  const TENANT_X = "00000000-1111-2222-3333-444444444444";
  const CLIENT = "6e74172b-be56-4843-9ff4-e66a39bb12e3";

  async function entra(tenants: string[], preset = "entra") {
    const fixture = new Fixture();
    const key = await makeKey("RS256", "entra-key");
    await fixture.serveJwks({ keys: [key.publicJwk] });
    const issuers: Issuer[] = [{ preset, tenants, audiences: [CLIENT, "api://orders"], jwks_uri: fixture.jwksUri }];
    const gate = providerGate(fixture, issuers, {}, {
      routes: [
        { path: "/orders/**", methods: ["GET"], scopes: ["Orders.Read"] },
        { path: "/orders/**", methods: ["POST"], scopes: ["Orders.Write"] },
      ],
    });
    return { key, gate };
  }
  const v2 = (tenant: string) => `https://login.microsoftonline.com/${tenant}/v2.0`;
  const token = (key: TestKey, tenant: string, claims: Record<string, unknown> = {}, iss = v2(tenant)) =>
    new SignJWT({ aud: CLIENT, iss, tid: tenant, sub: "entra-user", azp: "client-app", scp: "Orders.Read User.Read", exp: now() + 600, iat: now(), ...claims })
      .setProtectedHeader({ alg: "RS256", kid: key.kid, typ: "JWT" })
      .sign(key.privateKey);

  it("two allowed tenants pass, with the tenant's issuer in x-auth-issuer; delegated scopes from scp", async () => {
    const { key, gate } = await entra([TENANT_A, TENANT_B]);
    for (const tenant of [TENANT_A, TENANT_B]) {
      const seen = await originSaw(await gate.request("/orders/1", { headers: bearer(await token(key, tenant)) }));
      expect(seen.headers["x-auth-issuer"]).toBe(v2(tenant));
      expect(seen.headers["x-auth-client-id"]).toBe("client-app");
    }
  });

  it("an unlisted tenant, a tid that differs from iss, or a non-GUID tid is refused", async () => {
    const { key, gate } = await entra([TENANT_A]);
    await expectRejected(gate, await gate.request("/orders/1", { headers: bearer(await token(key, TENANT_X)) }), 401, "invalid_token");
    expect(gate.logs.at(-1)?.reason).toBe("tenant_not_allowed");
    await expectRejected(gate, await gate.request("/orders/1", { headers: bearer(await token(key, TENANT_A, { tid: TENANT_B })) }), 401, "invalid_token");
    expect(gate.logs.at(-1)?.reason).toBe("tenant_mismatch");
    await expectRejected(gate, await gate.request("/orders/1", { headers: bearer(await token(key, TENANT_A, {}, "https://login.microsoftonline.com/common/v2.0")) }), 401, "invalid_token");
  });

  it('"*" accepts any tenant (multi-tenant apps); tid must still match', async () => {
    const { key, gate } = await entra(["*"]);
    expect((await gate.request("/orders/1", { headers: bearer(await token(key, TENANT_X)) })).status).toBe(200);
    await expectRejected(gate, await gate.request("/orders/1", { headers: bearer(await token(key, TENANT_X, { tid: undefined })) }), 401, "invalid_token");
  });

  it("application permissions from roles; v1 issuer with the App ID URI audience", async () => {
    const { key, gate } = await entra([TENANT_A], "entra-v1");
    const v1 = `https://sts.windows.net/${TENANT_A}/`;
    const app = await token(key, TENANT_A, { scp: undefined, azp: undefined, appid: "client-app", roles: ["Orders.Write"], aud: "api://orders" }, v1);
    expect((await gate.request("/orders/1", { method: "POST", headers: bearer(app) })).status).toBe(200);
    await expectRejected(gate, await gate.request("/orders/1", { headers: bearer(app) }), 403, "insufficient_scope");
    // A v2 token does not match the v1 template.
    await expectRejected(gate, await gate.request("/orders/1", { headers: bearer(await token(key, TENANT_A)) }), 401);
  });
});

describe("static keys", () => {
  it("a PEM public key (SPKI) verifies; a JWK given inline verifies; an unknown kid is a plain miss", async () => {
    const { privateKey, publicKey } = await generateKeyPair("PS256", { extractable: true });
    const spki = await (await import("jose")).exportSPKI(publicKey);
    const ec = await makeKey("ES256", "inline-ec");
    const fixture = new Fixture();
    const gate = makeGate(
      fixture,
      baseConfig(fixture, {
        issuers: [{ issuer: ISSUER, audiences: [AUDIENCE], algorithms: ["PS256", "ES256"], keys: [{ pem: spki, alg: "PS256", kid: "pem-1" }, { ...ec.publicJwk, kty: "EC" }] }],
      }),
    );
    const pemKey = { alg: "PS256" as const, kid: "pem-1", privateKey, publicJwk: {} };
    expect((await gate.request("/items/1", { headers: bearer(await mint(pemKey)) })).status).toBe(200);
    expect((await gate.request("/items/1", { headers: bearer(await mint(ec)) })).status).toBe(200);
    await expectRejected(gate, await gate.request("/items/1", { headers: bearer(await mint(ec, {}, { kid: "nope" })) }), 401, "invalid_token");
    expect((await fixture.stats()).jwksFetches).toBe(0);
  });

  it("an X.509 certificate verifies RS256 tokens signed with its key", async () => {
    const { certificate, privateKey } = JSON.parse(inject("staticCertificate")) as { certificate: string; privateKey: string };
    const fixture = new Fixture();
    const gate = makeGate(fixture, baseConfig(fixture, { issuers: [{ issuer: ISSUER, audiences: [AUDIENCE], keys: [{ pem: certificate, alg: "RS256", kid: "cert-1" }] }] }));
    const key = { alg: "RS256" as const, kid: "cert-1", privateKey: await importPKCS8(privateKey, "RS256"), publicJwk: {} };
    expect((await gate.request("/items/1", { headers: bearer(await mint(key)) })).status).toBe(200);
    const other = await makeKey("RS256", "cert-1");
    await expectRejected(gate, await gate.request("/items/1", { headers: bearer(await mint(other)) }), 401, "invalid_token");
  });

  it("static keys pass the same key policy: a weak RSA key is skipped, and with none usable the answer is 500", async () => {
    const fixture = new Fixture();
    const weak = { kty: "RSA", kid: "weak", n: base64url.encode(new Uint8Array(128).fill(0xff)), e: "AQAB" };
    const gate = makeGate(fixture, baseConfig(fixture, { issuers: [{ issuer: ISSUER, audiences: [AUDIENCE], keys: [weak] }] }));
    const key = await makeKey("RS256", "weak");
    const response = await gate.request("/items/1", { headers: bearer(await mint(key)) });
    expect(response.status).toBe(500);
    expect(gate.logs).toContainEqual(expect.objectContaining({ event: "static_key_skipped", reason: "weak_rsa" }));
  });
});

describe("encrypted access tokens (nested JWT)", () => {
  async function jweGate(decryption: Record<string, unknown> = {}) {
    const fixture = new Fixture();
    const signing = await makeKey("ES256");
    await fixture.serveJwks({ keys: [signing.publicJwk] });
    const rsa = await generateKeyPair("RSA-OAEP-256", { extractable: true });
    const ecdh = await generateKeyPair("ECDH-ES+A256KW", { crv: "P-256", extractable: true });
    const secret = JSON.stringify({
      keys: [
        { ...(await exportJWK(rsa.privateKey)), alg: "RSA-OAEP-256", kid: "enc-rsa" },
        { ...(await exportJWK(ecdh.privateKey)), alg: "ECDH-ES+A256KW", kid: "enc-ec" },
      ],
    });
    const config = baseConfig(fixture, {
      issuers: [{ issuer: ISSUER, audiences: [AUDIENCE], jwks_uri: fixture.jwksUri, decryption: { keys: "DECRYPTION_KEYS", ...decryption } }],
    });
    const gate = makeGate(fixture, config, { env: { DECRYPTION_KEYS: secret } });
    const encrypt = (jwt: string, alg: string, enc: string, key: CryptoKey, kid: string, extra: Record<string, unknown> = {}) =>
      new CompactEncrypt(new TextEncoder().encode(jwt)).setProtectedHeader({ alg, enc, kid, cty: "JWT", ...extra }).encrypt(key);
    return { fixture, signing, rsa, ecdh, gate, encrypt };
  }

  it("RSA-OAEP-256 and ECDH-ES+A256KW with A256GCM / A128GCM: decrypted, then validated as a normal JWT", async () => {
    const { signing, rsa, ecdh, gate, encrypt } = await jweGate();
    const jwt = await mint(signing);
    const viaRsa = await encrypt(jwt, "RSA-OAEP-256", "A256GCM", rsa.publicKey, "enc-rsa");
    const seen = await originSaw(await gate.request("/items/1", { headers: bearer(viaRsa) }));
    expect(seen.headers["x-auth-sub"]).toBe("user-123");
    const viaEc = await encrypt(jwt, "ECDH-ES+A256KW", "A128GCM", ecdh.publicKey, "enc-ec");
    expect((await gate.request("/items/1", { headers: bearer(viaEc) })).status).toBe(200);
    // The inner JWT is validated: an expired one is refused after decryption.
    const expired = await encrypt(await mint(signing, { exp: now() - 600, iat: now() - 900 }), "RSA-OAEP-256", "A256GCM", rsa.publicKey, "enc-rsa");
    await expectRejected(gate, await gate.request("/items/1", { headers: bearer(expired) }), 401, "invalid_token");
  });

  it("PBES2 (any iteration count) and compression are refused from the header, before any work", async () => {
    const { gate, rsa, signing, encrypt } = await jweGate();
    const head = (header: Record<string, unknown>) => base64url.encode(JSON.stringify(header));
    const pbes2 = `${head({ alg: "PBES2-HS512+A256KW", enc: "A256GCM", p2s: "c2FsdHNhbHQ", p2c: 2_000_000_000, cty: "JWT" })}.AAAA.AAAAAAAAAAAAAAAA.AAAA.AAAAAAAAAAAAAAAAAAAAAA`;
    const started = Date.now();
    await expectRejected(gate, await gate.request("/items/1", { headers: bearer(pbes2) }), 401, "invalid_token");
    expect(Date.now() - started).toBeLessThan(500);
    expect(gate.logs.at(-1)?.reason).toBe("jwe_pbes2");
    const zipped = await encrypt(await mint(signing), "RSA-OAEP-256", "A256GCM", rsa.publicKey, "enc-rsa", { zip: "DEF" }).catch(() => undefined);
    const zipHeader = `${head({ alg: "RSA-OAEP-256", enc: "A256GCM", zip: "DEF", cty: "JWT" })}.AAAA.AAAAAAAAAAAAAAAA.AAAA.AAAAAAAAAAAAAAAAAAAAAA`;
    await expectRejected(gate, await gate.request("/items/1", { headers: bearer(zipped ?? zipHeader) }), 401, "invalid_token");
    expect(gate.logs.at(-1)?.reason).toBe("jwe_compressed");
  });

  it("a wrong key, an algorithm outside the allow-lists, or a foreign inner issuer is refused", async () => {
    const { gate, signing, encrypt } = await jweGate({ content_encryption: ["A256GCM"] });
    const stranger = await generateKeyPair("RSA-OAEP-256");
    const wrongKey = await encrypt(await mint(signing), "RSA-OAEP-256", "A256GCM", stranger.publicKey, "enc-rsa");
    await expectRejected(gate, await gate.request("/items/1", { headers: bearer(wrongKey) }), 401, "invalid_token");
    expect(gate.logs.at(-1)?.reason).toBe("jwe_undecryptable");
    const rsa2 = await generateKeyPair("RSA-OAEP", { extractable: true });
    const oldOaep = await encrypt(await mint(signing), "RSA-OAEP", "A256GCM", rsa2.publicKey, "enc-rsa");
    await expectRejected(gate, await gate.request("/items/1", { headers: bearer(oldOaep) }), 401, "invalid_token");
    expect(gate.logs.at(-1)?.reason).toBe("jwe_alg_not_allowed");
  });

  it("the inner JWT must come from the issuer whose key decrypted it", async () => {
    const { fixture, rsa, encrypt } = await jweGate();
    const other = await makeKey("ES256");
    const foreign = new Fixture();
    await foreign.serveJwks({ keys: [other.publicJwk] });
    const secret = JSON.stringify({ keys: [{ ...(await exportJWK(rsa.privateKey)), alg: "RSA-OAEP-256", kid: "enc-rsa" }] });
    const gate = makeGate(
      fixture,
      baseConfig(fixture, {
        issuers: [
          { issuer: ISSUER, audiences: [AUDIENCE], jwks_uri: fixture.jwksUri, decryption: { keys: "DECRYPTION_KEYS" } },
          { issuer: "https://other-issuer.test/", audiences: [AUDIENCE], jwks_uri: foreign.jwksUri },
        ],
      }),
      { env: { DECRYPTION_KEYS: secret } },
    );
    const inner = await mint(other, { iss: "https://other-issuer.test/" });
    expect((await gate.request("/items/1", { headers: bearer(inner) })).status).toBe(200); // fine unencrypted
    const wrapped = await encrypt(inner, "RSA-OAEP-256", "A256GCM", rsa.publicKey, "enc-rsa");
    await expectRejected(gate, await gate.request("/items/1", { headers: bearer(wrapped) }), 401, "invalid_token");
    expect(gate.logs.at(-1)?.reason).toBe("jwe_issuer_mismatch");
  });

  it("without a configured decryption key a JWE is still refused as before", async () => {
    const { rsa, signing, encrypt } = await jweGate();
    const fixture = new Fixture();
    const gate = makeGate(fixture, baseConfig(fixture));
    const token = await encrypt(await mint(signing), "RSA-OAEP-256", "A256GCM", rsa.publicKey, "enc-rsa");
    await expectRejected(gate, await gate.request("/items/1", { headers: bearer(token) }), 401, "invalid_token");
    expect(gate.logs.at(-1)?.reason).toBe("jwe_not_accepted");
  });
});

describe("presets (configuration)", () => {
  it("fill endpoints and mappings; users write only client ids, tenants and audiences", () => {
    const parsed = parseConfig({
      issuers: [
        { preset: "google", audiences: ["1234.apps.googleusercontent.com"] },
        { preset: "github", introspection: { client_id: "Iv1.abc", client_secret: "GH_SECRET" } },
        { preset: "amazon", audiences: ["amzn1.application-oa2-client.abc"] },
        { preset: "entra", tenants: ["72f988bf-86f1-41af-91ab-2d7cd011db47"], audiences: ["6e74172b-be56-4843-9ff4-e66a39bb12e3"] },
      ],
      routes: [{ path: "/**" }],
    });
    if (!parsed.ok) throw new Error(JSON.stringify(parsed.issues));
    const [g, gh, a, e] = parsed.config.issuers;
    expect(g).toMatchObject({ issuer: "https://accounts.google.com", introspection: { flavor: "google", endpoint: "https://oauth2.googleapis.com/tokeninfo" } });
    expect(gh!.introspection).toMatchObject({ flavor: "github", endpoint: "https://api.github.com/applications/{client_id}/token" });
    expect(a!.introspection!.flavor).toBe("amazon");
    expect(parsed.config.token.extra_characters).toBe("|");
    expect(e).toMatchObject({ issuer: "https://login.microsoftonline.com/{tenantid}/v2.0", types: ["JWT"], algorithms: ["RS256"] });
  });

  it("name the field for unknown presets and missing essentials", () => {
    const issues = (raw: unknown) => {
      const parsed = parseConfig(raw);
      return parsed.ok ? [] : parsed.issues.map((issue) => issue.field);
    };
    expect(issues({ issuers: [{ preset: "okta", audiences: ["a"] }], routes: [{ path: "/" }] })).toEqual(["issuers.0.preset"]);
    expect(issues({ issuers: [{ preset: "github", introspection: {} }], routes: [{ path: "/" }] })).toEqual([
      "issuers.0.introspection.client_id",
      "issuers.0.introspection.client_secret",
    ]);
    expect(issues({ issuers: [{ preset: "entra", audiences: ["a"] }], routes: [{ path: "/" }] })).toEqual(["issuers.0.tenants"]);
    expect(issues({ issuers: [{ preset: "google" }], routes: [{ path: "/" }] })).toEqual(["issuers.0.audiences"]);
  });
});
