import { CompactEncrypt, exportJWK, generateKeyPair, SignJWT } from "jose";
import { describe, expect, it } from "vitest";
import { parseConfig } from "../../src/config/load";
import type { PortcullisConfig } from "../../src/config/schema";
import { AUDIENCE, baseConfig, bearer, expectRejected, Fixture, ISSUER, makeGate, makeKey, mint, originSaw, type Gate, type TestKey } from "../helpers";
import { githubToken, googleToken } from "../provider-tokens";

/**
 * Tokens that are not this API's plain Bearer access tokens, on every validation path: sender-constrained
 * tokens (any `cnf`, T-I6) and ID tokens (T-I7), as JWTs, JWE-wrapped JWTs, verified-token cache hits,
 * RFC 7662 answers and provider answers; and `required_claims` (the Entra presets' azp / appid).
 */

type Issuer = NonNullable<PortcullisConfig["issuers"]>[number];
const now = () => Math.floor(Date.now() / 1000);
const SECRET = { GATE_CLIENT_SECRET: "s3cr3t", GITHUB_SECRET: "gh-secret" };
const lastReason = (gate: Gate) => gate.logs.filter((line) => line.event === "decision").at(-1)?.reason;
const decisions = (gate: Gate) => gate.logs.filter((line) => line.event === "decision").map((line) => line.reason ?? line.via);

/** Every shape a `cnf` claim can take; each one binds the token to something a Bearer presentation cannot prove. */
const CNF_VALUES: [string, unknown][] = [
  ["jwk", { jwk: { kty: "EC", crv: "P-256", x: "f83OJ3D2xF1Bg8vub9tLe1gHMzV76e8Tus9uPHvRVEU", y: "x_FEzRu9m36HLN_tue659LNpXW6pCyStikYjKIWI5a0" } }],
  ["kid", { kid: "key-1" }],
  ["jku", { jku: "https://attacker.example/keys" }],
  ["x5t", { x5t: "dGhpcyBpcyBub3QgYSB0aHVtYnByaW50" }],
  ["x5t#S256", { "x5t#S256": "bwcK0esc3ACC3DB2Y5_lESsXE8o9ltc05O89jdN-dg2" }],
  ["jkt", { jkt: "0ZcOCORZNYy-DWpqq30jZyJGHTN0d2HglBV3uiguA4I" }],
  ["an unknown member", { future_method: "x" }],
  ["an empty object", {}],
  ["an array", [{ jkt: "x" }]],
  ["an empty array", []],
  ["a string", "jkt"],
  ["null", null],
  ["false", false],
  ["0", 0],
];

function introspectionGate(fixture: Fixture, extra: Partial<Issuer> = {}, introspection: Record<string, unknown> = {}) {
  const issuer: Issuer = {
    issuer: ISSUER,
    audiences: [AUDIENCE],
    jwks_uri: fixture.jwksUri,
    introspection: { endpoint: fixture.introspectionEndpoint, client_id: "gate", client_secret: "GATE_CLIENT_SECRET", ...introspection },
    ...extra,
  };
  return makeGate(fixture, baseConfig(fixture, { issuers: [issuer] }), { env: SECRET });
}

