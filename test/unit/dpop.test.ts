import { calculateJwkThumbprint, exportJWK, generateKeyPair, SignJWT } from "jose";
import { describe, expect, it } from "vitest";
import { parseConfig } from "../../src/config/load";
import { GateError } from "../../src/errors/errors";
import { extractBearer } from "../../src/extract/bearer";
import { hexToBase64url, sha256Base64url } from "../../src/lib/digest";
import { checkNonce, issueNonce } from "../../src/lib/nonce";
import { verifyProof } from "../../src/validate/dpop";

/** DPoP pieces on their own: vectors from the RFCs, extraction syntax, nonces, configuration. */

/** RFC 7638 section 3.1: the example RSA key and its SHA-256 thumbprint. */
const RFC7638_KEY = {
  kty: "RSA",
  n: "0vx7agoebGcQSuuPiLJXZptN9nndrQmbXEps2aiAFbWhM78LhWx4cbbfAAtVT86zwu1RK7aPFFxuhDR1L6tSoc_BJECPebWKRXjBZCiFV4n3oknjhMstn64tZ_2W-5JsGY4Hc5n9yBXArwl93lqt7_RN5w6Cf0h4QyQ5v-65YGjQR0_FDW2QvzqY368QQMicAtaSqzs8KJZgnYb9c7d0zgdAZHzu6qMQvRL5hajrn1n91CbOpbISD08qNLyrdkt-bFTWhAI4vMQFh6WeZu0fM4lFd2NcRwr3XPksINHaQ-G_xBniIqbw0Ls1jF44-csFCur-kEgU8awapJzKnqDKgw",
  e: "AQAB",
  alg: "RS256",
  kid: "2011-04-29",
};
const RFC7638_THUMBPRINT = "NzbLsXh8uDCcd-6MNwXF4W_7noWXFZAfHkxZsRGC9Xs";

const issuer = (dpop: Record<string, unknown> = {}) => {
  const parsed = parseConfig({ issuers: [{ issuer: "https://issuer.test/", audiences: ["a"], jwks_uri: "https://issuer.test/jwks", dpop: { mode: "allowed", ...dpop } }], routes: [{ path: "/**" }] });
  if (!parsed.ok) throw new Error(JSON.stringify(parsed.issues));
  return parsed.config.issuers[0]!;
};

describe("T-J4 RFC 7638 thumbprints (cnf.jkt)", () => {
  it("T-J4 the thumbprint of RFC 7638's example key is the RFC's value (optional members kid, alg ignored)", async () => {
    expect(await calculateJwkThumbprint(RFC7638_KEY, "sha256")).toBe(RFC7638_THUMBPRINT);
    const { alg: _alg, kid: _kid, ...bare } = RFC7638_KEY;
    expect(await calculateJwkThumbprint(bare, "sha256")).toBe(RFC7638_THUMBPRINT);
  });

  it("T-J4 verifyProof reports the RFC 7638 thumbprint of the proof's jwk, whatever optional members it has", async () => {
    const { publicKey, privateKey } = await generateKeyPair("ES256", { extractable: true });
    const jwk = await exportJWK(publicKey);
    const token = "token-value";
    const now = Date.now();
    for (const header of [jwk, { ...jwk, kid: "k1", use: "sig", alg: "ES256" }]) {
      const proofJwt = await new SignJWT({ jti: crypto.randomUUID(), htm: "GET", htu: "https://api.test/x", iat: Math.floor(now / 1000), ath: await sha256Base64url(token) })
        .setProtectedHeader({ typ: "dpop+jwt", alg: "ES256", jwk: header })
        .sign(privateKey);
      const verified = await verifyProof(proofJwt, issuer(), { method: "GET", sameTarget: (url) => url.href === "https://api.test/x", token, now }, () => undefined);
      expect(verified.jkt).toBe(await calculateJwkThumbprint(jwk));
      expect(verified.acceptableUntil).toBe((Math.floor(now / 1000) + 300 + 30) * 1000);
    }
  });
});

