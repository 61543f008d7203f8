import { createLocalJWKSet, type JWK } from "jose";
import { beforeAll, describe, expect, inject, it } from "vitest";
import { parseConfig } from "../../src/config/load";
import type { PortcullisConfig } from "../../src/config/schema";
import { explain } from "../../src/pipeline/explain";
import { verifyAssertion } from "../../src/origin/verify-assertion";
import { AUDIENCE, bearer, expectRejected, Fixture, ISSUER, makeKey, mint, originSaw, type Gate, type TestKey } from "../helpers";
import { boundToken, dpopConfig, dpopGate, dpopHeaders, makeProofKey, proof, type ProofKey, dpopFixture } from "../dpop";

/**
 * THREATS J4: the token's binding (`cnf.jkt`) against the proof key and the scheme; the DPoP modes per
 * issuer and per rule; what "the URL" is in route mode, ORIGIN_URL mode and behind a custom domain;
 * introspected bindings; what the origin learns; challenges and RFC 9728 metadata.
 */

let fixture: Fixture;
let issuerKey: TestKey;
let client: ProofKey;

beforeAll(async () => {
  ({ fixture, issuerKey, client } = await dpopFixture());
});

const reason = (gate: Gate) => gate.logs.filter((line) => line.event === "decision").at(-1)?.reason;
const present = async (token: string, key: ProofKey = client, path = "/items/1", method = "GET", base = "https://api.test") =>
  dpopHeaders(token, await proof(key, { htm: method, htu: `${base}${path}`, token }));

async function refused(gate: Gate, response: Response, why: string, error = "invalid_token", status = 401) {
  const result = await expectRejected(gate, response, status, error);
  expect(reason(gate)).toBe(why);
  return result.challenge ?? "";
}