const rfc7662Answer = (extra: Record<string, unknown> = {}) => ({
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

describe("T-I6 sender-constrained tokens presented as Bearer", () => {
  it.each(CNF_VALUES)("T-I6 a JWT with cnf = %s is 401 token_sender_constrained", async (_label, cnf) => {
    const fixture = new Fixture();
    const key = await makeKey("ES256");
    await fixture.serveJwks({ keys: [key.publicJwk] });
    const gate = makeGate(fixture, baseConfig(fixture));
    await expectRejected(gate, await gate.request("/items/1", { headers: bearer(await mint(key, { cnf })) }), 401, "invalid_token");
    expect(lastReason(gate)).toBe("token_sender_constrained");
  });

  it("T-I6 the same token without cnf passes (the refusal is the cnf, nothing else)", async () => {
    const fixture = new Fixture();
    const key = await makeKey("ES256");
    await fixture.serveJwks({ keys: [key.publicJwk] });
    const gate = makeGate(fixture, baseConfig(fixture));
    expect((await gate.request("/items/1", { headers: bearer(await mint(key)) })).status).toBe(200);
  });

  it("T-I6 a JWE-wrapped JWT with cnf is refused after decryption, whatever the cnf", async () => {
    const fixture = new Fixture();
    const signing = await makeKey("ES256");
    await fixture.serveJwks({ keys: [signing.publicJwk] });
    const rsa = await generateKeyPair("RSA-OAEP-256", { extractable: true });
    const secret = JSON.stringify({ keys: [{ ...(await exportJWK(rsa.privateKey)), alg: "RSA-OAEP-256", kid: "enc" }] });
    const gate = makeGate(
      fixture,
      baseConfig(fixture, { issuers: [{ issuer: ISSUER, audiences: [AUDIENCE], jwks_uri: fixture.jwksUri, decryption: { keys: "DECRYPTION_KEYS" } }] }),
      { env: { DECRYPTION_KEYS: secret } },
    );
    const wrap = async (claims: Record<string, unknown>) =>
      new CompactEncrypt(new TextEncoder().encode(await mint(signing, claims))).setProtectedHeader({ alg: "RSA-OAEP-256", enc: "A256GCM", kid: "enc", cty: "JWT" }).encrypt(rsa.publicKey);
    expect((await gate.request("/items/1", { headers: bearer(await wrap({})) })).status).toBe(200);
    for (const cnf of [{ jkt: "x" }, { jwk: { kty: "OKP" } }, { x5t: "y" }, null, []]) {
      await expectRejected(gate, await gate.request("/items/1", { headers: bearer(await wrap({ cnf })) }), 401, "invalid_token");
      expect(lastReason(gate)).toBe("token_sender_constrained");
    }
  });

  it("T-I6 a verified-token cache hit can never carry cnf: a cnf token is refused every time, never cached", async () => {
    const fixture = new Fixture();
    const key = await makeKey("ES256");
    await fixture.serveJwks({ keys: [key.publicJwk] });
    const gate = makeGate(fixture, baseConfig(fixture, { token_cache: { enabled: true } }));
    const clean = await mint(key);
    const bound = await mint(key, { cnf: { kid: "k" } });
    for (let i = 0; i < 2; i++) expect((await gate.request("/items/1", { headers: bearer(clean) })).status).toBe(200);
    for (let i = 0; i < 3; i++) await expectRejected(gate, await gate.request("/items/1", { headers: bearer(bound) }), 401, "invalid_token");
    // The cache is on (the clean token's second use is a hit); the bound token is verified, and refused, each time.
    expect(decisions(gate)).toEqual(["jwt", "jwt_cached", "token_sender_constrained", "token_sender_constrained", "token_sender_constrained"]);
  });

  it.each(CNF_VALUES)("T-I6 an RFC 7662 answer with cnf = %s is 401", async (_label, cnf) => {
    const fixture = new Fixture();
    await fixture.serveIntrospection({ default: { body: rfc7662Answer({ cnf }) } });
    const gate = introspectionGate(fixture);
    await expectRejected(gate, await gate.request("/items/1", { headers: bearer("opaque-token") }), 401, "invalid_token");
    expect(lastReason(gate)).toBe("token_sender_constrained");
  });

  it("T-I6 a JWT checked by introspection (introspection.jwts) whose answer has cnf is 401", async () => {
    const fixture = new Fixture();
    const key = await makeKey("ES256");
    await fixture.serveJwks({ keys: [key.publicJwk] });
    await fixture.serveIntrospection({ default: { body: rfc7662Answer({ cnf: { "x5t#S256": "z" } }) } });
    const gate = introspectionGate(fixture, {}, { jwts: true });
    await expectRejected(gate, await gate.request("/items/1", { headers: bearer(await mint(key)) }), 401, "invalid_token");
    expect(lastReason(gate)).toBe("token_sender_constrained");
  });

  describe("provider answers: cnf is refused on the raw answer, before normalization could drop it", () => {
    const cases: [string, (fixture: Fixture) => Issuer, string, Record<string, unknown>][] = [
      [
        "google",
        (fixture) => ({ preset: "google", audiences: ["1234.apps.googleusercontent.com"], introspection: { endpoint: fixture.introspectionEndpoint } }),
        googleToken("bound"),
        { aud: "1234.apps.googleusercontent.com", azp: "1234.apps.googleusercontent.com", sub: "1", scope: "items:read", exp: String(now() + 600) },
      ],
      [
        "github",
        (fixture) => ({ preset: "github", introspection: { client_id: "Iv1.abc", client_secret: "GITHUB_SECRET", endpoint: `${fixture.issuerBase}/applications/{client_id}/token` } }),
        githubToken("bound"),
        { scopes: ["items:read"], user: { id: 1, login: "o" }, app: { client_id: "Iv1.abc" }, expires_at: null },
      ],
      [
        "amazon",
        (fixture) => ({ preset: "amazon", audiences: ["amzn1.application-oa2-client.abc"], introspection: { endpoint: fixture.introspectionEndpoint } }),
        "Atza|bound",
        { iss: "https://www.amazon.com", user_id: "amzn1.account.X", aud: "amzn1.application-oa2-client.abc", exp: 3000 },
      ],
    ];

    it.each(cases)("T-I6 %s: the answer passes without cnf and is 401 with any cnf", async (_provider, issuer, token, answer) => {
      const fixture = new Fixture();
      const gate = makeGate(fixture, baseConfig(fixture, { issuers: [issuer(fixture)], routes: [{ path: "/**", access: "token" }] }), { env: SECRET });
      await fixture.serveIntrospection({ default: { body: answer } });
      expect((await gate.request("/x", { headers: bearer(token) })).status).toBe(200);
      for (const cnf of [{ jkt: "x" }, {}, null]) {
        const fresh = makeGate(fixture, baseConfig(fixture, { issuers: [issuer(fixture)], routes: [{ path: "/**", access: "token" }] }), { env: SECRET });
        await fixture.serveIntrospection({ default: { body: { ...answer, cnf } } });
        await expectRejected(fresh, await fresh.request("/x", { headers: bearer(token) }), 401, "invalid_token");
        expect(lastReason(fresh)).toBe("token_sender_constrained");
      }
    });
  });
});

describe("T-I7 ID tokens where an access token is required", () => {
  it.each([
    ["nonce", { nonce: "n-0S6_WzA2Mj" }],
    ["at_hash", { at_hash: "77QmUPtjPfzWtF2AnpK9RQ" }],
    ["c_hash", { c_hash: "LDktKdoQak3Pk0cnXxCltA" }],
    ["s_hash", { s_hash: "x" }],
    ["nonce and at_hash", { nonce: "n", at_hash: "h" }],
  ])("T-I7 a JWT carrying %s (an ID-token-only claim) is 401 id_token_not_accepted", async (_label, claims) => {
    const fixture = new Fixture();
    const key = await makeKey("ES256");
    await fixture.serveJwks({ keys: [key.publicJwk] });
    const gate = makeGate(fixture, baseConfig(fixture));
    await expectRejected(gate, await gate.request("/items/1", { headers: bearer(await mint(key, claims)) }), 401, "invalid_token");
    expect(lastReason(gate)).toBe("id_token_not_accepted");
  });

  it("T-I7 an introspection answer carrying nonce is 401; provider answers with nonce too", async () => {
    const fixture = new Fixture();
    await fixture.serveIntrospection({ default: { body: rfc7662Answer({ nonce: "n" }) } });
    const gate = introspectionGate(fixture);
    await expectRejected(gate, await gate.request("/items/1", { headers: bearer("opaque") }), 401, "invalid_token");
    expect(lastReason(gate)).toBe("id_token_not_accepted");

    const google = new Fixture();
    await google.serveIntrospection({
      default: { body: { aud: "1234.apps.googleusercontent.com", sub: "1", scope: "items:read", exp: String(now() + 600), nonce: "n" } },
    });
    const gated = makeGate(google, baseConfig(google, { issuers: [{ preset: "google", audiences: ["1234.apps.googleusercontent.com"], introspection: { endpoint: google.introspectionEndpoint } }] }));
    await expectRejected(gated, await gated.request("/items/1", { headers: bearer(googleToken("id")) }), 401, "invalid_token");
    expect(lastReason(gated)).toBe("id_token_not_accepted");
  });

  it.each(["google", "github", "amazon"])("T-I7 a JWT ID token naming the %s issuer is 401 with zero outbound fetches", async (preset) => {
    const issuers: Record<string, Issuer> = {
      google: { preset: "google", audiences: ["1234.apps.googleusercontent.com"] },
      github: { preset: "github", introspection: { client_id: "Iv1.abc", client_secret: "GITHUB_SECRET" } },
      amazon: { preset: "amazon", audiences: ["amzn1.application-oa2-client.abc"] },
    };
    const iss = { google: "https://accounts.google.com", github: "https://github.com", amazon: "https://www.amazon.com" }[preset]!;
    const fixture = new Fixture();
    const fetches: string[] = [];
    const counting: typeof fetch = (input, init) => {
      fetches.push(String(input instanceof Request ? input.url : input));
      return fetch(input, init);
    };
    // The presets' real endpoints: any call at all would show in `fetches`.
    const gate = makeGate(fixture, baseConfig(fixture, { issuers: [issuers[preset]!] }), { env: SECRET, fetch: counting });
    const key = await makeKey("RS256");
    const idToken = await new SignJWT({ iss, aud: "1234.apps.googleusercontent.com", azp: "1234.apps.googleusercontent.com", sub: "1", nonce: "n", at_hash: "h", iat: now(), exp: now() + 600 })
      .setProtectedHeader({ alg: "RS256", kid: key.kid, typ: "JWT" })
      .sign(key.privateKey);
    await expectRejected(gate, await gate.request("/items/1", { headers: bearer(idToken) }), 401, "invalid_token");
    expect(lastReason(gate)).toBe("issuer_unknown");
    expect(fetches).toEqual([]);
    const stats = await fixture.stats();
    expect([stats.introspectionCalls.length, stats.jwksFetches, stats.metadataFetches]).toEqual([0, 0, 0]);
  });

  describe("Microsoft Entra ID: ID tokens never name the calling app, access tokens always do", () => {
    const TENANT = "72f988bf-86f1-41af-91ab-2d7cd011db47";
    const CLIENT = "6e74172b-be56-4843-9ff4-e66a39bb12e3";
    const ISS = { entra: `https://login.microsoftonline.com/${TENANT}/v2.0`, "entra-v1": `https://sts.windows.net/${TENANT}/` };

    async function entra(preset: "entra" | "entra-v1") {
      const fixture = new Fixture();
      const key = await makeKey("RS256", "entra-key");
      await fixture.serveJwks({ keys: [key.publicJwk] });
      const gate = makeGate(
        fixture,
        baseConfig(fixture, {
          issuers: [{ preset, tenants: [TENANT], audiences: [CLIENT], jwks_uri: fixture.jwksUri }],
          routes: [{ path: "/orders/**", scopes_any: ["Orders.Read"] }],
        }),
      );
      return { gate, key };
    }
    const sign = (key: TestKey, claims: Record<string, unknown>) =>
      new SignJWT({ iat: now(), nbf: now(), exp: now() + 3600, ...claims }).setProtectedHeader({ alg: "RS256", kid: key.kid, typ: "JWT" }).sign(key.privateKey);
    /** Microsoft's ID token claims reference: aud = the app's client id, nonce, tid, oid, roles may be present; no azp/appid, no scp. */
    const idToken = (preset: "entra" | "entra-v1", extra: Record<string, unknown> = {}) => ({
      iss: ISS[preset],
      aud: CLIENT,
      tid: TENANT,
      sub: "pairwise-sub",
      oid: "00000000-0000-0000-0000-00000000000a",
      nonce: "7362CAEA-9CA5-4B43-9BA3-34D7C303EBA7",
      roles: ["Orders.Read"],
      ver: preset === "entra" ? "2.0" : "1.0",
      ...extra,
    });

    it.each(["entra", "entra-v1"] as const)("T-I7 %s: an Entra-shaped ID token (typ JWT, aud = the API's client id, nonce, tid, roles, no azp) is 401", async (preset) => {
      const { gate, key } = await entra(preset);
      await expectRejected(gate, await gate.request("/orders/1", { headers: bearer(await sign(key, idToken(preset))) }), 401, "invalid_token");
      expect(lastReason(gate)).toBe("id_token_not_accepted");
      // Without nonce (an ID token from the token endpoint), the missing app id still refuses it.
      const { nonce: _nonce, ...withoutNonce } = idToken(preset);
      await expectRejected(gate, await gate.request("/orders/1", { headers: bearer(await sign(key, withoutNonce)) }), 401, "invalid_token");
      expect(lastReason(gate)).toBe(preset === "entra" ? "claim_missing_azp" : "claim_missing_appid");
    });

    it.each(["entra", "entra-v1"] as const)("T-I7 %s: a real Entra-shaped access token (the app id, scp) is 200", async (preset) => {
      const { gate, key } = await entra(preset);
      const app = preset === "entra" ? { azp: "11111111-2222-3333-4444-555555555555", azpacr: "1" } : { appid: "11111111-2222-3333-4444-555555555555", appidacr: "1" };
      const { nonce: _nonce, roles: _roles, ...base } = idToken(preset);
      const access = await sign(key, { ...base, ...app, scp: "Orders.Read User.Read" });
      const seen = await originSaw(await gate.request("/orders/1", { headers: bearer(access) }));
      expect(seen.headers["x-auth-sub"]).toBe("pairwise-sub");
      // v1 and v2 name the app differently: the other version's claim does not stand in.
      const crossed = await sign(key, { ...base, scp: "Orders.Read", ...(preset === "entra" ? { appid: "x" } : { azp: "x" }) });
      await expectRejected(gate, await gate.request("/orders/1", { headers: bearer(crossed) }), 401, "invalid_token");
    });

    it("T-I7 the presets fill required_claims; writing required_claims overrides them", () => {
      const parsed = parseConfig({
        issuers: [
          { preset: "entra", tenants: [TENANT], audiences: [CLIENT] },
          { preset: "entra-v1", tenants: ["*"], audiences: ["api://orders"] },
          { preset: "oidc", issuer: "https://auth.example.com/", audiences: ["a"], required_claims: ["client_id", "realm_access.roles"] },
        ],
        routes: [{ path: "/**" }],
      });
      if (!parsed.ok) throw new Error(JSON.stringify(parsed.issues));
      expect(parsed.config.issuers.map((issuer) => issuer.required_claims)).toEqual([["azp"], ["appid"], ["client_id", "realm_access.roles"]]);
    });
  });

  describe("required_claims on any issuer", () => {
    it("T-I7 each listed claim (dotted paths too) must be present and not null or empty, on JWTs and introspection answers", async () => {
      const fixture = new Fixture();
      const key = await makeKey("ES256");
      await fixture.serveJwks({ keys: [key.publicJwk] });
      const required = { required_claims: ["client_id", "realm_access.roles"] };
      const gate = makeGate(fixture, baseConfig(fixture, { issuers: [{ issuer: ISSUER, audiences: [AUDIENCE], jwks_uri: fixture.jwksUri, ...required }] }));
      const roles = { realm_access: { roles: ["user"] } };
      expect((await gate.request("/items/1", { headers: bearer(await mint(key, roles)) })).status).toBe(200);
      for (const [claims, reason] of [
        [{ realm_access: {} }, "claim_missing_realm_access.roles"],
        [{ ...roles, client_id: undefined }, "claim_missing_client_id"],
        [{ ...roles, client_id: "" }, "claim_missing_client_id"],
        [{ ...roles, client_id: null }, "claim_missing_client_id"],
        [{ realm_access: "roles" }, "claim_missing_realm_access.roles"],
      ] as const) {
        await expectRejected(gate, await gate.request("/items/1", { headers: bearer(await mint(key, claims)) }), 401, "invalid_token");
        expect(lastReason(gate)).toBe(reason);
      }

      await fixture.serveIntrospection({ good: { body: rfc7662Answer(roles) }, bad: { body: rfc7662Answer() } });
      const introspecting = introspectionGate(fixture, required);
      expect((await introspecting.request("/items/1", { headers: bearer("good") })).status).toBe(200);
      for (let i = 0; i < 2; i++) {
        // Refused on the fresh answer and again on the cached one.
        await expectRejected(introspecting, await introspecting.request("/items/1", { headers: bearer("bad") }), 401, "invalid_token");
        expect(lastReason(introspecting)).toBe("claim_missing_realm_access.roles");
      }
    });

    it("T-I7 required_claims is validated like other claim paths, naming the field", () => {
      const fixture = new Fixture();
      for (const bad of [["a..b"], [""], ["x y"], "azp", [1]]) {
        const parsed = parseConfig(baseConfig(fixture, { issuers: [{ issuer: ISSUER, audiences: [AUDIENCE], jwks_uri: fixture.jwksUri, required_claims: bad as string[] }] }));
        expect(parsed.ok ? [] : parsed.issues.map((issue) => issue.field)[0]).toMatch(/^issuers\.0\.required_claims/);
      }
    });
  });
});
