import { inject } from "vitest";
import { describe, expect, it } from "vitest";
import { baseConfig, bearer, expectRejected, Fixture, makeGate, makeKey, mint, originSaw, setup, type Gate } from "../helpers";
import type { PortcullisConfig } from "../../src/config/schema";

/**
 * CORS preflights (I2). An explicit OPTIONS rule decides them like any request; otherwise a preflight is
 * authorized by the rule for the method it announces, must carry no body, and reaches the origin with the
 * CORS request headers only. Routes (baseConfig): /public/** public, GET /items/** items:read,
 * POST|DELETE /items/** items:write, /admin/** admin.
 */

const PREFLIGHT = { Origin: "https://app.example", "Access-Control-Request-Method": "GET" };
const lastReason = (gate: Gate) => gate.logs.filter((line) => line.event === "decision").at(-1)?.reason;
const withRoutes = (extra: NonNullable<PortcullisConfig["routes"]>, overrides: Partial<PortcullisConfig> = {}) => (fixture: Fixture) => {
  const base = baseConfig(fixture, overrides);
  return { ...base, routes: [...extra, ...base.routes] };
};

describe("T-I2 an explicit OPTIONS rule wins over preflight forwarding", () => {
  it("T-I2 an OPTIONS deny rule: every preflight 403 rule_denies, nothing at the origin", async () => {
    const { gate } = await setup(withRoutes([{ path: "/items/**", methods: ["OPTIONS"], access: "deny" }, { path: "/public/closed", methods: ["OPTIONS", "PUT"], access: "deny" }]));
    for (const method of ["GET", "POST", "DELETE", "PATCH"]) {
      for (const path of ["/items/1", "/items/a/b"]) {
        await expectRejected(gate, await gate.request(path, { method: "OPTIONS", headers: { ...PREFLIGHT, "Access-Control-Request-Method": method } }), 403, "access_denied");
        expect(lastReason(gate)).toBe("rule_denies");
      }
    }
    // A more specific deny inside a public tree, listing OPTIONS among other methods.
    await expectRejected(gate, await gate.request("/public/closed", { method: "OPTIONS", headers: PREFLIGHT }), 403, "access_denied");
    expect((await gate.request("/public/open", { method: "OPTIONS", headers: PREFLIGHT })).status).toBe(200);
  });

  it("T-I2 an OPTIONS public rule forwards the preflight whatever method it announces", async () => {
    const { gate } = await setup(withRoutes([{ path: "/items/**", methods: ["OPTIONS"], access: "public" }]));
    for (const method of ["GET", "PATCH", "PUT"]) {
      const seen = await originSaw(await gate.request("/items/1", { method: "OPTIONS", headers: { ...PREFLIGHT, "Access-Control-Request-Method": method } }));
      expect(seen.method).toBe("OPTIONS");
      expect(seen.headers["access-control-request-method"]).toBe(method);
    }
  });

  it("T-I2 an OPTIONS token rule: a preflight needs a token like any request", async () => {
    const { key, gate } = await setup(withRoutes([{ path: "/items/**", methods: ["OPTIONS"], scopes: ["items:read"] }]));
    const { challenge } = await expectRejected(gate, await gate.request("/items/1", { method: "OPTIONS", headers: PREFLIGHT }), 401);
    expect(challenge).toBe('Bearer realm="test-api", scope="items:read"');
    const seen = await originSaw(await gate.request("/items/1", { method: "OPTIONS", headers: { ...PREFLIGHT, ...bearer(await mint(key)) } }));
    expect(seen.headers["x-auth-sub"]).toBe("user-123");
  });

  it("T-I2 OPTIONS only through `*` is not explicit: the preflight is authorized by the announced method", async () => {
    const { gate } = await setup(withRoutes([{ path: "/locked/**", access: "deny" }, { path: "/locked/**", methods: ["GET"], access: "public" }]));
    expect((await gate.request("/locked/x", { method: "OPTIONS", headers: PREFLIGHT })).status).toBe(200);
    await expectRejected(gate, await gate.request("/locked/x", { method: "OPTIONS", headers: { ...PREFLIGHT, "Access-Control-Request-Method": "POST" } }), 403, "access_denied");
  });
});

