import { env } from "cloudflare:test";
import { createLocalJWKSet, decodeJwt, decodeProtectedHeader, exportJWK, generateKeyPair, type JWK } from "jose";
import { describe, expect, inject, it } from "vitest";
import type { PortcullisConfig } from "../../src/config/schema";
import { AssertionError, memoryReplayStore, verifyAssertion } from "../../src/origin/verify-assertion";
import { baseConfig, bearer, expectRejected, Fixture, makeGate, makeKey, mint, originSaw, setup, type TestKey } from "../helpers";

/** Issue 6: forwarding modes, streaming, WebSockets, origin failures, signed assertions, shared secret. */

const ASSERTION = { issuer: "https://gate.test", audience: "example-origin", signing_keys: "ASSERTION_KEYS" };
const signingEnv = () => ({ ASSERTION_KEYS: inject("assertionPrivateJwk") });

async function assertingGate(extra: Partial<PortcullisConfig["forward"]> = {}, options: { origin?: string; now?: () => number; keys?: string } = {}) {
  const fixture = new Fixture();
  const key = await makeKey("ES256");
  await fixture.serveJwks({ keys: [key.publicJwk] });
  const config = baseConfig(fixture, { forward: { assertion: ASSERTION, claim_headers: { "x-auth-email": "email" }, ...extra } });
  const gate = makeGate(fixture, config, {
    env: { ASSERTION_KEYS: options.keys ?? inject("assertionPrivateJwk") },
    ...(options.origin ? { origin: options.origin } : {}),
    ...(options.now ? { now: options.now } : {}),
  });
  return { fixture, key, gate };
}

const localKeys = async () => {
  const jwk = JSON.parse(inject("assertionPrivateJwk")) as JWK;
  const { d: _d, ...pub } = jwk;
  return createLocalJWKSet({ keys: [{ ...pub, alg: "EdDSA" }] });
};

/** Sends a raw request (as an attacker would) straight to the example origin. */
async function toExampleOrigin(path: string, headers: Record<string, string>) {
  const response = await fetch(`${inject("exampleOriginUrl")}${path}`, { headers });
  return { status: response.status, body: (await response.json()) as { ok: boolean; error?: string; sub?: string } };
}

async function capturedAssertion(key: TestKey, gate: Awaited<ReturnType<typeof assertingGate>>["gate"], path: string) {
  const seen = await originSaw(await gate.request(path, { headers: bearer(await mint(key, { email: "a@b.test" })) }));
  return seen.headers as Record<string, string>;
}

describe("forwarding modes", () => {
  it("ORIGIN_URL: scheme, host and port replaced; canonical path and query kept", async () => {
    const { key, gate } = await setup();
    const seen = await originSaw(await gate.request("/items/%61?x=1&y=%2F", { headers: bearer(await mint(key)) }));
    expect(seen.path).toBe("/items/a?x=1&y=%2F");
    expect(seen.headers.host).toBe(new URL(inject("originUrl")).host);
  });

  it("route mode (no ORIGIN_URL): the request continues to its own host", async () => {
    const fixture = new Fixture();
    const key = await makeKey("ES256");
    await fixture.serveJwks({ keys: [key.publicJwk] });
    const gate = makeGate(fixture, baseConfig(fixture), { origin: null });
    const seen = await originSaw(await gate.request(`${inject("originUrl")}/items/../items/1`, { headers: bearer(await mint(key)) }));
    expect(seen.path).toBe("/items/1");
  });

  it("service binding: forwarded to another Worker through forward.service", async () => {
    const { key, gate } = await setup((f) => baseConfig(f, { forward: { service: "ORIGIN_SERVICE" } }));
    const response = await gate.request("/items/1?q=2", { method: "POST", body: "hello", headers: { ...bearer(await mint(key, { scope: "items:write" })), "X-Auth-Sub": "forged" } });
    const seen = (await response.json()) as { via: string; url: string; headers: Record<string, string>; bodyBytes: number };
    expect(seen.via).toBe("service");
    expect(new URL(seen.url).pathname + new URL(seen.url).search).toBe("/items/1?q=2");
    expect(seen.headers["x-auth-sub"]).toBe("user-123");
    expect(seen.bodyBytes).toBe(5);
  });

  it("a configured service binding that is missing is a 500, never a fallback", async () => {
    const { key, gate } = await setup((f) => baseConfig(f, { forward: { service: "NO_SUCH_SERVICE" } }));
    const response = await gate.request("/items/1", { headers: bearer(await mint(key)) });
    expect(response.status).toBe(500);
    expect(await gate.fixture.originRequests()).toEqual([]);
    void env;
  });
});