describe("T-J4 the token's binding and the scheme", () => {
  it("T-J4 cnf.jkt of another key than the proof's is 401 invalid_token in the DPoP challenge", async () => {
    const gate = dpopGate(fixture, dpopConfig(fixture));
    const token = await boundToken(issuerKey, await makeProofKey());
    const challenge = await refused(gate, await gate.request("/items/1", { headers: await present(token) }), "dpop_key_mismatch");
    expect(challenge).toBe('Bearer realm="test-api", scope="items:read", DPoP realm="test-api", algs="ES256 EdDSA RS256 PS256", error="invalid_token", error_description="The access token is invalid", scope="items:read"');
  });

  it("T-J4 cnf.jkt differing only in case or one character is refused", async () => {
    const gate = dpopGate(fixture, dpopConfig(fixture));
    const flipped = client.jkt[0] === "A" ? `B${client.jkt.slice(1)}` : `A${client.jkt.slice(1)}`;
    for (const jkt of [client.jkt.toLowerCase() === client.jkt ? client.jkt.toUpperCase() : client.jkt.toLowerCase(), flipped]) {
      const token = await mint(issuerKey, { cnf: { jkt } });
      await refused(gate, await gate.request("/items/1", { headers: await present(token) }), "dpop_key_mismatch");
    }
  });

  it("T-J4 a cnf with jkt and an unknown member, or a jkt that is not a SHA-256 thumbprint, is refused as unknown", async () => {
    const gate = dpopGate(fixture, dpopConfig(fixture));
    for (const cnf of [{ jkt: client.jkt, kid: "k" }, { jkt: client.jkt.slice(1) }, { jkt: `${client.jkt}=` }, { jkt: 42 }, {}]) {
      const token = await mint(issuerKey, { cnf });
      await refused(gate, await gate.request("/items/1", { headers: await present(token) }), "token_sender_constrained");
    }
  });

  it("T-J4 a DPoP-bound token presented as Bearer is refused, in every mode (with or without a DPoP header)", async () => {
    for (const mode of ["allowed", "required", "disabled"] as const) {
      const gate = dpopGate(fixture, dpopConfig(fixture, { mode }));
      const token = await boundToken(issuerKey, client);
      const { dpop } = await present(token);
      await refused(gate, await gate.request("/items/1", { headers: bearer(token) }), mode === "disabled" ? "token_sender_constrained" : "dpop_bound_token_as_bearer");
      await refused(gate, await gate.request("/items/1", { headers: { ...bearer(token), dpop: dpop! } }), mode === "disabled" ? "token_sender_constrained" : "dpop_bound_token_as_bearer");
    }
  });

  it("T-J4 report-only (issuer or rule) never relaxes the sender constraint: a bound token as Bearer, a bad or replayed proof stay 401", async () => {
    const configs = [
      dpopConfig(fixture, { mode: "required" }, { report_only: true }),
      dpopConfig(fixture, { mode: "required" }, {}, { routes: [{ path: "/items/**", scopes: ["items:read"], report_only: true }] }),
    ];
    for (const config of configs) {
      const gate = dpopGate(fixture, config);
      const token = await boundToken(issuerKey, client);
      await refused(gate, await gate.request("/items/1", { headers: bearer(token) }), "dpop_bound_token_as_bearer");
      await refused(gate, await gate.request("/items/1", { headers: await present(token, client, "/items/2") }), "dpop_proof_htu_mismatch", "invalid_dpop_proof");
      await refused(gate, await gate.request("/items/1", { headers: await present(token, await makeProofKey()) }), "dpop_key_mismatch");
      const headers = await present(token);
      await originSaw(await gate.request("/items/1", { headers }));
      await refused(gate, await gate.request("/items/1", { headers }), "dpop_proof_replayed", "invalid_dpop_proof");
    }
  });

  it("T-J4 a bearer token (no cnf) with the DPoP scheme and a valid proof is refused by default", async () => {
    const gate = dpopGate(fixture, dpopConfig(fixture));
    const token = await mint(issuerKey);
    const challenge = await refused(gate, await gate.request("/items/1", { headers: await present(token) }), "token_not_dpop_bound");
    expect(challenge).toContain('DPoP realm="test-api", algs="ES256 EdDSA RS256 PS256", error="invalid_token"');
  });

  it("T-J4 with unbound_tokens = allow it passes (the proof still checked and used once), and the origin is told no binding", async () => {
    const gate = dpopGate(fixture, dpopConfig(fixture, { mode: "allowed", unbound_tokens: "allow" }));
    const token = await mint(issuerKey);
    const headers = await present(token);
    const seen = await originSaw(await gate.request("/items/1", { headers }));
    expect(seen.headers["x-auth-cnf-method"]).toBeUndefined();
    expect(seen.headers["x-auth-sub"]).toBe("user-123");
    await refused(gate, await gate.request("/items/1", { headers }), "dpop_proof_replayed", "invalid_dpop_proof");
    await refused(gate, await gate.request("/items/2", { headers: await present(token) }), "dpop_proof_htu_mismatch", "invalid_dpop_proof");
  });

  it("T-J4 a bearer token as Bearer passes in mode allowed, is 401 dpop_required in mode required", async () => {
    await originSaw(await dpopGate(fixture, dpopConfig(fixture)).request("/items/1", { headers: bearer(await mint(issuerKey)) }));
    const gate = dpopGate(fixture, dpopConfig(fixture, { mode: "required" }));
    const challenge = await refused(gate, await gate.request("/items/1", { headers: bearer(await mint(issuerKey)) }), "dpop_required");
    // Every token must be DPoP-bound: only the DPoP challenge, carrying the error.
    expect(challenge).toBe('DPoP realm="test-api", algs="ES256 EdDSA RS256 PS256", error="invalid_token", error_description="The access token is invalid", scope="items:read"');
    await originSaw(await gate.request("/items/1", { headers: await present(await boundToken(issuerKey, client)) }));
  });

  it("T-J4 mode required refuses an unbound token with the DPoP scheme too", async () => {
    const gate = dpopGate(fixture, dpopConfig(fixture, { mode: "required" }));
    await refused(gate, await gate.request("/items/1", { headers: await present(await mint(issuerKey)) }), "token_not_dpop_bound");
  });

  it("T-J4 the DPoP scheme to an issuer with DPoP disabled (another issuer enables it) is refused", async () => {
    const other = await makeKey("ES256");
    const otherFixture = new Fixture();
    await otherFixture.serveJwks({ keys: [other.publicJwk] });
    const config = dpopConfig(fixture, { mode: "disabled" });
    config.issuers.push({ issuer: "https://other.test/", audiences: [AUDIENCE], jwks_uri: otherFixture.jwksUri, algorithms: ["ES256"], dpop: { mode: "allowed" } });
    const gate = dpopGate(fixture, config);
    await refused(gate, await gate.request("/items/1", { headers: await present(await mint(issuerKey)) }), "dpop_not_enabled");
    await originSaw(await gate.request("/items/1", { headers: await present(await mint(other, { iss: "https://other.test/", cnf: { jkt: client.jkt } })) }));
  });

  it("T-J4 with DPoP off everywhere the DPoP scheme is another scheme, as before: no token", async () => {
    const gate = dpopGate(fixture, dpopConfig(fixture, { mode: "disabled" }));
    const response = await gate.request("/items/1", { headers: await present(await boundToken(issuerKey, client)) });
    await expectRejected(gate, response, 401);
    expect(reason(gate)).toBe("token_missing");
    expect(response.headers.get("www-authenticate")).toBe('Bearer realm="test-api", scope="items:read"');
  });

  it("T-J4 a verified-token cache hit is bound per request: a fresh proof by the key passes, another key's proof is refused", async () => {
    const gate = dpopGate(fixture, dpopConfig(fixture));
    const token = await boundToken(issuerKey, client);
    await originSaw(await gate.request("/items/1", { headers: await present(token) }));
    await originSaw(await gate.request("/items/1", { headers: await present(token) }));
    expect(gate.logs.filter((line) => line.event === "decision").map((line) => line.via)).toContain("jwt_cached");
    await refused(gate, await gate.request("/items/1", { headers: await present(token, await makeProofKey()) }), "dpop_key_mismatch");
    await refused(gate, await gate.request("/items/1", { headers: bearer(token) }), "dpop_bound_token_as_bearer");
  });
});

