import { describe, expect, it } from "vitest";
import type { PortcullisConfig } from "../../src/config/schema";
import { baseConfig, bearer, expectRejected, type Fixture, mint, originSaw, setup, type Gate } from "../helpers";

/**
 * Discovery that browsers can follow (THREATS K3) and metadata derived from the rules (issue 15). Routes
 * (baseConfig): /public/** public, GET /items/** items:read, POST|DELETE /items/** items:write, /admin/** admin.
 */

const METADATA = "/.well-known/oauth-protected-resource";
const ROOT_RESOURCE = { resource: "https://api.test", authorization_servers: ["https://issuer.test/"] };
const withMetadata = (resource_metadata: PortcullisConfig["resource_metadata"], overrides: Partial<PortcullisConfig> = {}) => (fixture: Fixture) =>
  baseConfig(fixture, { resource_metadata, ...overrides });

/** Origins a page can send: a site, an opaque origin (sandboxed iframe, file:), none (same-origin or not a browser). */
const ORIGINS: Record<string, string>[] = [{ origin: "https://app.example" }, { origin: "null" }, {}];
/** What a credentialed (cookie) request looks like to the gate. */
const CREDENTIALED = { origin: "https://evil.example", cookie: "session=s3cret", "sec-fetch-mode": "cors" };

/** Readable by any origin, never with credentials: `*` (not the request's origin), no Allow-Credentials. */
function expectPublicCors(response: Response, context = "") {
  expect(response.headers.get("access-control-allow-origin"), context).toBe("*");
  expect(response.headers.get("access-control-allow-credentials"), context).toBeNull();
}

function expectChallengeReadable(response: Response, context = "") {
  expectPublicCors(response, context);
  const exposed = (response.headers.get("access-control-expose-headers") ?? "").toLowerCase().split(/\s*,\s*/);
  expect(exposed, context).toContain("www-authenticate");
}

const lastDecision = (gate: Gate) => gate.logs.filter((line) => line.event === "decision").at(-1);