describe("streaming", () => {
  it("downloads stream: the first bytes arrive before the origin has finished (64 MiB total)", async () => {
    const { key, gate } = await setup();
    const started = Date.now();
    const response = await gate.request("/public/__download?bytes=67108864&pause=1500", { headers: bearer(await mint(key)) });
    expect(response.status).toBe(200);
    expect(response.headers.get("x-origin-header")).toBe("kept");
    const reader = response.body!.getReader();
    const first = await reader.read();
    const firstAt = Date.now() - started;
    let total = first.value!.byteLength;
    for (;;) {
      const { done, value } = await reader.read();
      if (done) break;
      total += value.byteLength;
    }
    expect(total).toBe(67_108_864);
    expect(firstAt).toBeLessThan(1_200); // the origin paused 1.5 s after its first chunk
  });

  it("uploads stream: the origin sees the first chunk while the client still holds back the rest", async () => {
    const { key, fixture, gate } = await setup();
    let release!: () => void;
    const held = new Promise<void>((resolve) => (release = resolve));
    const chunk = new Uint8Array(65_536).fill(7);
    const body = new ReadableStream<Uint8Array>({
      async start(controller) {
        controller.enqueue(chunk);
        await held;
        for (let i = 0; i < 15; i++) controller.enqueue(chunk);
        controller.close();
      },
    });
    const pending = gate.request("/items/__upload", { method: "POST", body, headers: { ...bearer(await mint(key, { scope: "items:write" })) }, duplex: "half" } as RequestInit);
    let sawFirst = false;
    for (let i = 0; i < 100 && !sawFirst; i++) {
      await new Promise((resolve) => setTimeout(resolve, 20));
      sawFirst = (await fixture.stats()).uploadFirstChunk;
    }
    release();
    const response = await pending;
    expect(sawFirst).toBe(true);
    expect(await response.json()).toEqual({ bodyBytes: 16 * 65_536 });
  });

  it("WebSocket upgrades pass through after authorization, and only after it", async () => {
    const { key, gate } = await setup();
    await expectRejected(gate, await gate.request("/items/ws", { headers: { Upgrade: "websocket" } }), 401);
    const response = await gate.request("/items/ws", { headers: { ...bearer(await mint(key)), Upgrade: "websocket", "X-Auth-Sub": "forged" } });
    expect(response.status).toBe(101);
    const socket = response.webSocket!;
    socket.accept();
    const reply = new Promise<string>((resolve) => socket.addEventListener("message", (event) => resolve(String(event.data))));
    socket.send("hi");
    expect(await reply).toBe("echo:user-123:hi");
    socket.close();
  });

  it("T-F5 the origin's own responses (its 401s included) pass through untouched", async () => {
    const { key, gate } = await setup();
    const response = await gate.request("/items/__status?code=401", { headers: bearer(await mint(key)) });
    expect(response.status).toBe(401);
    expect(response.headers.get("www-authenticate")).toBe('Bearer realm="origin"');
    expect(await response.text()).toBe("origin says no");
  });
});

