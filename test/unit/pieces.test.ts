import { base64url, decodeProtectedHeader, type JWK } from "jose";
import { describe, expect, it } from "vitest";
import { bearerChallenge } from "../../src/errors/challenge";
import { GateError } from "../../src/errors/errors";
import { metadataUrl } from "../../src/pipeline/metadata";
import { extractBearer } from "../../src/extract/bearer";
import { encodeHeaderValue, stripControlledHeaders } from "../../src/forward/headers";
import { fetchOrigin, originUrl } from "../../src/forward/origin";
import { safeKid } from "../../src/lib/log";
import { claimAt } from "../../src/lib/claim-path";
import { grantedScopes } from "../../src/policy/scopes";
import { isCanonicalBase64url } from "../../src/validate/jws";
import { keyFitsAlgorithm, unusableReason } from "../../src/validate/keys";

const options = { maxLength: 100, allowQuery: false };
const extract = (headers: Record<string, string>, url = "https://x/a", allowQuery = false) =>
  extractBearer(new Request(url, { headers }), { ...options, allowQuery });
const outcome = (run: () => unknown) => {
  try {
    return run() ?? "none";
  } catch (error) {
    return error instanceof GateError ? `${error.code}:${error.reason}` : "crash";
  }
};

describe("bearer extraction (RFC 6750 2.1, 2.3)", () => {
  it("reads exactly one b64token after `Bearer ` (scheme case-insensitive)", () => {
    expect(extract({ authorization: "Bearer abc.DEF-_~+/==" })).toEqual({ token: "abc.DEF-_~+/==", source: "header" });
    expect(extract({ authorization: "bEaReR t" })).toEqual({ token: "t", source: "header" });
  });

  it.each([
    ["Bearer", "invalid_request:malformed_credentials"],
    ["Bearer  t", "invalid_request:malformed_credentials"],
    ["Bearer t=x", "invalid_request:malformed_credentials"],
    ["Bearer t, Bearer u", "invalid_request:multiple_credentials"],
    ["Basic x, Bearer u", "invalid_request:multiple_credentials"],
    [`Bearer ${"a".repeat(101)}`, "invalid_token:token_too_large"],
    ["Basic dXNlcg==", "none"],
    ["Bearerx t", "none"],
    ["Digest username=\"a\", realm=\"b\"", "none"],
  ])("%s -> %s", (authorization, expected) => {
    expect(outcome(() => extract({ authorization }))).toEqual(expected);
  });

  it("query tokens only when enabled; never two methods", () => {
    expect(outcome(() => extract({}, "https://x/a?access_token=t"))).toBe("none");
    expect(extract({}, "https://x/a?access_token=t", true)).toEqual({ token: "t", source: "query" });
    expect(outcome(() => extract({ authorization: "Bearer t" }, "https://x/a?access_token=t"))).toBe("invalid_request:multiple_methods");
    expect(outcome(() => extract({}, "https://x/a?access_token=t&access_token=u", true))).toBe("invalid_request:multiple_methods");
  });
});

describe("strict base64url (RFC 7515 2)", () => {
  it("accepts canonical encodings, refuses padding, other alphabets, bad lengths and stray bits", () => {
    const bytes = new Uint8Array([0xfb, 0xff, 0x01]);
    for (let n = 0; n <= 3; n++) expect(isCanonicalBase64url(base64url.encode(bytes.slice(0, n)))).toBe(true);
    for (const bad of ["+/", "ab=", "a", "abcde", "AB", "ABC", " AA", "A\nA"]) expect(isCanonicalBase64url(bad)).toBe(false);
    expect(isCanonicalBase64url("AA")).toBe(true); // 0x00
    expect(isCanonicalBase64url("AQ")).toBe(true); // 0x01 (low bits zero)
  });

  it("is needed: jose alone decodes a header with stray trailing bits", () => {
    let pad = "";
    while (base64url.encode(JSON.stringify({ alg: "ES256", pad })).length % 4 === 0) pad += "x";
    const header = base64url.encode(JSON.stringify({ alg: "ES256", pad }));
    const alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
    const remainder = header.length % 4;
    expect(remainder).not.toBe(0);
    const tweaked = header.slice(0, -1) + alphabet[alphabet.indexOf(header.at(-1)!) | 1];
    expect(tweaked).not.toBe(header);
    expect(decodeProtectedHeader(`${tweaked}.e30.AA`)).toEqual({ alg: "ES256", pad });
    expect(isCanonicalBase64url(tweaked)).toBe(false);
  });
});

