import { base64url, exportSPKI, generateKeyPair, importJWK, SignJWT } from "jose";
import { describe, expect, it } from "vitest";
import { asAlgorithm, AUDIENCE, baseConfig, bearer, expectRejected, Fixture, ISSUER, makeGate, makeKey, mint, nowSeconds, setup, signRaw } from "../helpers";

/** Threat catalogue section A: token header and algorithm. Every case asserts nothing reached the origin. */

const enc = (value: unknown) => base64url.encode(JSON.stringify(value));
const claims = () => ({ iss: ISSUER, aud: AUDIENCE, sub: "attacker", exp: nowSeconds() + 300, iat: nowSeconds(), scope: "items:read admin" });

/** Re-signs the signing input of `token` with raw bytes; used to forge signature encodings. */
function withSignature(token: string, signature: Uint8Array | string): string {
  const [header, payload] = token.split(".");
  return `${header}.${payload}.${typeof signature === "string" ? signature : base64url.encode(signature)}`;
}

describe("A: token header and algorithm", () => {
  it.each(["none", "None", "NONE", "nOnE"])("T-A1 alg %s is refused, with empty or any signature", async (alg) => {
    const { key, gate } = await setup();
    const unsigned = `${enc({ alg, typ: "at+jwt", kid: key.kid })}.${enc(claims())}`;
    for (const token of [`${unsigned}.`, `${unsigned}.${base64url.encode("sig")}`]) {
      const response = await gate.request("/items/1", { headers: bearer(token) });
      await expectRejected(gate, response, 401, "invalid_token");
    }
  });

  it("T-A2 HS256 signed with the RSA public key (PEM, DER, JWK JSON) as HMAC secret is refused", async () => {
    const { key, gate } = await setup(undefined, "RS256");
    const publicKey = (await importJWK(key.publicJwk, "RS256")) as CryptoKey;
    const pem = await exportSPKI(publicKey);
    const der = new Uint8Array((await crypto.subtle.exportKey("spki", publicKey)) as ArrayBuffer);
    const secrets = [new TextEncoder().encode(pem), der, new TextEncoder().encode(JSON.stringify(key.publicJwk))];
    for (const secret of secrets) {
      const token = await new SignJWT(claims()).setProtectedHeader({ alg: "HS256", typ: "at+jwt", kid: key.kid }).sign(secret);
      const response = await gate.request("/items/1", { headers: bearer(token) });
      await expectRejected(gate, response, 401, "invalid_token");
    }
    expect(gate.logs.filter((l) => l.reason === "alg_not_allowed")).toHaveLength(3);
  });

  it("T-A3 a key without alg only verifies algorithms its kty allows, and only from the allow-list", async () => {
    const fixture = new Fixture();
    const rsa = await makeKey("RS256", "rsa-no-alg");
    const { alg: _dropped, ...rsaWithoutAlg } = rsa.publicJwk;
    const ec = await makeKey("ES256", "rsa-no-alg"); // attacker signs ES256 and names the RSA key's kid
    await fixture.serveJwks({ keys: [rsaWithoutAlg] });
    const gate = makeGate(fixture, baseConfig(fixture));
    const ecToken = await mint(ec);
    await expectRejected(gate, await gate.request("/items/1", { headers: bearer(ecToken) }), 401, "invalid_token");
    expect(gate.logs.at(-1)?.reason).toBe("key_alg_mismatch");
    // PS256 is allowed by an RSA key's kty, but not by this issuer's allow-list (RS256, ES256 only).
    const narrow = makeGate(fixture, baseConfig(fixture, { issuers: [{ issuer: ISSUER, audiences: [AUDIENCE], jwks_uri: fixture.jwksUri }] }));
    const ps = await mint(await asAlgorithm(rsa, "PS256"));
    await expectRejected(narrow, await narrow.request("/items/1", { headers: bearer(ps) }), 401, "invalid_token");
    expect(narrow.logs.at(-1)?.reason).toBe("alg_not_allowed");
  });

  it("T-A3 a key whose alg says RS256 never verifies a PS256 token, even when both are allowed", async () => {
    const fixture = new Fixture();
    const rsa = await makeKey("RS256");
    await fixture.serveJwks({ keys: [rsa.publicJwk] });
    const gate = makeGate(fixture, baseConfig(fixture));
    const token = await mint(await asAlgorithm(rsa, "PS256"));
    await expectRejected(gate, await gate.request("/items/1", { headers: bearer(token) }), 401, "invalid_token");
  });

  it("T-A4 an oct key in the JWKS never verifies, even with HS256 allowed for a configured secret", async () => {
    const fixture = new Fixture();
    const good = await makeKey("ES256");
    const k = base64url.encode(crypto.getRandomValues(new Uint8Array(32)));
    await fixture.serveJwks({ keys: [good.publicJwk, { kty: "oct", kid: "sym", k, alg: "HS256" }] });
    const token = await new SignJWT(claims()).setProtectedHeader({ alg: "HS256", typ: "at+jwt", kid: "sym" }).sign(base64url.decode(k));
    const gate = makeGate(fixture, baseConfig(fixture));
    await expectRejected(gate, await gate.request("/items/1", { headers: bearer(token) }), 401, "invalid_token");
    // With HS256 allowed, only the configured secret counts: the JWKS oct key is still ignored.
    const hmacConfig = baseConfig(fixture, {
      issuers: [{ issuer: ISSUER, audiences: [AUDIENCE], jwks_uri: fixture.jwksUri, algorithms: ["ES256", "HS256"], hmac_secret: "HMAC_TEST_SECRET" }],
    });
    const hmacGate = makeGate(fixture, hmacConfig, { env: { HMAC_TEST_SECRET: "a-configured-secret-of-at-least-32-bytes!" } });
    await expectRejected(hmacGate, await hmacGate.request("/items/1", { headers: bearer(token) }), 401);
  });

  it("T-A5 ECDSA signature r = s = 0 is refused", async () => {
    const { key, gate } = await setup();
    const token = withSignature(await mint(key), new Uint8Array(64));
    await expectRejected(gate, await gate.request("/items/1", { headers: bearer(token) }), 401, "invalid_token");
  });

  it("T-A6 ECDSA signature DER-encoded, or of the wrong length, is refused", async () => {
    const { key, gate } = await setup();
    const token = await mint(key);
    const raw = base64url.decode(token.split(".")[2]!);
    const integer = (bytes: Uint8Array) => {
      const trimmed = bytes.slice(bytes.findIndex((b) => b !== 0));
      const body = trimmed[0]! & 0x80 ? new Uint8Array([0, ...trimmed]) : trimmed;
      return [0x02, body.length, ...body];
    };
    const seq = [...integer(raw.slice(0, 32)), ...integer(raw.slice(32))];
    const der = new Uint8Array([0x30, seq.length, ...seq]);
    for (const signature of [der, raw.slice(0, 63), new Uint8Array([...raw, 0])]) {
      const response = await gate.request("/items/1", { headers: bearer(withSignature(token, signature)) });
      await expectRejected(gate, response, 401, "invalid_token");
    }
  });

  it("T-A7 a jwk header carrying the attacker's own key is ignored", async () => {
    const { key, gate } = await setup();
    const attacker = await makeKey("ES256", key.kid);
    const token = await mint(attacker, { scope: "admin" }, { jwk: attacker.publicJwk });
    await expectRejected(gate, await gate.request("/admin/x", { headers: bearer(token) }), 401, "invalid_token");
    expect(gate.logs.at(-1)?.reason).toBe("signature_invalid");
  });

  it("T-A8 jku and x5u headers are never fetched", async () => {
    const { key, gate, fixture } = await setup();
    const trap = new Fixture();
    const attacker = await makeKey("ES256", key.kid);
    await trap.serveJwks({ keys: [attacker.publicJwk] });
    for (const header of [{ jku: trap.jwksUri }, { x5u: trap.jwksUri }, { jku: trap.jwksUri, kid: "unknown" }]) {
      const token = await mint(attacker, {}, header);
      await expectRejected(gate, await gate.request("/items/1", { headers: bearer(token) }), 401, "invalid_token");
    }
    expect((await trap.stats()).jwksFetches).toBe(0);
    expect((await fixture.stats()).jwksFetches).toBeLessThanOrEqual(2);
  });

  it.each([
    ["path traversal", "../../dev/null"],
    ["SQL", "' OR 1=1; DROP TABLE keys; --"],
    ["URL", "https://attacker.example/jwks.json"],
    ["10 KB", "k".repeat(10_240)],
    ["CRLF", "a\r\nInjected: yes"],
  ])("T-A9 kid (%s) is a plain, bounded lookup miss and never logged raw", async (_label, kid) => {
    const { key, gate, fixture } = await setup((f) => baseConfig(f, { token: { max_length: 65_536 } }));
    const token = await mint(key, {}, { kid });
    await expectRejected(gate, await gate.request("/items/1", { headers: bearer(token) }), 401, "invalid_token");
    const logged = JSON.stringify(gate.logs);
    expect(logged).not.toContain(kid);
    expect((await fixture.stats()).jwksFetches).toBeLessThanOrEqual(2);
  });

  it("T-A10 crit naming an unknown parameter, or b64: false, is refused", async () => {
    const { key, gate } = await setup();
    const critical = await signRaw(key, { alg: "ES256", typ: "at+jwt", kid: key.kid, crit: ["x-unknown"], "x-unknown": true }, claims());
    await expectRejected(gate, await gate.request("/items/1", { headers: bearer(critical) }), 401, "invalid_token");
    const unencoded = await signRaw(key, { alg: "ES256", typ: "at+jwt", kid: key.kid, b64: false, crit: ["b64"] }, claims());
    await expectRejected(gate, await gate.request("/items/1", { headers: bearer(unencoded) }), 401, "invalid_token");
    const b64only = await signRaw(key, { alg: "ES256", typ: "at+jwt", kid: key.kid, b64: true }, claims());
    await expectRejected(gate, await gate.request("/items/1", { headers: bearer(b64only) }), 401, "invalid_token");
  });

  it("T-A11 an ID token (typ JWT, aud = client id, nonce) is not an access token", async () => {
    const { key, gate } = await setup();
    const idToken = await mint(key, { aud: "client-abc", nonce: "n-0S6_WzA2Mj" }, { typ: "JWT" });
    await expectRejected(gate, await gate.request("/items/1", { headers: bearer(idToken) }), 401, "invalid_token");
    expect(gate.logs.at(-1)?.reason).toBe("typ_not_allowed");
    // Even with the access-token audience, typ JWT is refused; and no typ at all is refused.
    for (const header of [{ typ: "JWT" }, { typ: undefined }]) {
      const token = await mint(key, {}, header);
      await expectRejected(gate, await gate.request("/items/1", { headers: bearer(token) }), 401, "invalid_token");
    }
  });

  it("T-A12 a JWE (5 parts) is refused without any decryption attempt; JWS JSON serialization is refused", async () => {
    const { gate } = await setup();
    const jwe = [enc({ alg: "RSA-OAEP-256", enc: "A256GCM" }), "AAAA", "AAAAAAAAAAAAAAAA", "AAAA", "AAAAAAAAAAAAAAAAAAAAAA"].join(".");
    await expectRejected(gate, await gate.request("/items/1", { headers: bearer(jwe) }), 401, "invalid_token");
    expect(gate.logs.at(-1)?.reason).toBe("jwe_not_accepted");
    const general = { payload: enc(claims()), signatures: [{ protected: enc({ alg: "ES256" }), signature: "AAAA" }] };
    // Base64url-wrapped JSON serialization is one segment: not a compact JWS.
    await expectRejected(gate, await gate.request("/items/1", { headers: bearer(enc(general)) }), 401, "invalid_token");
    // Raw JSON is not even RFC 6750 b64token syntax: refused at extraction as a malformed request.
    await expectRejected(gate, await gate.request("/items/1", { headers: { authorization: `Bearer ${JSON.stringify(general)}` } }), 400, "invalid_request");
  });

  it("T-A13 non-canonical base64url in any segment is refused", async () => {
    const { key, gate } = await setup();
    const token = await mint(key);
    const [h, p, s] = token.split(".") as [string, string, string];
    const lastBitsFlipped = (segment: string) => {
      const alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
      const remainder = segment.length % 4;
      if (remainder === 0) return undefined;
      const last = alphabet.indexOf(segment.at(-1)!);
      return segment.slice(0, -1) + alphabet[last | 1];
    };
    // The JSON segments are made to contain `-`/`_` so the standard-alphabet variants really differ.
    const variants = [
      `${h}.${p}.${s}=`,
      `${h}.${p}.${s.replace(/-/g, "+").replace(/_/g, "/")}`,
      `${h}.${p}.${s}/`,
      `${h}.${p}+.${s}`,
      ...[h, p, s].flatMap((segment, i) => {
        const flipped = lastBitsFlipped(segment);
        if (!flipped || flipped === segment) return [];
        const parts = [h, p, s];
        parts[i] = flipped;
        return [parts.join(".")];
      }),
      `${h}A.${p}.${s}`.length % 4 === 1 ? `${h}A.${p}.${s}` : `${h}AA.${p}.${s}`,
    ].filter((variant) => variant !== token);
    expect(variants.length).toBeGreaterThanOrEqual(5);
    for (const variant of variants) {
      await expectRejected(gate, await gate.request("/items/1", { headers: bearer(variant) }), 401, "invalid_token");
    }
    // `=` is allowed only at the very end of a b64token, and whitespace not at all: both are refused at
    // extraction (RFC 6750 2.1) as malformed requests, before any decoding.
    await expectRejected(gate, await gate.request("/items/1", { headers: bearer(`${h}=.${p}.${s}`) }), 400, "invalid_request");
    // Whitespace cannot be part of a b64token: refused at extraction (RFC 6750 2.1) before any decoding.
    const spaced = `${h.slice(0, 10)} ${h.slice(10)}.${p}.${s}`;
    await expectRejected(gate, await gate.request("/items/1", { headers: bearer(spaced) }), 400, "invalid_request");
  });
});

describe("A: control", () => {
  it("accepts the same well-formed token the negative cases start from", async () => {
    const { key, gate } = await setup();
    const response = await gate.request("/items/1", { headers: bearer(await mint(key)) });
    expect(response.status).toBe(200);
  });

  it.each(["RS256", "PS256", "ES256", "EdDSA"] as const)("accepts %s from the issuer's JWKS", async (alg) => {
    const { key, gate } = await setup(undefined, alg);
    expect((await gate.request("/items/1", { headers: bearer(await mint(key)) })).status).toBe(200);
  });

  it("rejects an RS256 token whose signature does not match", async () => {
    const { gate } = await setup(undefined, "RS256");
    const { privateKey } = await generateKeyPair("RS256");
    const other = await new SignJWT(claims()).setProtectedHeader({ alg: "RS256", typ: "at+jwt" }).sign(privateKey);
    await expectRejected(gate, await gate.request("/items/1", { headers: bearer(other) }), 401, "invalid_token");
  });
});