describe("T-K3 the metadata document and every challenge are readable cross-origin", () => {
  it("T-K3 the metadata document: Access-Control-Allow-Origin *, never credentials, whatever the Origin (null, a cookie)", async () => {
    const { gate } = await setup(withMetadata(ROOT_RESOURCE));
    for (const headers of [...ORIGINS, CREDENTIALED]) {
      const response = await gate.request(METADATA, { headers });
      expect(response.status).toBe(200);
      expectPublicCors(response, JSON.stringify(headers));
      expect(response.headers.get("access-control-allow-origin")).not.toBe(headers.origin);
      expect(await response.json()).toMatchObject({ resource: "https://api.test" });
    }
    expect((await gate.fixture.originRequests()).length).toBe(0);
  });

  it("T-K3 every 401 and 403 challenge exposes WWW-Authenticate to any origin, never with credentials", async () => {
    const { key, gate } = await setup(withMetadata(ROOT_RESOURCE));
    const readOnly = await mint(key);
    for (const headers of [...ORIGINS, CREDENTIALED]) {
      const context = JSON.stringify(headers);
      const bare = await gate.request("/items/1", { headers });
      expectChallengeReadable(bare, context);
      expect((await expectRejected(gate, bare, 401)).challenge).toContain("resource_metadata=");
      const invalid = await gate.request("/items/1", { headers: { ...headers, ...bearer("not.a.token") } });
      expectChallengeReadable(invalid, context);
      await expectRejected(gate, invalid, 401, "invalid_token");
      const scope = await gate.request("/items/1", { method: "POST", headers: { ...headers, ...bearer(readOnly) } });
      expectChallengeReadable(scope, context);
      await expectRejected(gate, scope, 403, "insufficient_scope");
    }
  });

  it("T-K3 the gate's other refusals (403 access_denied, 400) are readable too, with nothing secret in them", async () => {
    const { key, gate } = await setup(withMetadata(ROOT_RESOURCE));
    const token = await mint(key, { scope: "items:read", email: "alice@example.test" });
    const refusals: [string, RequestInit, number, string][] = [
      ["/nowhere", { headers: bearer(token) }, 403, "access_denied"],
      ["/items/a%2Fb", { headers: bearer(token) }, 400, "invalid_request"],
      ["/items/1", { headers: { authorization: `Bearer ${token} x` } }, 400, "invalid_request"],
    ];
    for (const [path, init, status, error] of refusals) {
      const response = await gate.request(path, { ...init, headers: { ...(init.headers as Record<string, string>), origin: "https://app.example" } });
      expectChallengeReadable(response, path);
      const text = JSON.stringify([...response.headers]);
      const { body } = await expectRejected(gate, response, status, error);
      for (const secret of [token.slice(0, 24), token.split(".")[1]!.slice(0, 24), "alice@example.test", "user-123"]) {
        expect(text + JSON.stringify(body)).not.toContain(secret);
      }
      expect(Object.keys(body).sort()).toEqual(["error", "error_description"]);
    }
  });

  it("T-K3 a preflight of the metadata path is answered by the gate: 204, GET and HEAD, any header, cached, nothing forwarded", async () => {
    const { gate } = await setup(withMetadata(ROOT_RESOURCE));
    const preflights: Record<string, string>[] = [
      { origin: "https://app.example", "access-control-request-method": "GET", "access-control-request-headers": "mcp-protocol-version" },
      { origin: "null", "access-control-request-method": "GET" },
      { ...CREDENTIALED, "access-control-request-method": "GET", "access-control-request-headers": "authorization" },
      // Announcing another method still only gets GET and HEAD: the browser then refuses that request itself.
      { origin: "https://app.example", "access-control-request-method": "POST" },
    ];
    for (const headers of preflights) {
      const response = await gate.request(METADATA, { method: "OPTIONS", headers });
      await expectRejected(gate, response, 204);
      expectPublicCors(response, JSON.stringify(headers));
      expect(response.headers.get("access-control-allow-methods")).toBe("GET, HEAD");
      expect(response.headers.get("access-control-allow-headers")).toBe("*, authorization");
      expect(Number(response.headers.get("access-control-max-age"))).toBeGreaterThan(0);
      expect(lastDecision(gate)).toMatchObject({ outcome: "metadata_preflight", status: 204 });
    }
  });

  it("T-K3 preflights of other paths still follow the preflight rules: forwarded to the origin, which owns their CORS", async () => {
    const { gate } = await setup(withMetadata(ROOT_RESOURCE));
    const preflight = { origin: "https://app.example", "access-control-request-method": "GET" };
    const forwarded = await gate.request("/items/1", { method: "OPTIONS", headers: preflight });
    // The echo origin sets no CORS header and the gate adds none to what the origin answered.
    expect(forwarded.headers.get("access-control-allow-origin")).toBeNull();
    expect((await originSaw(forwarded)).method).toBe("OPTIONS");
    const refused = await gate.request("/nowhere", { method: "OPTIONS", headers: preflight });
    await expectRejected(gate, refused, 403, "access_denied");
    expectPublicCors(refused);
    expect(refused.headers.get("access-control-allow-methods")).toBeNull();
  });

  it("T-K3 a browser's preflight as wrangler dev hands it over (an empty stream, Content-Length: 0) is still a preflight", async () => {
    const { gate } = await setup(withMetadata(ROOT_RESOURCE));
    const empty = () => new ReadableStream({ start: (controller) => controller.close() });
    const headers = { origin: "https://app.example", "access-control-request-method": "GET", "content-length": "0" };
    const seen = await originSaw(await gate.request("/items/1", { method: "OPTIONS", headers, body: empty(), duplex: "half" } as RequestInit));
    expect(seen).toMatchObject({ method: "OPTIONS", bodyBytes: 0 });
    // Transfer-Encoding beside it still means a body.
    await expectRejected(gate, await gate.request("/items/1", { method: "OPTIONS", headers: { ...headers, "transfer-encoding": "chunked" }, body: empty(), duplex: "half" } as RequestInit), 400, "invalid_request");
  });

  it("T-K3 the origin's own CORS headers on a forwarded response pass unchanged; the gate adds none of its own", async () => {
    const { key, gate } = await setup(withMetadata(ROOT_RESOURCE, { routes: [{ path: "/**", scopes: ["items:read"] }] }));
    const response = await gate.request("/app/__cors", { headers: { ...bearer(await mint(key)), origin: "https://app.example" } });
    expect(response.status).toBe(200);
    expect(response.headers.get("access-control-allow-origin")).toBe("https://app.example");
    expect(response.headers.get("access-control-allow-credentials")).toBe("true");
    expect(response.headers.get("access-control-expose-headers")).toBeNull();
    const plain = await gate.request("/app/x", { headers: { ...bearer(await mint(key)), origin: "https://app.example" } });
    expect(plain.headers.get("access-control-allow-origin")).toBeNull();
    expect((await originSaw(plain)).path).toBe("/app/x");
  });
});