describe("key policy", () => {
  const ec = { kty: "EC", crv: "P-256", x: "AA", y: "AA" };
  it.each([
    [{ kty: "oct", k: "AA" }, "symmetric_key_in_jwks"],
    [{ ...ec, d: "AA" }, "private_material"],
    [{ ...ec, use: "enc" }, "not_for_signatures"],
    [{ ...ec, key_ops: ["sign"] }, "no_verify_op"],
    [{ ...ec, key_ops: "verify" }, "no_verify_op"],
    [{ ...ec, crv: "P-192" }, "unsupported_curve"],
    [{ kty: "OKP", crv: "X25519", x: "AA" }, "unsupported_curve"],
    [{ kty: "RSA", n: base64url.encode(new Uint8Array(128).fill(0xff)), e: "AQAB" }, "weak_rsa"],
    [{ kty: "RSA", n: base64url.encode(new Uint8Array(256).fill(0xff)), e: "AQ" }, "weak_rsa"],
    [{ kty: "RSA", n: base64url.encode(new Uint8Array(256).fill(0xff)), e: "AQAA" }, "weak_rsa"],
    [{ kty: "RSA", n: base64url.encode(new Uint8Array(256).fill(0xff)), e: "AQAB" }, undefined],
    [{ ...ec, use: "sig", key_ops: ["verify"] }, undefined],
  ])("%j -> %s", (jwk, reason) => {
    expect(unusableReason(jwk as JWK)).toBe(reason);
  });

  it("binds algorithms to kty, crv and the key's own alg", () => {
    expect(keyFitsAlgorithm(ec, "ES256")).toBe(true);
    expect(keyFitsAlgorithm(ec, "ES384")).toBe(false);
    expect(keyFitsAlgorithm(ec, "RS256")).toBe(false);
    expect(keyFitsAlgorithm({ ...ec, alg: "ES384" }, "ES256")).toBe(false);
    expect(keyFitsAlgorithm({ kty: "RSA", alg: "RS256" }, "PS256")).toBe(false);
    expect(keyFitsAlgorithm({ kty: "RSA" }, "PS512")).toBe(true);
    expect(keyFitsAlgorithm({ kty: "OKP", crv: "Ed25519", alg: "EdDSA" }, "Ed25519")).toBe(true);
    expect(keyFitsAlgorithm({ kty: "RSA" }, "HS256")).toBe(false);
  });
});

describe("scopes (RFC 6749 3.3)", () => {
  it("merges scope and scp by default, whole tokens, case-sensitive", () => {
    expect([...grantedScopes({ scope: "a b  c", scp: ["d", 5, "A"] })].sort()).toEqual(["A", "a", "b", "c", "d"]);
  });

  it("reads configured sources with prefixes, dotted paths, and skips junk", () => {
    const sources = [
      { claim: "permissions", prefix: "" },
      { claim: "realm_access.roles", prefix: "role:" },
    ];
    const claims = { scope: "ignored", permissions: ["read:items", "bad value", 'q"'], realm_access: { roles: ["admin", 7] } };
    expect([...grantedScopes(claims, sources)].sort()).toEqual(["read:items", "role:admin"]);
  });
});

