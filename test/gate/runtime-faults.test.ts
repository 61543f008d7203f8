import { createExecutionContext, env, waitOnExecutionContext } from "cloudflare:test";
import { describe, expect, it, vi } from "vitest";
import worker from "../../src/worker";
import { AUDIENCE, baseConfig, bearer, Fixture, ISSUER, makeGate, makeKey, mint } from "../helpers";

/** Threat catalogue section H: runtime behaviour in workerd. */

describe("H: runtime", () => {
  it("T-H1 concurrent requests during a JWKS load: no hang, no cross-request I/O error, one fetch", async () => {
    const fixture = new Fixture();
    const key = await makeKey("ES256");
    await fixture.serveJwks({ keys: [key.publicJwk] }, { delayMs: 300 });
    const gate = makeGate(fixture, baseConfig(fixture));
    const token = await mint(key);
    const responses = await Promise.all(Array.from({ length: 20 }, () => gate.request("/items/1", { headers: bearer(token) })));
    expect(responses.map((r) => r.status)).toEqual(Array(20).fill(200));
    expect((await fixture.stats()).jwksFetches).toBe(1);
  });

  it("T-H2 a cold isolate with a KV hit makes zero IdP fetches; a KV miss makes one; KV TTL >= 60 s", async () => {
    const fixture = new Fixture();
    const key = await makeKey("ES256");
    await fixture.serveJwks({ keys: [key.publicJwk] });
    const warm = makeGate(fixture, baseConfig(fixture));
    expect((await warm.request("/items/1", { headers: bearer(await mint(key)) })).status).toBe(200);
    expect((await fixture.stats()).jwksFetches).toBe(1); // KV miss: one fetch
    // A new gate has empty isolate memory, like a cold isolate; KV is shared.
    const cold = makeGate(fixture, baseConfig(fixture));
    expect((await cold.request("/items/1", { headers: bearer(await mint(key)) })).status).toBe(200);
    expect((await fixture.stats()).jwksFetches).toBe(1);
    const listed = await env.PORTCULLIS_KV.list({ prefix: "jwks:v2:" });
    expect(listed.keys.length).toBeGreaterThan(0);
    for (const entry of listed.keys) expect((entry.expiration ?? 0) - Date.now() / 1000).toBeGreaterThanOrEqual(60);
  });

  it("T-H3 invalid configuration: every request gets a generic 500 and a log line naming each bad field; never open", async () => {
    const fixture = new Fixture();
    const logs: Record<string, unknown>[] = [];
    const bad = { issuers: [{ issuer: ISSUER, jwks_uri: "http://evil.example/jwks" }], routes: [{ path: "no-slash", public: true }], realm: 'a"b' };
    const gate = makeGate(fixture, bad, { log: (entry) => logs.push(entry) });
    for (const path of ["/public/x", "/items/1", "/"]) {
      const response = await gate.request(path, { headers: bearer("x.y.z") });
      expect(response.status).toBe(500);
      expect(await response.json()).toEqual({ error: "server_error", error_description: "The authorizer is misconfigured" });
    }
    expect(await fixture.originRequests()).toEqual([]);
    expect(logs).toHaveLength(3);
    const issues = logs[0]!.issues as string[];
    expect(issues.some((line) => line.startsWith("issuers.0.audiences:"))).toBe(true);
    expect(issues.some((line) => line.startsWith("issuers.0.jwks_uri:"))).toBe(true);
    expect(issues.some((line) => line.startsWith("routes.0.path:"))).toBe(true);
    expect(issues.some((line) => line.startsWith("realm:"))).toBe(true);
  });

  it("T-H3 the Worker entry with a broken PORTCULLIS_CONFIG or ORIGIN_URL answers 500 and logs the field", async () => {
    const log = vi.spyOn(console, "log").mockImplementation(() => {});
    try {
      const cases: [Record<string, unknown>, string][] = [
        [{ PORTCULLIS_CONFIG: undefined }, "PORTCULLIS_CONFIG"],
        [{ PORTCULLIS_CONFIG: "{not json" }, "PORTCULLIS_CONFIG"],
        [{ PORTCULLIS_CONFIG: { issuers: [], routes: [] } }, "PORTCULLIS_CONFIG.issuers"],
        [{ ORIGIN_URL: "https://origin.example/with/path" }, "ORIGIN_URL"],
        [{ ORIGIN_URL: "ftp://origin.example" }, "ORIGIN_URL"],
      ];
      for (const [overrides, field] of cases) {
        log.mockClear();
        const ctx = createExecutionContext();
        const response = await worker.fetch(new Request("https://api.example.test/health"), { ...env, ...overrides }, ctx);
        await waitOnExecutionContext(ctx);
        expect(response.status).toBe(500);
        expect(await response.json()).toEqual({ error: "server_error", error_description: "The authorizer is misconfigured" });
        expect(log).toHaveBeenCalledTimes(1);
        const line = JSON.parse(String(log.mock.calls[0]![0])) as { issues: string[] };
        expect(line.issues.some((issue) => issue.startsWith(field))).toBe(true);
      }
    } finally {
      log.mockRestore();
    }
  });

  it("a config error in one field does not hide the others (all reported at once)", async () => {
    const fixture = new Fixture();
    const logs: Record<string, unknown>[] = [];
    const gate = makeGate(fixture, { issuers: [{ issuer: "", audiences: [], jwks_uri: "nope" }], routes: [], extra: 1 }, { log: (entry) => logs.push(entry) });
    await gate.request("/x");
    expect((logs[0]!.issues as string[]).length).toBeGreaterThanOrEqual(4);
    void AUDIENCE;
  });
});