describe("T-K3 the gate owns the metadata namespace once resources are configured", () => {
  it("T-K3 the root metadata path is 404 when no resource is configured there, and so is any unknown document", async () => {
    const { gate } = await setup(withMetadata({ resource: "https://api.test/v1", authorization_servers: ["https://issuer.test/"] }));
    for (const path of [METADATA, `${METADATA}/v2`, `${METADATA}/v1/x`, `${METADATA}/V1`, `${METADATA}/%761`]) {
      const response = await gate.request(path, { headers: { origin: "https://app.example" } });
      await expectRejected(gate, response, 404, "not_found");
      expectPublicCors(response, path);
      expect(lastDecision(gate)).toMatchObject({ outcome: "metadata_not_found", status: 404 });
    }
    expect((await gate.request(`${METADATA}/v1`)).status).toBe(200);
  });

  it("T-K3 other methods on a metadata path: 405 with Allow, never forwarded", async () => {
    const { key, gate } = await setup(withMetadata(ROOT_RESOURCE, { routes: [{ path: "/**", access: "public" }] }));
    for (const method of ["POST", "PUT", "DELETE", "PATCH"]) {
      const response = await gate.request(METADATA, { method, headers: bearer(await mint(key)), body: method === "DELETE" ? null : "{}" });
      await expectRejected(gate, response, 405, "method_not_allowed");
      expect(response.headers.get("allow")).toBe("GET, HEAD, OPTIONS");
    }
  });

  it("without resource_metadata the well-known path is an ordinary path: the rules decide (and the origin may serve its own)", async () => {
    const { gate } = await setup((f) => baseConfig(f, { routes: [{ path: "/.well-known/**", access: "public" }] }));
    const seen = await originSaw(await gate.request(METADATA));
    expect(seen.path).toBe(METADATA);
  });
});

describe("metadata from the rules", () => {
  it("scopes_supported is computed from every scope the rules can require; a configured list overrides it", async () => {
    const { gate } = await setup(
      withMetadata(ROOT_RESOURCE, {
        routes: [...baseConfig({} as Fixture).routes, { path: "/reports/**", scopes: ["reports", "items:read"], scopes_any: ["eu", "us"] }, { path: "/open", access: "optional" }],
      }),
    );
    expect(await (await gate.request(METADATA)).json()).toMatchObject({ scopes_supported: ["items:read", "items:write", "admin", "reports", "eu", "us"] });
    const configured = await setup(withMetadata({ ...ROOT_RESOURCE, scopes_supported: ["only"] }));
    expect(await (await configured.gate.request(METADATA)).json()).toMatchObject({ scopes_supported: ["only"] });
    const none = await setup(withMetadata(ROOT_RESOURCE, { routes: [{ path: "/**", access: "token" }] }));
    expect(await (await none.gate.request(METADATA)).json()).not.toHaveProperty("scopes_supported");
  });

  it("several resources behind one gate: one path-specific document each, with its own scopes; challenges name the request's resource", async () => {
    const resources = [
      { ...ROOT_RESOURCE, resource_name: "API" },
      { resource: "https://api.test/mcp/notes", authorization_servers: ["https://issuer.test/"], resource_name: "Notes MCP" },
      { resource: "https://api.test/mcp/files", authorization_servers: ["https://other-as.test/"] },
    ];
    const routes = [
      { path: "/items/**", scopes: ["items:read"] },
      { path: "/mcp/notes", methods: ["POST"], scopes: ["notes:read"] },
      { path: "/mcp/notes/**", methods: ["DELETE"], scopes: ["notes:admin"] },
      { path: "/mcp/files/**", scopes_any: ["files:read", "files:write"] },
      { path: "/mcp/:server/health", access: "public" as const },
      { path: "/:anything/audit", scopes: ["audit"] },
      { path: "/mcp/:server", methods: ["GET"], scopes: ["servers"] },
    ];
    const { gate } = await setup(withMetadata(resources, { routes }));
    const doc = async (path: string) => (await gate.request(path)).json();
    expect(await doc(METADATA)).toEqual({
      resource: "https://api.test",
      authorization_servers: ["https://issuer.test/"],
      bearer_methods_supported: ["header"],
      // Rules wholly inside another resource count there only; `/:anything/audit` and `/mcp/:server` reach both.
      scopes_supported: ["items:read", "audit", "servers"],
      resource_name: "API",
    });
    expect(await doc(`${METADATA}/mcp/notes`)).toMatchObject({ resource: "https://api.test/mcp/notes", scopes_supported: ["notes:read", "notes:admin", "servers"], resource_name: "Notes MCP" });
    expect(await doc(`${METADATA}/mcp/files`)).toEqual({
      resource: "https://api.test/mcp/files",
      authorization_servers: ["https://other-as.test/"],
      bearer_methods_supported: ["header"],
      scopes_supported: ["files:read", "files:write", "servers"],
    });
    const challengeOf = async (path: string, init: RequestInit = {}) => (await expectRejected(gate, await gate.request(path, init), 401)).challenge;
    expect(await challengeOf("/mcp/notes", { method: "POST" })).toBe(`Bearer realm="test-api", scope="notes:read", resource_metadata="https://api.test${METADATA}/mcp/notes"`);
    expect(await challengeOf("/mcp/notes/x", { method: "DELETE" })).toContain(`resource_metadata="https://api.test${METADATA}/mcp/notes"`);
    expect(await challengeOf("/mcp/files/a")).toBe(`Bearer realm="test-api", scope="files:read files:write", resource_metadata="https://api.test${METADATA}/mcp/files"`);
    expect(await challengeOf("/items/1")).toContain(`resource_metadata="https://api.test${METADATA}"`);
    expect(await challengeOf("/mcp/notes")).toBe(`Bearer realm="test-api", scope="servers", resource_metadata="https://api.test${METADATA}/mcp/notes"`);
    // `/mcp/notesx` is not under `/mcp/notes`: whole segments only.
    expect(await challengeOf("/mcp/notesx")).toBe(`Bearer realm="test-api", scope="servers", resource_metadata="https://api.test${METADATA}"`);
  });

  it("without a resource covering the path, challenges carry no resource_metadata", async () => {
    const { gate } = await setup(withMetadata({ resource: "https://api.test/mcp", authorization_servers: ["https://issuer.test/"] }));
    const { challenge } = await expectRejected(gate, await gate.request("/items/1"), 401);
    expect(challenge).toBe('Bearer realm="test-api", scope="items:read"');
  });
});