describe("T-I2 a forwarded preflight carries no body and no credentials", () => {
  it("T-I2 a preflight with a body: 400 preflight_with_body, nothing at the origin", async () => {
    const { gate } = await setup();
    const bodies: RequestInit[] = [
      { body: "x" },
      { body: "" },
      { body: new Uint8Array(1024) },
      { body: new ReadableStream({ start: (c) => (c.enqueue(new Uint8Array([1])), c.close()) }), duplex: "half" } as RequestInit,
      { headers: { "content-length": "5" } },
      { headers: { "transfer-encoding": "chunked" } },
    ];
    for (const init of bodies) {
      const response = await gate.request("/items/1", { method: "OPTIONS", ...init, headers: { ...PREFLIGHT, ...(init.headers as Record<string, string>) } });
      await expectRejected(gate, response, 400, "invalid_request");
      expect(lastReason(gate)).toBe("preflight_with_body");
    }
    // `Content-Length: 0` and no body is a preflight.
    expect((await gate.request("/items/1", { method: "OPTIONS", headers: { ...PREFLIGHT, "content-length": "0" } })).status).toBe(200);
  });

  it("T-I2 only CORS request headers reach the origin: no Authorization, Cookie, DPoP, API keys, test tags", async () => {
    for (const authorization of ["strip", "forward"] as const) {
      const { gate } = await setup((f) => baseConfig(f, { forward: { authorization } }));
      const sent = {
        ...PREFLIGHT,
        "Access-Control-Request-Headers": "authorization, content-type",
        "Access-Control-Request-Private-Network": "true",
        Accept: "*/*",
        "Accept-Language": "de",
        Referer: "https://app.example/page",
        "Sec-Fetch-Mode": "cors",
        "Sec-Fetch-Site": "cross-site",
        Authorization: "Bearer not-even-checked",
        "Proxy-Authorization": "Basic dXNlcjpwYXNz",
        Cookie: "session=secret",
        DPoP: "eyJ.x.y",
        "X-Api-Key": "k",
        "Api-Key": "k",
        "X-Auth-Sub": "forged",
        "X-Forwarded-Host": "evil.example",
        "X-Custom": "anything",
      };
      const seen = await originSaw(await gate.request("/items/1", { method: "OPTIONS", headers: sent }));
      expect(seen.bodyBytes).toBe(0);
      expect(seen.headers).toMatchObject({
        origin: "https://app.example",
        "access-control-request-method": "GET",
        "access-control-request-headers": "authorization, content-type",
        "access-control-request-private-network": "true",
        accept: "*/*",
        "accept-language": "de",
        referer: "https://app.example/page",
        "sec-fetch-mode": "cors",
        "sec-fetch-site": "cross-site",
        "x-forwarded-host": "api.test", // set by the gate itself
      });
      for (const name of ["authorization", "proxy-authorization", "cookie", "dpop", "x-api-key", "api-key", "x-auth-sub", "x-custom", "x-test-ns", "x-test-request", "content-type"]) {
        expect([name, seen.headers[name]]).toEqual([name, undefined]);
      }
    }
  });

  it("T-I2 the gate's own origin headers are still added to a forwarded preflight (assertion)", async () => {
    const fixture = new Fixture();
    const key = await makeKey("ES256");
    await fixture.serveJwks({ keys: [key.publicJwk] });
    const config = baseConfig(fixture, { forward: { assertion: { issuer: "https://gate.test", audience: "example-origin", signing_keys: "ASSERTION_KEYS" } } });
    const gate = makeGate(fixture, config, { env: { ASSERTION_KEYS: inject("assertionPrivateJwk") } });
    const seen = await originSaw(await gate.request("/items/1", { method: "OPTIONS", headers: { ...PREFLIGHT, "X-Portcullis-Assertion": "forged" } }));
    expect(String(seen.headers["x-portcullis-assertion"])).toMatch(/^ey[\w-]+\.[\w-]+\.[\w-]+$/);
  });

  it("T-I2 the echo origin still files a forwarded preflight under the test's namespace (so expectRejected would see a leak)", async () => {
    const { fixture, gate } = await setup();
    await originSaw(await gate.request("/items/1", { method: "OPTIONS", headers: PREFLIGHT }));
    const records = await fixture.originRequests();
    expect(records.filter((record) => record.method === "OPTIONS")).toHaveLength(1);
    expect(records[0]!.headers["x-test-request"]).toBeUndefined();
  });
});

describe("T-I2 methods.cors_preflight = authorize is unchanged", () => {
  it("T-I2 authorize: a preflight is an OPTIONS request like any other (no allow-list, no body rule)", async () => {
    const { key, gate } = await setup(withRoutes([{ path: "/items/**", methods: ["OPTIONS"], scopes: ["items:read"] }], { methods: { cors_preflight: "authorize" } }));
    await expectRejected(gate, await gate.request("/items/1", { method: "OPTIONS", headers: PREFLIGHT }), 401);
    await expectRejected(gate, await gate.request("/nowhere", { method: "OPTIONS", headers: PREFLIGHT }), 403, "access_denied");
    const seen = await originSaw(await gate.request("/items/1", { method: "OPTIONS", body: "x", headers: { ...PREFLIGHT, ...bearer(await mint(key)), "X-Custom": "kept" } }));
    expect(seen.headers["x-custom"]).toBe("kept");
    expect(seen.bodyBytes).toBe(1);
  });
});
