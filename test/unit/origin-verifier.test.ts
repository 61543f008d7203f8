import { createLocalJWKSet } from "jose";
import { describe, expect, inject, it } from "vitest";
import { keyRing, mintAssertion, type AssertionConfig } from "../../src/forward/assertion";
import { AssertionError, verifyAssertion, type VerifyAssertionOptions } from "../../src/origin/verify-assertion";

/**
 * The origin verifier against assertions minted here with the gate's own `mintAssertion`: T-I8 (the raw
 * request target, byte for byte, in canonical form) and the host binding of T-I5.
 */

const CONFIG: AssertionConfig = {
  issuer: "https://gate.test",
  audience: "example-origin",
  signing_keys: "ASSERTION_KEYS",
  ttl: 30,
  header: "x-portcullis-assertion",
  jwks_path: "/.well-known/portcullis-keys.json",
};
const HOST = "api.example.test";

/** The headers of a request the gate forwarded to `https://origin.test<target>` (assertion included). */
async function forwarded(target: string, host: string | null = HOST): Promise<Headers> {
  const ring = await keyRing(inject("assertionPrivateJwk"));
  const headers = new Headers({ "x-auth-sub": "user-1", "x-forwarded-host": HOST, "x-forwarded-proto": "https" });
  const url = new URL(`https://origin.test${target}`);
  const token = await mintAssertion(ring, CONFIG, { method: "GET", url, host: host ?? (undefined as unknown as string), headers, headerPrefix: "x-auth-", now: Date.now() });
  headers.set(CONFIG.header, token);
  return headers;
}

async function options(extra: Partial<VerifyAssertionOptions> = {}): Promise<VerifyAssertionOptions> {
  const { publicKeys } = await keyRing(inject("assertionPrivateJwk"));
  return { issuer: CONFIG.issuer, audience: CONFIG.audience, keys: createLocalJWKSet({ keys: publicKeys }), ...extra };
}

const outcome = (promise: Promise<unknown>) => promise.then(() => "accepted", (error: unknown) => (error instanceof AssertionError ? error.code : String(error)));

/** The three ways a raw target reaches the verifier: `target` (Node `req.url`), `url`, or the request's own URL string. */
async function verifyEach(headers: Headers, raw: string): Promise<string[]> {
  return Promise.all([
    outcome(verifyAssertion({ method: "GET", url: "http://origin.test/a", headers }, await options({ target: raw }))),
    outcome(verifyAssertion({ method: "GET", url: "http://origin.test/a", headers }, await options({ url: `http://origin.test${raw}` }))),
    outcome(verifyAssertion({ method: "GET", url: `http://origin.test${raw}`, headers }, await options())),
  ]);
}

const NOT_CANONICAL: [raw: string, bound: string][] = [
  ["/x/../a", "/a"],
  ["/x/%2e%2e/a", "/a"],
  ["/x/%2E%2E/a", "/a"],
  ["/x/.%2E/a", "/a"],
  ["/./a", "/a"],
  ["/a/./", "/a/"],
  ["/a/.", "/a"],
  ["/a/%2e", "/a"],
  ["/x\\..\\a", "/a"],
  ["\\a", "/a"],
  ["/a%2Fb", "/a/b"],
  ["/a%2fb", "/a/b"],
  ["/a%5Cb", "/a/b"],
  ["/a%5cb", "/a/b"],
  ["/x/../a?q=1", "/a?q=1"],
];

const MISMATCHED: [raw: string, bound: string][] = [
  ["/A", "/a"],
  ["/a?", "/a"],
  ["/a/", "/a"],
  ["//a", "/a"],
  ["/%61", "/a"],
  ["/a?y=2&x=1", "/a?x=1&y=2"],
  ["/a?x=1&y=2&", "/a?x=1&y=2"],
  ["/a?x=1", "/a?x=%31"],
  ["/a#f", "/a"],
  ["*", "/a"],
];

