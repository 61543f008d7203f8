import { base64url, SignJWT } from "jose";
import { beforeAll, describe, expect, it } from "vitest";
import { bearer, expectRejected, Fixture, mint, originSaw, type Gate, type TestKey } from "../helpers";
import { boundToken, dpopConfig, dpopGate, dpopHeaders, makeProofKey, proof, URL_OF, type ProofKey, dpopFixture } from "../dpop";

/**
 * DPoP proofs attacked from the client's side (THREATS J1, J2): every malformed, mis-typed, mis-signed or
 * mis-bound proof is 401 with a DPoP challenge, and nothing reaches the origin.
 */

let fixture: Fixture;
let issuerKey: TestKey;
let client: ProofKey;
let gate: Gate;

beforeAll(async () => {
  ({ fixture, issuerKey, client } = await dpopFixture("ES256"));
  gate = dpopGate(fixture, dpopConfig(fixture, { mode: "allowed", algorithms: ["ES256", "PS256", "EdDSA"] }));
});

const reason = (g: Gate) => g.logs.filter((line) => line.event === "decision").at(-1)?.reason;
const send = (path: string, headers: Record<string, string>, method = "GET") => gate.request(path, { method, headers });

/** A 401 with the DPoP challenge carrying `error` (and the Bearer challenge bare), nothing forwarded. */
async function expectProofRefused(response: Response, error = "invalid_dpop_proof", why?: string) {
  const { challenge } = await expectRejected(gate, response, 401, error);
  expect(challenge).toMatch(new RegExp(`DPoP realm="test-api", algs="ES256 PS256 EdDSA", error="${error}"`));
  expect(challenge).toMatch(/^Bearer realm="test-api"(, scope="[^"]+")?, DPoP /);
  if (why) expect(reason(gate)).toBe(why);
}

describe("T-J1 the DPoP proof itself", () => {
  it("T-J1 a valid proof with a bound token passes, and the origin learns the binding", async () => {
    const token = await boundToken(issuerKey, client);
    const response = await send("/items/1", dpopHeaders(token, await proof(client, { htm: "GET", htu: URL_OF("/items/1"), token })));
    const seen = await originSaw(response);
    expect(seen.headers["x-auth-cnf-method"]).toBe("dpop");
    expect(seen.headers["x-auth-cnf-jkt"]).toBe(client.jkt);
    expect(seen.headers.authorization).toBeUndefined();
    expect(seen.headers.dpop).toBeUndefined();
  });

  it("T-J1 the DPoP scheme without a DPoP header is refused", async () => {
    const token = await boundToken(issuerKey, client);
    await expectProofRefused(await send("/items/1", { authorization: `DPoP ${token}` }), "invalid_dpop_proof", "dpop_proof_missing");
  });

  it("T-J1 two DPoP headers are refused, even when both are valid", async () => {
    const token = await boundToken(issuerKey, client);
    const headers = new Headers({ authorization: `DPoP ${token}` });
    headers.append("dpop", await proof(client, { htm: "GET", htu: URL_OF("/items/1"), token }));
    headers.append("dpop", await proof(client, { htm: "GET", htu: URL_OF("/items/1"), token }));
    await expectProofRefused(await gate.request("/items/1", { headers }), "invalid_dpop_proof", "dpop_proof_multiple");
  });

  it.each([
    ["an empty header", ""],
    ["not a JWT", "not-a-jwt"],
    ["two segments", "eyJhbGciOiJFUzI1NiJ9.e30"],
    ["an unsecured JWT (empty signature)", `${base64url.encode('{"alg":"none","typ":"dpop+jwt"}')}.${base64url.encode("{}")}.`],
    ["a JWE (five segments)", "a.b.c.d.e"],
    ["a header that is not JSON", `${base64url.encode("nope")}.${base64url.encode("{}")}.c2ln`],
  ])("T-J1 %s is refused", async (_label, value) => {
    const token = await boundToken(issuerKey, client);
    await expectProofRefused(await send("/items/1", dpopHeaders(token, value)));
  });

  it.each([
    ["typ missing", { typ: undefined }, "dpop_proof_typ"],
    ["typ JWT", { typ: "JWT" }, "dpop_proof_typ"],
    ["typ at+jwt", { typ: "at+jwt" }, "dpop_proof_typ"],
    ["typ application/dpop+jwt", { typ: "application/dpop+jwt" }, "dpop_proof_typ"],
    ["jwk missing", { jwk: undefined }, "dpop_proof_jwk_missing"],
    ["jwk a string", { jwk: "key" }, "dpop_proof_jwk_missing"],
  ])("T-J1 %s is refused", async (_label, header, why) => {
    const token = await boundToken(issuerKey, client);
    const value = await proof(client, { htm: "GET", htu: URL_OF("/items/1"), token }, header);
    await expectProofRefused(await send("/items/1", dpopHeaders(token, value)), "invalid_dpop_proof", why);
  });

  it("T-J1 alg none is refused", async () => {
    const token = await boundToken(issuerKey, client);
    const encode = (value: unknown) => base64url.encode(JSON.stringify(value));
    const value = `${encode({ typ: "dpop+jwt", alg: "none", jwk: client.jwk })}.${encode({ jti: "x", htm: "GET", htu: URL_OF("/items/1"), iat: Math.floor(Date.now() / 1000) })}.c2ln`;
    await expectProofRefused(await send("/items/1", dpopHeaders(token, value)), "invalid_dpop_proof", "dpop_proof_alg_not_allowed");
  });

  it("T-J1 a symmetric HS256 proof (with an oct jwk) is refused", async () => {
    const token = await boundToken(issuerKey, client);
    const secret = crypto.getRandomValues(new Uint8Array(32));
    const value = await new SignJWT({ jti: crypto.randomUUID(), htm: "GET", htu: URL_OF("/items/1"), iat: Math.floor(Date.now() / 1000) })
      .setProtectedHeader({ typ: "dpop+jwt", alg: "HS256", jwk: { kty: "oct", k: base64url.encode(secret) } as never })
      .sign(secret);
    await expectProofRefused(await send("/items/1", dpopHeaders(token, value)), "invalid_dpop_proof", "dpop_proof_alg_not_allowed");
  });

  it("T-J1 an asymmetric algorithm outside the allow-list (RS256 here) is refused", async () => {
    const rsa = await makeProofKey("RS256");
    const token = await boundToken(issuerKey, rsa);
    const value = await proof(rsa, { htm: "GET", htu: URL_OF("/items/1"), token });
    await expectProofRefused(await send("/items/1", dpopHeaders(token, value)), "invalid_dpop_proof", "dpop_proof_alg_not_allowed");
  });

  it("T-J1 an allowed asymmetric algorithm other than ES256 (PS256, EdDSA) passes", async () => {
    for (const alg of ["PS256", "EdDSA"] as const) {
      const key = await makeProofKey(alg);
      const token = await boundToken(issuerKey, key);
      await originSaw(await send("/items/1", dpopHeaders(token, await proof(key, { htm: "GET", htu: URL_OF("/items/1"), token }))));
    }
  });

  it("T-J1 a jwk with private members is refused, whether the key is EC (d) or symmetric (k)", async () => {
    const token = await boundToken(issuerKey, client);
    for (const extra of [{ d: "AAAA" }, { k: "AAAA" }, { p: "AAAA" }]) {
      const value = await proof(client, { htm: "GET", htu: URL_OF("/items/1"), token }, { jwk: { ...client.jwk, ...extra } });
      await expectProofRefused(await send("/items/1", dpopHeaders(token, value)), "invalid_dpop_proof", "dpop_proof_jwk_private");
    }
  });

  it("T-J1 a proof signed by another key than its jwk is refused (bad signature)", async () => {
    const other = await makeProofKey("ES256");
    const token = await boundToken(issuerKey, client);
    const value = await proof({ ...other, jwk: client.jwk, jkt: client.jkt }, { htm: "GET", htu: URL_OF("/items/1"), token });
    await expectProofRefused(await send("/items/1", dpopHeaders(token, value)), "invalid_dpop_proof", "dpop_proof_signature_invalid");
  });

  it("T-J1 a proof whose payload was altered after signing is refused", async () => {
    const token = await boundToken(issuerKey, client);
    const [head, , signature] = (await proof(client, { htm: "GET", htu: URL_OF("/items/1"), token })).split(".");
    const altered = base64url.encode(JSON.stringify({ jti: "x", htm: "POST", htu: URL_OF("/items/1"), iat: Math.floor(Date.now() / 1000) }));
    await expectProofRefused(await send("/items/1", dpopHeaders(token, `${head}.${altered}.${signature}`)), "invalid_dpop_proof", "dpop_proof_signature_invalid");
  });

  it("T-J1 a proof without jti is refused", async () => {
    const token = await boundToken(issuerKey, client);
    await expectProofRefused(await send("/items/1", dpopHeaders(token, await proof(client, { htm: "GET", htu: URL_OF("/items/1"), token, jti: null as unknown as string }))), "invalid_dpop_proof", "dpop_proof_jti");
  });
});

describe("T-J2 what the proof is bound to: method, URL, time, token", () => {
  it.each([
    ["htm of another method", { htm: "POST" }],
    ["htm in lower case", { htm: "get" }],
    ["htm missing", { htm: null }],
  ])("T-J2 %s is refused", async (_label, claims) => {
    const token = await boundToken(issuerKey, client);
    const value = await proof(client, { htm: "GET", htu: URL_OF("/items/1"), token, ...(claims as object) });
    await expectProofRefused(await send("/items/1", dpopHeaders(token, value)), "invalid_dpop_proof", "dpop_proof_htm_mismatch");
  });

  it.each([
    ["with a query string", "https://api.test/items/1?x=1"],
    ["with an empty query", "https://api.test/items/1?"],
    ["with a fragment", "https://api.test/items/1#frag"],
    ["of another path", "https://api.test/items/2"],
    ["of a prefix of the path", "https://api.test/items"],
    ["with a trailing slash", "https://api.test/items/1/"],
    ["of another host", "https://evil.test/items/1"],
    ["of a sub-domain", "https://x.api.test/items/1"],
    ["of the origin the gate forwards to", "http://127.0.0.1/items/1"],
    ["with http instead of https", "http://api.test/items/1"],
    ["with another port", "https://api.test:8443/items/1"],
    ["with user info", "https://user@api.test/items/1"],
    ["relative", "/items/1"],
    ["not a URL", "items"],
    ["with an encoded slash", "https://api.test/items%2F1"],
    ["a number", 42],
    ["missing", null],
  ])("T-J2 htu %s is refused", async (_label, htu) => {
    const token = await boundToken(issuerKey, client);
    const value = await proof(client, { htm: "GET", htu: htu as string, token });
    await expectProofRefused(await send("/items/1", dpopHeaders(token, value)), "invalid_dpop_proof", "dpop_proof_htu_mismatch");
  });

  it("T-J2 the request's query string is not part of htu: a proof without it passes a request with one", async () => {
    const token = await boundToken(issuerKey, client);
    await originSaw(await send("/items/1?page=2", dpopHeaders(token, await proof(client, { htm: "GET", htu: URL_OF("/items/1"), token }))));
  });

  it.each([
    ["upper-case host", "https://API.TEST/items/1"],
    ["default port", "https://api.test:443/items/1"],
    ["a trailing dot on the host", "https://api.test./items/1"],
    ["an escaped unreserved character", "https://api.test/items/%31"],
    ["a dot segment", "https://api.test/items/x/../1"],
  ])("T-J2 an equivalent spelling of the URL (%s) passes: compared in the canonical form the gate routes on", async (_label, htu) => {
    const token = await boundToken(issuerKey, client);
    await originSaw(await send("/items/1", dpopHeaders(token, await proof(client, { htm: "GET", htu, token }))));
  });

  it("T-J2 a non-canonical request path is matched against htu after canonicalization (either spelling on either side)", async () => {
    const token = await boundToken(issuerKey, client);
    await originSaw(await send("/items/%61b", dpopHeaders(token, await proof(client, { htm: "GET", htu: URL_OF("/items/ab"), token }))));
    const other = await boundToken(issuerKey, client);
    await expectProofRefused(await send("/items/%61b", dpopHeaders(other, await proof(client, { htm: "GET", htu: URL_OF("/items/%61c"), token: other }))), "invalid_dpop_proof", "dpop_proof_htu_mismatch");
  });

  it("T-J2 iat outside the window (300 s + 30 s tolerance) is refused, in the past and in the future; inside passes", async () => {
    const now = Math.floor(Date.now() / 1000);
    for (const [iat, ok] of [[now - 331, false], [now + 331, false], [now - 320, true], [now + 320, true]] as const) {
      const token = await boundToken(issuerKey, client);
      const response = await send("/items/1", dpopHeaders(token, await proof(client, { htm: "GET", htu: URL_OF("/items/1"), token, iat })));
      if (ok) await originSaw(response);
      else await expectProofRefused(response, "invalid_dpop_proof", "dpop_proof_iat_outside_window");
    }
  });

  it("T-J2 iat missing or not a number is refused", async () => {
    for (const iat of [null, "1700000000"]) {
      const token = await boundToken(issuerKey, client);
      await expectProofRefused(await send("/items/1", dpopHeaders(token, await proof(client, { htm: "GET", htu: URL_OF("/items/1"), token, iat: iat as unknown as number }))));
    }
  });

  it("T-J2 an expired proof (its own exp) is refused", async () => {
    const token = await boundToken(issuerKey, client);
    const value = await proof(client, { htm: "GET", htu: URL_OF("/items/1"), token, exp: Math.floor(Date.now() / 1000) - 120 });
    await expectProofRefused(await send("/items/1", dpopHeaders(token, value)), "invalid_dpop_proof", "dpop_proof_expired");
  });

  it("T-J2 ath missing is refused", async () => {
    const token = await boundToken(issuerKey, client);
    await expectProofRefused(await send("/items/1", dpopHeaders(token, await proof(client, { htm: "GET", htu: URL_OF("/items/1"), ath: null }))), "invalid_dpop_proof", "dpop_proof_ath_missing");
  });

  it("T-J2 ath of another token, of the token in standard base64, or padded is refused", async () => {
    const token = await boundToken(issuerKey, client);
    const other = await boundToken(issuerKey, client);
    const digest = new Uint8Array(await crypto.subtle.digest("SHA-256", new TextEncoder().encode(token)));
    const standard = btoa(String.fromCharCode(...digest));
    for (const ath of [undefined, standard, `${base64url.encode(digest)}=`]) {
      const value = await proof(client, ath === undefined ? { htm: "GET", htu: URL_OF("/items/1"), token: other } : { htm: "GET", htu: URL_OF("/items/1"), ath });
      if (ath === standard && !/[+/=]/.test(standard)) continue; // identical to base64url for this digest: not a different spelling
      await expectProofRefused(await send("/items/1", dpopHeaders(token, value)), "invalid_dpop_proof", "dpop_proof_ath_mismatch");
    }
  });

  it("T-J2 a proof for one request does not authorize another method on the same URL", async () => {
    const token = await boundToken(issuerKey, client, { scope: "items:read items:write" });
    const value = await proof(client, { htm: "GET", htu: URL_OF("/items/1"), token });
    await expectProofRefused(await send("/items/1", dpopHeaders(token, value), "DELETE"), "invalid_dpop_proof", "dpop_proof_htm_mismatch");
  });

  it("T-J2 a Bearer token beside a stray DPoP header is not a DPoP presentation: an unbound token passes as Bearer, the proof is not forwarded", async () => {
    const token = await mint(issuerKey);
    const seen = await originSaw(await send("/items/1", { ...bearer(token), dpop: await proof(client, { htm: "GET", htu: URL_OF("/items/1"), token }) }));
    expect(seen.headers.dpop).toBeUndefined();
    expect(seen.headers["x-auth-cnf-method"]).toBeUndefined();
  });
});