describe("T-J2 ath and the certificate fingerprint encodings", () => {
  it("T-J2 ath of RFC 9449 section 7.1's example token is the RFC's value", async () => {
    expect(await sha256Base64url("Kz~8mXK1EalYznwH-LC-1fBAo.4Ljp~zsPE_NeO.gxU")).toBe("fUHyO2r2Z3DZ53EsNrWBb0xWXoaNy59IiKCAqksmQEo");
  });

  it("T-J6 a hex SHA-256 fingerprint becomes the x5t#S256 base64url form; anything but 64 hex digits is none", () => {
    const empty = "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"; // SHA-256 of ""
    expect(hexToBase64url(empty)).toBe("47DEQpj8HBSa-_TImW-5JCeuQeRkm5NMpJWZG3hSuFU");
    expect(hexToBase64url(empty.toUpperCase())).toBe("47DEQpj8HBSa-_TImW-5JCeuQeRkm5NMpJWZG3hSuFU");
    for (const bad of ["", empty.slice(1), `${empty}0`, `${empty.slice(2)}zz`, "47DEQpj8HBSa-_TImW-5JCeuQeRkm5NMpJWZG3hSuFU", `${empty.slice(0, 62)}:5`]) expect(hexToBase64url(bad)).toBeUndefined();
  });
});

describe("T-J1 DPoP scheme syntax (RFC 9449 section 7.1), strict like Bearer", () => {
  const options = { maxLength: 4096, allowQuery: true, dpop: true };
  const PROOF = "eyJhIjoxfQ.eyJiIjoyfQ.c2ln";
  const outcome = (headers: Record<string, string>, url = "https://x/a") => {
    try {
      const token = extractBearer(new Request(url, { headers }), options);
      return token ? `${token.dpopProof === undefined ? "bearer" : "dpop"}:${token.token}` : "none";
    } catch (error) {
      return error instanceof GateError ? `${error.code}:${error.reason}` : "crash";
    }
  };

  it("T-J1 DPoP with one space, any case, and one proof reads the token", () => {
    for (const scheme of ["DPoP", "dpop", "DPOP"]) expect(outcome({ authorization: `${scheme} tok.en`, dpop: PROOF })).toBe("dpop:tok.en");
  });

  it("T-J1 DPoP followed by anything but one space is 400; DPoPx is another scheme", () => {
    for (const value of ["DPoP\ttok", "DPoP  tok", "DPoP", "DPoP "]) expect(outcome({ authorization: value, dpop: PROOF })).toBe("invalid_request:malformed_credentials");
    expect(outcome({ authorization: "DPoPx tok", dpop: PROOF })).toBe("none");
  });

  it("T-J1 the proof header: missing, repeated, too long, not a compact JWS", () => {
    expect(outcome({ authorization: "DPoP tok" })).toBe("invalid_dpop_proof:dpop_proof_missing");
    expect(outcome({ authorization: "DPoP tok", dpop: `${PROOF}, ${PROOF}` })).toBe("invalid_dpop_proof:dpop_proof_multiple");
    expect(outcome({ authorization: "DPoP tok", dpop: `${PROOF}${"a".repeat(5000)}` })).toBe("invalid_dpop_proof:dpop_proof_too_large");
    for (const proof of ["a.b", "a.b.c.d.e", "a.b.", "a+b.c.d", "a.b.c=", "a b.c.d"]) expect(outcome({ authorization: "DPoP tok", dpop: proof })).toBe("invalid_dpop_proof:dpop_proof_malformed");
  });

  it("T-J1 two credentials or two methods: Bearer and DPoP together, DPoP with a query token", () => {
    expect(outcome({ authorization: "Bearer a, DPoP b", dpop: PROOF })).toBe("invalid_request:multiple_credentials");
    expect(outcome({ authorization: "DPoP a, DPoP b", dpop: PROOF })).toBe("invalid_request:multiple_credentials");
    expect(outcome({ authorization: "DPoP a", dpop: PROOF }, "https://x/a?access_token=b")).toBe("invalid_request:multiple_methods");
  });

  it("T-J1 with DPoP off the scheme is no credential, as before", () => {
    expect(extractBearer(new Request("https://x/a", { headers: { authorization: "DPoP tok", dpop: PROOF } }), { maxLength: 100, allowQuery: false })).toBeUndefined();
  });
});