describe("T-J4 DPoP mode per rule", () => {
  const ruled = (mode: "allowed" | "disabled", rule: "required" | "disabled" | "allowed") =>
    dpopConfig(fixture, { mode }, {}, {
      routes: [
        { path: "/items/**", methods: ["GET"], scopes: ["items:read"] },
        { path: "/admin/**", scopes: ["items:read"], dpop: rule },
      ],
    });

  it("T-J4 a rule requiring DPoP refuses Bearer there and only there", async () => {
    const gate = dpopGate(fixture, ruled("allowed", "required"));
    await originSaw(await gate.request("/items/1", { headers: bearer(await mint(issuerKey)) }));
    await refused(gate, await gate.request("/admin/1", { headers: bearer(await mint(issuerKey)) }), "dpop_required");
    await originSaw(await gate.request("/admin/1", { headers: await present(await boundToken(issuerKey, client), client, "/admin/1") }));
  });

  it("T-J4 a rule disabling DPoP refuses DPoP-bound tokens there", async () => {
    const gate = dpopGate(fixture, ruled("allowed", "disabled"));
    await refused(gate, await gate.request("/admin/1", { headers: await present(await boundToken(issuerKey, client), client, "/admin/1") }), "token_sender_constrained");
    await originSaw(await gate.request("/items/1", { headers: await present(await boundToken(issuerKey, client)) }));
  });

  it("T-J4 a rule enabling DPoP for an issuer that has it disabled accepts bound tokens there only", async () => {
    const gate = dpopGate(fixture, ruled("disabled", "allowed"));
    await originSaw(await gate.request("/admin/1", { headers: await present(await boundToken(issuerKey, client), client, "/admin/1") }));
    await refused(gate, await gate.request("/items/1", { headers: await present(await boundToken(issuerKey, client)) }), "token_sender_constrained");
    await refused(gate, await gate.request("/items/1", { headers: await present(await mint(issuerKey)) }), "dpop_not_enabled");
  });
});