describe("challenges name the scopes the rule needs", () => {
  it("401 without a token or with a bad one carries scope= where the rule requires scopes, and none where it does not", async () => {
    const { gate } = await setup((f) => baseConfig(f, { routes: [...baseConfig(f).routes, { path: "/signed-in/**" }, { path: "/either", scopes: ["base"], scopes_any: ["a", "b"] }] }));
    const challengeOf = async (path: string, init: RequestInit = {}, error?: string) => (await expectRejected(gate, await gate.request(path, init), 401, error)).challenge;
    expect(await challengeOf("/items/1")).toBe('Bearer realm="test-api", scope="items:read"');
    expect(await challengeOf("/items/1", { method: "DELETE" })).toBe('Bearer realm="test-api", scope="items:write"');
    expect(await challengeOf("/either")).toBe('Bearer realm="test-api", scope="base a b"');
    expect(await challengeOf("/signed-in/x")).toBe('Bearer realm="test-api"');
    expect(await challengeOf("/items/1", { headers: bearer("a.b.c") }, "invalid_token")).toContain('scope="items:read"');
    // A 400 names no scope.
    const { challenge } = await expectRejected(gate, await gate.request("/items/1", { headers: { authorization: "Bearer" } }), 400, "invalid_request");
    expect(challenge).not.toContain("scope=");
  });

  it("403 insufficient_scope names every scope the rule needs, held ones too; a token granted exactly those passes", async () => {
    const rules = [
      { path: "/all", scopes: ["a", "b", "c"] },
      { path: "/mixed", scopes: ["base"], scopes_any: ["x", "y"] },
      { path: "/any", scopes_any: ["p", "q"] },
    ];
    const { key, gate } = await setup((f) => baseConfig(f, { routes: rules }));
    const cases: [string, string, string][] = [
      ["/all", "a b", "a b c"],
      ["/mixed", "base", "base x y"],
      ["/mixed", "x y", "base x y"],
      ["/any", "other", "p q"],
    ];
    for (const [path, held, named] of cases) {
      const { challenge } = await expectRejected(gate, await gate.request(path, { headers: bearer(await mint(key, { scope: held })) }), 403, "insufficient_scope");
      expect(challenge, `${path} with ${held}`).toContain(`scope="${named}"`);
      // The step-up a client makes from the challenge gets it in.
      expect((await gate.request(path, { headers: bearer(await mint(key, { scope: named })) })).status).toBe(200);
    }
  });
});
