import { inject, describe, expect, it } from "vitest";
import { baseConfig, bearer, expectRejected, makeGate, mint, originSaw, setup } from "../helpers";

/** Threat catalogue section F: forwarding. */

const FORGED = { "X-Auth-Sub": "admin", "x-auth-scope": "admin", X_Auth_Issuer: "https://evil/", "X-Auth_Client-Id": "evil", "x-auth-anything": "1" };
const forgedNames = ["x-auth-sub", "x-auth-scope", "x_auth_issuer", "x-auth_client-id", "x-auth-anything"];

describe("F: forwarding", () => {
  it("T-F1 forged claim headers (any case, _ for -) are removed on public paths", async () => {
    const { gate } = await setup();
    const seen = await originSaw(await gate.request("/public/page", { headers: { ...FORGED, X_Unrelated_Header: "kept" } }));
    for (const name of forgedNames) expect(seen.headers[name]).toBeUndefined();
    // Control: underscore headers do travel to the origin, so their absence above is the gate's doing.
    expect(seen.headers["x_unrelated_header"]).toBe("kept");
  });

  it("T-F1 forged claim headers are replaced by verified values on protected paths", async () => {
    const { key, gate } = await setup();
    const seen = await originSaw(await gate.request("/items/1", { headers: { ...FORGED, ...bearer(await mint(key)) } }));
    expect(seen.headers["x-auth-sub"]).toBe("user-123");
    expect(seen.headers["x-auth-scope"]).toBe("items:read");
    expect(seen.headers["x-auth-issuer"]).toBe("https://issuer.test/");
    expect(seen.headers["x-auth-client-id"]).toBe("client-abc");
    for (const name of ["x_auth_issuer", "x-auth_client-id", "x-auth-anything"]) expect(seen.headers[name]).toBeUndefined();
  });

  it("T-F1 requests carrying forged claim headers and a bad or no token reach nothing", async () => {
    const { gate } = await setup();
    await expectRejected(gate, await gate.request("/items/1", { headers: FORGED }), 401);
    await expectRejected(gate, await gate.request("/items/1", { headers: { ...FORGED, ...bearer("not.a.jwt") } }), 401, "invalid_token");
    await expectRejected(gate, await gate.request("/nowhere", { headers: FORGED }), 403, "access_denied");
  });

  it("T-F2 headers a proxy might trust never grant access or reroute the request", async () => {
    const { gate } = await setup();
    const trusted = {
      "x-auth-verified": "true",
      "x-portcullis-verified": "1",
      "cf-access-authenticated-user-email": "admin@example.com",
      "x-forwarded-user": "admin",
      "x-middleware-subrequest": "middleware:middleware:middleware:middleware:middleware",
      "x-envoy-original-path": "/public/x",
      "x-original-url": "/public/x",
      "x-rewrite-url": "/public/x",
    };
    await expectRejected(gate, await gate.request("/admin/x", { headers: trusted }), 401);
    const rerouting = ["x-original-url", "x-rewrite-url", "X-Original-URI", "x_forwarded_uri", "X-Envoy-Original-Path"];
    const seen = await originSaw(await gate.request("/public/x", { headers: { ...Object.fromEntries(rerouting.map((name) => [name, "/admin/x"])), "x-http-method-override": "DELETE" } }));
    expect(seen.path).toBe("/public/x");
    for (const name of [...rerouting, "x-http-method-override"]) expect([name, seen.headers[name.toLowerCase()] ?? seen.headers[name.toLowerCase().replace(/_/g, "-")]]).toEqual([name, undefined]);
  });

  it("T-F3 claim values with CR/LF, non-Latin-1 text, objects or 20 KB are encoded or dropped, never injected", async () => {
    const { key, gate } = await setup((f) =>
      baseConfig(f, {
        token: { max_length: 65_536 },
        forward: { claim_headers: { "x-auth-name": "name", "x-auth-note": "note", "x-auth-profile": "profile", "x-auth-big": "big", "x-auth-padded": "padded" } },
      }),
    );
    const token = await mint(key, {
      name: "Zoë 山田 😀",
      note: "line1\r\nX-Injected: yes",
      profile: { role: "admin", nested: { a: [1, 2] } },
      big: "b".repeat(20_480),
      padded: "  spaced  ",
    });
    const seen = await originSaw(await gate.request("/items/1", { headers: bearer(token) }));
    expect(seen.headers["x-injected"]).toBeUndefined();
    expect(seen.headers["x-auth-note"]).toBe('"line1\\r\\nX-Injected: yes"');
    expect(seen.headers["x-auth-name"]).toBe('"Zo\\u00eb \\u5c71\\u7530 \\ud83d\\ude00"');
    expect(JSON.parse(seen.headers["x-auth-name"] as string)).toBe("Zoë 山田 😀");
    expect(JSON.parse(seen.headers["x-auth-profile"] as string)).toEqual({ role: "admin", nested: { a: [1, 2] } });
    expect(seen.headers["x-auth-big"]).toBeUndefined();
    expect(JSON.parse(seen.headers["x-auth-padded"] as string)).toBe("  spaced  ");
    expect(gate.logs).toContainEqual(expect.objectContaining({ event: "claim_header_dropped", header: "x-auth-big" }));
    expect(JSON.stringify(gate.logs)).not.toContain("bbbbbbbb");
  });

  it("T-F4 Authorization is stripped by default", async () => {
    const { key, gate } = await setup();
    const seen = await originSaw(await gate.request("/items/1", { headers: bearer(await mint(key)) }));
    expect(seen.headers.authorization).toBeUndefined();
  });

  it("T-F4 Authorization is forwarded when configured", async () => {
    const { key, gate } = await setup((f) => baseConfig(f, { forward: { authorization: "forward" } }));
    const token = await mint(key);
    const seen = await originSaw(await gate.request("/items/1", { headers: bearer(token) }));
    expect(seen.headers.authorization).toBe(`Bearer ${token}`);
  });

  it("T-F5 origin down: 502 with a generic body", async () => {
    const { key, fixture } = await setup();
    const gate = makeGate(fixture, baseConfig(fixture), { origin: inject("deadOriginUrl") });
    const response = await gate.request("/items/1", { headers: bearer(await mint(key)) });
    expect(response.status).toBe(502);
    const body = await response.json();
    expect(body).toEqual({ error: "bad_gateway", error_description: "The origin could not be reached" });
  });

  it("T-F5 origin slow: 504 with a generic body, within the configured budget", async () => {
    const { key, fixture } = await setup();
    await fixture.slowOrigin(2_000);
    const gate = makeGate(fixture, baseConfig(fixture, { forward: { timeout_ms: 200 } }));
    const started = Date.now();
    const response = await gate.request("/items/1", { headers: bearer(await mint(key)) });
    expect(response.status).toBe(504);
    expect(await response.json()).toEqual({ error: "gateway_timeout", error_description: "The origin did not answer in time" });
    expect(Date.now() - started).toBeLessThan(1_500);
  });

  it("the origin's own responses pass through untouched, bodies streamed both ways", async () => {
    const { key, gate } = await setup();
    const body = new Uint8Array(3 * 1024 * 1024).fill(7);
    const seen = await originSaw(await gate.request("/items/1", { method: "POST", body, headers: bearer(await mint(key, { scope: "items:write" })) }));
    expect(seen.method).toBe("POST");
    expect(seen.bodyBytes).toBe(body.length);
  });
});