describe("T-J2 the URL htu must name, per deployment mode", () => {
  it("T-J2 ORIGIN_URL mode: the URL the client called, never ORIGIN_URL's", async () => {
    const gate = dpopGate(fixture, dpopConfig(fixture));
    await originSaw(await gate.request("/items/1", { headers: await present(await boundToken(issuerKey, client)) }));
    const token = await boundToken(issuerKey, client);
    await refused(gate, await gate.request("/items/1", { headers: await present(token, client, "/items/1", "GET", inject("originUrl")) }), "dpop_proof_htu_mismatch", "invalid_dpop_proof");
  });

  it("T-J2 route mode (no ORIGIN_URL): the request's own URL", async () => {
    const gate = dpopGate(fixture, dpopConfig(fixture), { origin: null });
    const base = inject("originUrl");
    const token = await boundToken(issuerKey, client);
    await originSaw(await gate.request(`${base}/items/1`, { headers: await present(token, client, "/items/1", "GET", base) }));
    const other = await boundToken(issuerKey, client);
    await refused(gate, await gate.request(`${base}/items/1`, { headers: await present(other) }), "dpop_proof_htu_mismatch", "invalid_dpop_proof");
  });

  it("T-J2 behind a custom domain: the custom domain's URL, not workers.dev's or the origin's", async () => {
    const gate = dpopGate(fixture, dpopConfig(fixture));
    const custom = "https://api.acme.example";
    await originSaw(await gate.request(`${custom}/items/1`, { headers: await present(await boundToken(issuerKey, client), client, "/items/1", "GET", custom) }));
    for (const base of ["https://portcullis.acme.workers.dev", "https://api.test", inject("originUrl")]) {
      const token = await boundToken(issuerKey, client);
      await refused(gate, await gate.request(`${custom}/items/1`, { headers: await present(token, client, "/items/1", "GET", base) }), "dpop_proof_htu_mismatch", "invalid_dpop_proof");
    }
  });
});

describe("T-J4 bindings from introspection (RFC 9449 section 6.2)", () => {
  const answer = (extra: Record<string, unknown>) => ({ active: true, iss: ISSUER, aud: AUDIENCE, sub: "user-9", client_id: "app-1", scope: "items:read", exp: Math.floor(Date.now() / 1000) + 3600, ...extra });
  const introspecting = async (answers: Record<string, unknown>) => {
    const f = new Fixture();
    await f.serveJwks({ keys: [issuerKey.publicJwk] });
    await f.serveIntrospection(Object.fromEntries(Object.entries(answers).map(([token, body]) => [token, { body }])));
    const config = dpopConfig(f, { mode: "allowed" }, { introspection: { endpoint: f.introspectionEndpoint, client_id: "gate", client_secret: "SECRET" } });
    return dpopGate(f, config, { env: { SECRET: "s" } });
  };

  it("T-J4 an opaque token whose answer has cnf.jkt (token_type DPoP) needs a proof by that key", async () => {
    const gate = await introspecting({ "opaque-dpop-1": answer({ token_type: "DPoP", cnf: { jkt: client.jkt } }) });
    const seen = await originSaw(await gate.request("/items/1", { headers: await present("opaque-dpop-1") }));
    expect(seen.headers["x-auth-cnf-jkt"]).toBe(client.jkt);
    await refused(gate, await gate.request("/items/1", { headers: bearer("opaque-dpop-1") }), "dpop_bound_token_as_bearer");
    await refused(gate, await gate.request("/items/1", { headers: await present("opaque-dpop-1", await makeProofKey()) }), "dpop_key_mismatch");
  });

  it("T-J4 token_type DPoP without cnf.jkt is still refused as not a bearer token", async () => {
    const gate = await introspecting({ "opaque-dpop-2": answer({ token_type: "DPoP" }) });
    await refused(gate, await gate.request("/items/1", { headers: bearer("opaque-dpop-2") }), "token_type_not_bearer");
  });
});