describe("claim headers", () => {
  it("strips the namespace case-insensitively with _ as -, and rerouting headers", () => {
    const headers = new Headers({ "X-Auth-Sub": "a", x_auth_scope: "b", "X-AUTH_ISSUER": "c", "x-authz": "keep", "x-http-method-override": "DELETE", "x-original-url": "/a" });
    stripControlledHeaders(headers, "x-auth-");
    expect([...headers.keys()]).toEqual(["x-authz"]);
  });

  it("strips hop-by-hop headers, those the client lists in Connection (never Upgrade), the gate's own, and Authorization when asked", () => {
    const client = {
      connection: "keep-alive, X-Secret-Hop, upgrade",
      "keep-alive": "timeout=5",
      te: "trailers",
      "x-secret-hop": "1",
      upgrade: "websocket",
      "X-Portcullis_Assertion": "forged",
      authorization: "Bearer t",
      accept: "*/*",
    };
    const stripped = new Headers(client);
    stripControlledHeaders(stripped, "x-auth-", { own: ["x-portcullis-assertion", undefined], authorization: true });
    expect([...stripped.keys()]).toEqual(["accept", "upgrade"]);
    const kept = new Headers(client);
    stripControlledHeaders(kept, "x-auth-", { own: ["x-portcullis-assertion"] });
    expect([...kept.keys()]).toEqual(["accept", "authorization", "upgrade"]);
  });

  it.each([
    ["plain", "plain"],
    [42, "42"],
    [true, "true"],
    ["a\r\nb", '"a\\r\\nb"'],
    ["é", '"\\u00e9"'],
    [{ a: 1 }, '{"a":1}'],
    [[1, "x"], '[1,"x"]'],
    [" padded ", '" padded "'],
    ["x".repeat(65), undefined],
    [null, "null"],
    [Number.NaN, undefined],
  ])("claim header: %j -> %j", (value, expected) => {
    expect(encodeHeaderValue(value, "claim", 64)).toBe(expected);
  });

  it("reads dotted paths through own properties only", () => {
    const claims = JSON.parse('{"a":{"b":"c"},"__proto__":{"x":"own"}}');
    expect(claimAt(claims, "a.b")).toBe("c");
    expect(claimAt(claims, "__proto__.x")).toBe("own");
    expect(claimAt({}, "constructor.name")).toBeUndefined();
    expect(claimAt({ a: "s" }, "a.length")).toBeUndefined();
    expect(claimAt({ a: [1] }, "a.0")).toBeUndefined();
  });
});

describe("challenges and URLs", () => {
  it("builds RFC 6750 challenges with escaped quoted-strings", () => {
    expect(bearerChallenge({ realm: "r" })).toBe('Bearer realm="r"');
    const scope = new GateError("insufficient_scope", "x", { scope: ["a", "b"] });
    expect(bearerChallenge({ realm: "r", resourceMetadata: "https://m" }, scope)).toBe(
      'Bearer realm="r", error="insufficient_scope", error_description="The access token does not grant the required scope", scope="a b", resource_metadata="https://m"',
    );
  });

  it("places RFC 9728 metadata between host and path", () => {
    expect(metadataUrl("https://api.test").href).toBe("https://api.test/.well-known/oauth-protected-resource");
    expect(metadataUrl("https://api.test/v1").href).toBe("https://api.test/.well-known/oauth-protected-resource/v1");
  });

  it("bounds the wait for the origin: 502 when it fails (even synchronously), 504 when it is slow, else its response", async () => {
    const request = new Request("https://origin.test/x");
    const reasonOf = (promise: Promise<unknown>) => promise.then(() => "answered", (error: GateError) => `${error.status} ${error.reason}`);
    expect(await reasonOf(fetchOrigin(request, 1_000, () => Promise.reject(new TypeError("refused"))))).toBe("502 origin_unreachable");
    const throwsAtOnce = (() => {
      throw new TypeError("broken binding");
    }) as unknown as typeof fetch;
    expect(await reasonOf(fetchOrigin(request, 1_000, throwsAtOnce))).toBe("502 origin_unreachable");
    expect(await reasonOf(fetchOrigin(request, 50, () => new Promise(() => {})))).toBe("504 origin_timeout");
    const answer = new Response("ok");
    expect(await fetchOrigin(request, 50, async () => answer)).toBe(answer);
  });

  it("builds the origin URL from the canonical path, never the client's", () => {
    const client = new URL("https://api.test/x/../y?q=1");
    expect(originUrl(client.href, "/y", "?q=1", new URL("http://origin:8080"))).toBe("http://origin:8080/y?q=1");
    expect(originUrl(client.href, "/y", "", undefined)).toBe("https://api.test/y");
  });

  it("logs only plain kids", () => {
    expect(safeKid("key-1.a_b:c")).toBe("key-1.a_b:c");
    expect(safeKid("../../etc")).toBe("(unprintable)");
    expect(safeKid(undefined)).toBeUndefined();
    expect(safeKid(7)).toBe("(unprintable)");
  });
});