describe("signed assertion", () => {
  it("carries iss, aud, sub, client_id, scope, iat, exp <= 60 s, jti and the request binding", async () => {
    const { key, gate } = await assertingGate();
    const seen = await originSaw(await gate.request("/items/7?x=1", { headers: bearer(await mint(key, { email: "a@b.test" })) }));
    const token = seen.headers["x-portcullis-assertion"] as string;
    expect(decodeProtectedHeader(token)).toEqual({ alg: "EdDSA", kid: "assert-1", typ: "portcullis-assertion+jwt" });
    const claims = decodeJwt(token);
    expect(claims).toMatchObject({ iss: "https://gate.test", aud: "example-origin", sub: "user-123", client_id: "client-abc", scope: "items:read", htm: "GET" });
    expect(new URL(String(claims.htu)).pathname + new URL(String(claims.htu)).search).toBe("/items/7?x=1");
    expect(claims.hdrs).toEqual(["x-auth-client-id", "x-auth-email", "x-auth-issuer", "x-auth-scope", "x-auth-sub"]);
    expect(claims.exp! - claims.iat!).toBe(30);
    expect(typeof claims.jti).toBe("string");
  });

  it("binds the client's Content-Digest when present", async () => {
    const { key, gate } = await assertingGate();
    const digest = "sha-256=:X48E9qOokqqrvdts8nOJRJN3OWDUoyWxBf7kbu9DBPE=:";
    const seen = await originSaw(await gate.request("/items/1", { method: "POST", body: "{}", headers: { ...bearer(await mint(key, { scope: "items:write" })), "content-digest": digest } }));
    expect(decodeJwt(seen.headers["x-portcullis-assertion"] as string).cdg).toBe(digest);
  });

  it("client-sent assertion and shared-secret headers never reach the origin", async () => {
    const { key, gate } = await assertingGate({ shared_secret: { secret: "ORIGIN_SECRET" } });
    void key;
    const forged = { "x-portcullis-assertion": "forged.jwt.value", "X_Portcullis_Secret": "guess" };
    const fixture = new Fixture();
    const plain = makeGate(fixture, baseConfig(fixture, { forward: { assertion: ASSERTION, shared_secret: { secret: "ORIGIN_SECRET" } } }), {
      env: { ...signingEnv(), ORIGIN_SECRET: "the-real-secret" },
    });
    const seen = await originSaw(await plain.request("/public/x", { headers: forged }));
    expect(seen.headers["x-portcullis-assertion"]).not.toBe("forged.jwt.value");
    expect(seen.headers["x_portcullis_secret"]).toBeUndefined();
    expect(seen.headers["x-portcullis-secret"]).toBe("the-real-secret");
    void gate;
  });

  it("the example origin accepts the gate's request and rejects a missing, replayed, re-targeted or tampered one", async () => {
    const { key, gate } = await assertingGate({}, { origin: inject("exampleOriginUrl") });
    const response = await gate.request("/items/7", { headers: bearer(await mint(key, { email: "a@b.test" })) });
    expect(await response.json()).toEqual({ ok: true, path: "/items/7", sub: "user-123", client_id: "client-abc", scopes: ["items:read"] });

    // Capture what the gate sends (via the echo origin) and replay it at the example origin as an attacker.
    const echo = await assertingGate();
    const headers = await capturedAssertion(echo.key, echo.gate, "/items/7");
    const forwarded = Object.fromEntries(Object.entries(headers).filter(([name]) => name.startsWith("x-auth-") || name === "x-portcullis-assertion" || name === "x-forwarded-host"));
    expect(await toExampleOrigin("/items/7", {})).toEqual({ status: 401, body: { ok: false, error: "missing" } });
    const { "x-forwarded-host": _host, ...withoutHost } = forwarded;
    expect((await toExampleOrigin("/items/7", withoutHost)).body.error).toBe("host_mismatch");
    expect((await toExampleOrigin("/items/7", { ...forwarded, "x-http-method-override": "DELETE" })).body.error).toBe("rerouting_header");
    expect((await toExampleOrigin("/admin/7", forwarded)).body.error).toBe("url_mismatch");
    expect((await toExampleOrigin("/items/7", { ...forwarded, "x-auth-sub": "admin" })).body.error).toBe("headers_mismatch");
    expect((await toExampleOrigin("/items/7", { ...forwarded, "x-auth-role": "admin" })).body.error).toBe("headers_mismatch");
    expect((await toExampleOrigin("/items/7", forwarded)).status).toBe(200); // first use of the captured one
    expect((await toExampleOrigin("/items/7", forwarded)).body.error).toBe("replayed");
  });

  it("the example origin rejects an expired assertion", async () => {
    const past = Date.now() - 120_000;
    const { key, gate } = await assertingGate({}, { now: () => past });
    const token = await mint(key, { iat: Math.floor(past / 1000), exp: Math.floor(Date.now() / 1000) + 300 });
    const seen = await originSaw(await gate.request("/items/7", { headers: bearer(token) }));
    const forwarded = Object.fromEntries(Object.entries(seen.headers as Record<string, string>).filter(([name]) => name.startsWith("x-auth-") || name === "x-portcullis-assertion"));
    expect((await toExampleOrigin("/items/7", forwarded)).body.error).toBe("expired");
  });

  it("verifyAssertion: method binding, another audience or issuer, wrong keys", async () => {
    const { key, gate } = await assertingGate();
    const headers = new Headers((await capturedAssertion(key, gate, "/items/7")) as Record<string, string>);
    const keys = await localKeys();
    const request = (method: string) => ({ method, url: "https://origin.test/items/7", headers });
    await expect(verifyAssertion(request("GET"), { issuer: "https://gate.test", audience: "example-origin", keys })).resolves.toMatchObject({ sub: "user-123" });
    const code = (promise: Promise<unknown>) => promise.then(() => "accepted", (error: unknown) => (error instanceof AssertionError ? error.code : String(error)));
    expect(await code(verifyAssertion(request("DELETE"), { issuer: "https://gate.test", audience: "example-origin", keys }))).toBe("method_mismatch");
    expect(await code(verifyAssertion(request("GET"), { issuer: "https://gate.test", audience: "other-origin", keys }))).toBe("invalid");
    expect(await code(verifyAssertion(request("GET"), { issuer: "https://evil.test", audience: "example-origin", keys }))).toBe("invalid");
    const other = await generateKeyPair("EdDSA");
    const wrongKeys = createLocalJWKSet({ keys: [{ ...(await exportJWK(other.publicKey)), kid: "assert-1", alg: "EdDSA" }] });
    expect(await code(verifyAssertion(request("GET"), { issuer: "https://gate.test", audience: "example-origin", keys: wrongKeys }))).toBe("invalid");
    expect(await code(verifyAssertion(request("GET"), { issuer: "https://gate.test", audience: "example-origin", keys, matchOrigin: true }))).toBe("url_mismatch");
    const replay = memoryReplayStore();
    await verifyAssertion(request("GET"), { issuer: "https://gate.test", audience: "example-origin", keys, replay });
    expect(await code(verifyAssertion(request("GET"), { issuer: "https://gate.test", audience: "example-origin", keys, replay }))).toBe("replayed");
  });

  it("publishes every configured key at jwks_path (rotation: two keys during the overlap), first one signs", async () => {
    const next = await generateKeyPair("EdDSA", { extractable: true });
    const nextJwk = { ...(await exportJWK(next.privateKey)), kid: "assert-2" };
    const ring = JSON.stringify({ keys: [JSON.parse(inject("assertionPrivateJwk")), nextJwk] });
    const { key, gate } = await assertingGate({}, { keys: ring });
    const published = (await (await gate.request("/.well-known/portcullis-keys.json")).json()) as { keys: JWK[] };
    expect(published.keys.map((k) => k.kid)).toEqual(["assert-1", "assert-2"]);
    for (const k of published.keys) expect(k).not.toHaveProperty("d");
    const seen = await originSaw(await gate.request("/items/1", { headers: bearer(await mint(key)) }));
    expect(decodeProtectedHeader(seen.headers["x-portcullis-assertion"] as string).kid).toBe("assert-1");
    // The verifier accepts with the published set.
    const headers = new Headers(seen.headers as Record<string, string>);
    await expect(verifyAssertion({ method: "GET", url: "https://o/items/1", headers }, { issuer: "https://gate.test", audience: "example-origin", keys: createLocalJWKSet(published) })).resolves.toBeTruthy();
  });

  it("an ES256 signing key works too; a missing or invalid key is a 500 without forwarding", async () => {
    const ec = await generateKeyPair("ES256", { extractable: true });
    const { key, gate } = await assertingGate({}, { keys: JSON.stringify({ ...(await exportJWK(ec.privateKey)), kid: "ec-1" }) });
    const seen = await originSaw(await gate.request("/items/1", { headers: bearer(await mint(key)) }));
    expect(decodeProtectedHeader(seen.headers["x-portcullis-assertion"] as string).alg).toBe("ES256");
    for (const keys of ["", "not json", JSON.stringify({ kty: "RSA", n: "x", e: "AQAB", d: "y" })]) {
      const broken = await assertingGate({}, { keys });
      const response = await broken.gate.request("/items/1", { headers: bearer(await mint(broken.key)) });
      expect(response.status).toBe(500);
      expect(await response.text()).not.toContain("not json");
      expect(await broken.fixture.originRequests()).toEqual([]);
    }
  });
});