describe("T-J4 what the origin learns", () => {
  it("T-J4 identity headers name the binding; client copies are removed on every path", async () => {
    const gate = dpopGate(fixture, dpopConfig(fixture));
    const forged = { "x-auth-cnf-method": "dpop", "x-auth-cnf-jkt": "forged", "X-Auth-Cnf-X5t-S256": "forged" };
    const bearerSeen = await originSaw(await gate.request("/items/1", { headers: { ...bearer(await mint(issuerKey)), ...forged } }));
    expect(bearerSeen.headers["x-auth-cnf-method"]).toBeUndefined();
    expect(bearerSeen.headers["x-auth-cnf-jkt"]).toBeUndefined();
    expect(bearerSeen.headers["x-auth-cnf-x5t-s256"]).toBeUndefined();
    const publicSeen = await originSaw(await gate.request("/public/x", { headers: forged }));
    expect(publicSeen.headers["x-auth-cnf-jkt"]).toBeUndefined();
    const token = await boundToken(issuerKey, client);
    const seen = await originSaw(await gate.request("/items/1", { headers: { ...(await present(token)), ...forged } }));
    expect(seen.headers["x-auth-cnf-method"]).toBe("dpop");
    expect(seen.headers["x-auth-cnf-jkt"]).toBe(client.jkt);
    expect(seen.headers["x-auth-cnf-x5t-s256"]).toBeUndefined();
  });

  it("T-J4 the signed assertion carries the binding and verifyAssertion exposes it", async () => {
    const config = dpopConfig(fixture, { mode: "allowed" }, {}, { forward: { assertion: { issuer: "https://gate.test", audience: "example-origin", signing_keys: "ASSERTION_KEYS" } } });
    const gate = dpopGate(fixture, config, { env: { ASSERTION_KEYS: inject("assertionPrivateJwk") } });
    const seen = await originSaw(await gate.request("/items/1", { headers: await present(await boundToken(issuerKey, client)) }));
    const { d: _d, ...pub } = JSON.parse(inject("assertionPrivateJwk")) as JWK;
    const keys = createLocalJWKSet({ keys: [{ ...pub, alg: "EdDSA" }] });
    const headers = new Headers(seen.headers as Record<string, string>);
    const verified = await verifyAssertion({ method: "GET", url: "https://origin.test/items/1", headers }, { issuer: "https://gate.test", audience: "example-origin", keys });
    expect(verified.sender).toEqual({ jkt: client.jkt });
    const plain = await originSaw(await gate.request("/items/1", { headers: bearer(await mint(issuerKey)) }));
    const unbound = await verifyAssertion({ method: "GET", url: "https://origin.test/items/1", headers: new Headers(plain.headers as Record<string, string>) }, { issuer: "https://gate.test", audience: "example-origin", keys });
    expect(unbound.sender).toBeUndefined();
  });
});