describe("T-I8 the origin verifier compares the raw request target", () => {
  it.each(NOT_CANONICAL)("T-I8 raw target %s (assertion bound to %s) is refused as target_not_canonical", async (raw, bound) => {
    const headers = await forwarded(bound);
    expect(await verifyEach(headers, raw)).toEqual(["target_not_canonical", "target_not_canonical", "target_not_canonical"]);
  });

  it.each(MISMATCHED)("T-I8 raw target %s (assertion bound to %s) is refused as url_mismatch", async (raw, bound) => {
    const headers = await forwarded(bound);
    expect(await verifyEach(headers, raw)).toEqual(["url_mismatch", "url_mismatch", "url_mismatch"]);
  });

  it.each(["/a", "/a/", "/a?x=1&y=2", "/a?x=%2F&y=\\&z=..", "/a/b;c/%3A"])("T-I8 the exact target %s is accepted, in every form", async (raw) => {
    const headers = await forwarded(raw);
    expect(await verifyEach(headers, raw)).toEqual(["accepted", "accepted", "accepted"]);
  });

  it("T-I8 an absolute-form target is cut at its authority as text, never URL-parsed", async () => {
    const headers = await forwarded("/a");
    expect(await outcome(verifyAssertion({ method: "GET", url: "x", headers }, await options({ target: "http://origin.test/a" })))).toBe("accepted");
    expect(await outcome(verifyAssertion({ method: "GET", url: "x", headers }, await options({ target: "http://origin.test/x/../a" })))).toBe("target_not_canonical");
    expect(await outcome(verifyAssertion({ method: "GET", url: "x", headers }, await options({ target: "http://origin.test\\x\\..\\a" })))).toBe("target_not_canonical");
    expect(await outcome(verifyAssertion({ method: "GET", url: "x", headers }, await options({ target: "http://origin.test?" })))).toBe("url_mismatch");
  });

  it("T-I8 a Fetch Request has no raw target: its URL is already resolved, which is what a Worker routes on (documented)", async () => {
    const headers = await forwarded("/a");
    const request = new Request("https://origin.test/x/../a", { headers });
    expect(new URL(request.url).pathname).toBe("/a");
    expect(await outcome(verifyAssertion(request, await options()))).toBe("accepted");
  });
});

describe("T-I5 the assertion binds the host the gate matched", () => {
  it("T-I5 the verified host is returned; X-Forwarded-Host, which the gate always sends, must be there and equal it exactly", async () => {
    const headers = await forwarded("/a");
    const request = (forwardedHost: string | null) => {
      const copy = new Headers(headers);
      if (forwardedHost === null) copy.delete("x-forwarded-host");
      else copy.set("x-forwarded-host", forwardedHost);
      return { method: "GET", url: "https://origin.test/a", headers: copy };
    };
    await expect(verifyAssertion(request(HOST), await options())).resolves.toMatchObject({ host: HOST });
    // Removed on the way (a captured assertion replayed with another Host): not the request the gate sent.
    expect(await outcome(verifyAssertion(request(null), await options()))).toBe("host_mismatch");
    for (const spoofed of ["evil.test", "API.EXAMPLE.TEST", `${HOST}.`, `${HOST}:443`, `${HOST}, evil.test`, ""]) {
      expect(await outcome(verifyAssertion(request(spoofed), await options()))).toBe("host_mismatch");
    }
  });

  it("T-F1 a verifier set up with another header prefix than the gate's refuses, rather than check the wrong headers", async () => {
    // The gate's namespace is x-auth-; an origin reading x-user-* would otherwise accept a client's x-user-sub.
    const headers = await forwarded("/a");
    headers.set("x-user-sub", "admin");
    const request = { method: "GET", url: "https://origin.test/a", headers };
    expect(await outcome(verifyAssertion(request, await options({ headerPrefix: "x-user-" })))).toBe("header_prefix_mismatch");
    expect(await outcome(verifyAssertion(request, await options({ headerPrefix: "X-Auth-" })))).toBe("accepted");
  });

  it("T-F2 a method-override or rewrite header, which the gate strips, means the request was changed after it: refused", async () => {
    const headers = await forwarded("/a");
    for (const [name, value] of [
      ["x-http-method-override", "DELETE"],
      ["X-HTTP-Method", "DELETE"],
      ["x_method_override", "DELETE"],
      ["x-original-url", "/admin/drop"],
      ["X-Rewrite-URL", "/admin/drop"],
      ["x-original-uri", "/admin/drop"],
      ["x-forwarded-uri", "/admin/drop"],
      ["x-envoy-original-path", "/admin/drop"],
    ]) {
      const copy = new Headers(headers);
      copy.set(name!, value!);
      expect([name, await outcome(verifyAssertion({ method: "GET", url: "https://origin.test/a", headers: copy }, await options()))]).toEqual([name, "rerouting_header"]);
    }
    await expect(verifyAssertion({ method: "GET", url: "https://origin.test/a", headers }, await options())).resolves.toMatchObject({ host: HOST });
  });

  it("T-I5 an assertion without a host claim is invalid", async () => {
    const headers = await forwarded("/a", null);
    headers.delete("x-forwarded-host");
    expect(await outcome(verifyAssertion({ method: "GET", url: "https://origin.test/a", headers }, await options()))).toBe("invalid");
  });
});