describe("T-J5 stateless nonces", () => {
  const secret = "s".repeat(32);
  it("T-J5 a nonce checks in its window and the next, not before or after, and only for its secret and context", async () => {
    const t = 1_800_000_000_000;
    const nonce = await issueNonce(secret, "ctx", 60, t);
    expect(await checkNonce(secret, "ctx", 60, t, nonce)).toBe(true);
    expect(await checkNonce(secret, "ctx", 60, t + 60_000, nonce)).toBe(true);
    expect(await checkNonce(secret, "ctx", 60, t + 120_000, nonce)).toBe(false);
    expect(await checkNonce(secret, "ctx", 60, t - 60_000, nonce)).toBe(false);
    expect(await checkNonce("t".repeat(32), "ctx", 60, t, nonce)).toBe(false);
    expect(await checkNonce(secret, "other", 60, t, nonce)).toBe(false);
    // Every holder of the secret issues the same nonce within a window.
    expect(await issueNonce(secret, "ctx", 60, t + 1_000)).toBe(nonce);
  });
});

describe("DPoP configuration", () => {
  const base = (issuerExtra: Record<string, unknown>, extra: Record<string, unknown> = {}) => ({
    issuers: [{ issuer: "https://issuer.test/", audiences: ["a"], jwks_uri: "https://issuer.test/jwks", ...issuerExtra }],
    routes: [{ path: "/**" }],
    ...extra,
  });
  const issuesOf = (raw: unknown) => {
    const result = parseConfig(raw);
    if (result.ok) throw new Error("expected the configuration to be rejected");
    return Object.fromEntries(result.issues.map((issue) => [issue.field, issue.message]));
  };

  it("defaults: DPoP disabled, mTLS off, the replay binding PORTCULLIS_DPOP", () => {
    const result = parseConfig(base({}));
    if (!result.ok) throw new Error(JSON.stringify(result.issues));
    expect(result.config.issuers[0]!.dpop).toEqual({ mode: "disabled", algorithms: ["ES256", "EdDSA", "RS256", "PS256"], iat_window: 300, unbound_tokens: "reject" });
    expect(result.config.issuers[0]!.mtls_bound_tokens).toBe(false);
    expect(result.config.dpop_replay_binding).toBe("PORTCULLIS_DPOP");
    expect(result.config.routes[0]).not.toHaveProperty("dpop");
  });

  it("names each bad DPoP field", () => {
    expect(issuesOf(base({ dpop: { mode: "on" } }))["issuers.0.dpop.mode"]).toMatch(/disabled, allowed or required/);
    expect(issuesOf(base({ dpop: { algorithms: ["HS256"] } }))["issuers.0.dpop.algorithms.0"]).toMatch(/asymmetric/);
    expect(issuesOf(base({ dpop: { algorithms: ["none"] } }))["issuers.0.dpop.algorithms.0"]).toMatch(/asymmetric/);
    expect(issuesOf(base({ dpop: { algorithms: [] } }))).toHaveProperty(["issuers.0.dpop.algorithms"]);
    expect(issuesOf(base({ dpop: { iat_window: 0 } }))).toHaveProperty(["issuers.0.dpop.iat_window"]);
    expect(issuesOf(base({ dpop: { iat_window: 7200 } }))).toHaveProperty(["issuers.0.dpop.iat_window"]);
    expect(issuesOf(base({ dpop: { nonce: { secret: "not a binding" } } }))).toHaveProperty(["issuers.0.dpop.nonce.secret"]);
    expect(issuesOf(base({ dpop: { nonce: { secret: "S", lifetime: 5 } } }))).toHaveProperty(["issuers.0.dpop.nonce.lifetime"]);
    expect(issuesOf(base({ dpop: { unbound: "allow" } }))["issuers.0.dpop.unbound"]).toMatch(/not a known field/);
    expect(issuesOf(base({ dpop: { mode: "required", unbound_tokens: "allow" } }))["issuers.0.dpop.unbound_tokens"]).toMatch(/required/);
    expect(issuesOf(base({ mtls_bound_tokens: "yes" }))).toHaveProperty(["issuers.0.mtls_bound_tokens"]);
    expect(issuesOf({ ...base({}), routes: [{ path: "/**", dpop: "maybe" }] })["routes.0.dpop"]).toMatch(/disabled, allowed or required/);
    expect(issuesOf(base({}, { dpop_replay_binding: "no-dashes" }))).toHaveProperty(["dpop_replay_binding"]);
  });
});