describe("T-J4 challenges and RFC 9728 metadata, exactly as configured", () => {
  const metadataOf = async (config: PortcullisConfig) => {
    const gate = dpopGate(fixture, { ...config, resource_metadata: { resource: "https://api.test", authorization_servers: ["https://issuer.test/"] } });
    return (await (await gate.request("/.well-known/oauth-protected-resource")).json()) as Record<string, unknown>;
  };

  it("T-J4 no credentials: a bare Bearer and a bare DPoP challenge with the algorithms", async () => {
    const gate = dpopGate(fixture, dpopConfig(fixture, { mode: "allowed", algorithms: ["ES256", "EdDSA"] }));
    const response = await gate.request("/items/1");
    await expectRejected(gate, response, 401);
    expect(response.headers.get("www-authenticate")).toBe('Bearer realm="test-api", scope="items:read", DPoP realm="test-api", algs="ES256 EdDSA", scope="items:read"');
  });

  it("T-J4 a Bearer-scheme refusal carries its error in the Bearer challenge, the DPoP one bare", async () => {
    const gate = dpopGate(fixture, dpopConfig(fixture, { mode: "allowed", algorithms: ["ES256"] }));
    const response = await gate.request("/items/1", { headers: bearer(await mint(issuerKey, { aud: "other" })) });
    const { challenge } = await expectRejected(gate, response, 401, "invalid_token");
    expect(challenge).toBe('Bearer realm="test-api", error="invalid_token", error_description="The access token is invalid", scope="items:read", DPoP realm="test-api", algs="ES256", scope="items:read"');
  });

  it("T-J4 a DPoP-scheme 403 (insufficient scope) carries its error in the DPoP challenge", async () => {
    const gate = dpopGate(fixture, dpopConfig(fixture, { mode: "allowed", algorithms: ["ES256"] }));
    const token = await boundToken(issuerKey, client, { scope: "items:read" });
    const { challenge } = await expectRejected(gate, await gate.request("/items/1", { method: "POST", headers: await present(token, client, "/items/1", "POST") }), 403, "insufficient_scope");
    expect(challenge).toContain('DPoP realm="test-api", algs="ES256", error="insufficient_scope"');
    expect(challenge).toMatch(/^Bearer realm="test-api"(, scope="[^"]+")?, DPoP/);
  });

  it("T-J4 metadata: DPoP off -> no DPoP members; allowed -> algorithms and required false; required -> true; mTLS only when enabled", async () => {
    const off = await metadataOf(dpopConfig(fixture, { mode: "disabled" }));
    expect(off).not.toHaveProperty("dpop_signing_alg_values_supported");
    expect(off).not.toHaveProperty("dpop_bound_access_tokens_required");
    expect(off).not.toHaveProperty("tls_client_certificate_bound_access_tokens");
    expect(await metadataOf(dpopConfig(fixture, { mode: "allowed", algorithms: ["ES256", "PS256"] }))).toMatchObject({ dpop_signing_alg_values_supported: ["ES256", "PS256"], dpop_bound_access_tokens_required: false });
    expect(await metadataOf(dpopConfig(fixture, { mode: "required", algorithms: ["EdDSA"] }))).toMatchObject({ dpop_signing_alg_values_supported: ["EdDSA"], dpop_bound_access_tokens_required: true });
    expect(await metadataOf(dpopConfig(fixture, { mode: "disabled" }, { mtls_bound_tokens: true }))).toMatchObject({ tls_client_certificate_bound_access_tokens: true });
    const relaxed = dpopConfig(fixture, { mode: "required" });
    relaxed.routes = [...relaxed.routes, { path: "/legacy/**", dpop: "allowed" }];
    expect(await metadataOf(relaxed)).toMatchObject({ dpop_bound_access_tokens_required: false });
  });
});

describe("T-J4 explain makes the sender checks that need no proof, as the gate does", () => {
  it("T-J4 explain: a bound token as Bearer is refused; with the DPoP scheme the proof is listed as not checked", async () => {
    const parsed = parseConfig(dpopConfig(fixture));
    if (!parsed.ok) throw new Error(JSON.stringify(parsed.issues));
    const token = await boundToken(issuerKey, client);
    expect(explain(parsed.config, { method: "GET", url: "https://api.test/items/1", token })).toMatchObject({ decision: "deny", status: 401, reason: "dpop_bound_token_as_bearer" });
    const headers = await present(token);
    const viaDpop = explain(parsed.config, { method: "GET", url: "https://api.test/items/1", headers });
    expect(viaDpop).toMatchObject({ decision: "allow" });
    expect(viaDpop.token!.not_checked.join(" ")).toContain("DPoP proof");
    const unbound = explain(parsed.config, { method: "GET", url: "https://api.test/items/1", headers: await present(await mint(issuerKey)) });
    expect(unbound).toMatchObject({ decision: "deny", reason: "token_not_dpop_bound" });
  });
});
