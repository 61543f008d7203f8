import { describe, expect, inject, it } from "vitest";
import { AUDIENCE, baseConfig, bearer, expectRejected, Fixture, makeGate, originSaw } from "../helpers";

/**
 * Introspection against a real authorization server: oidc-provider on loopback (test/setup/
 * authorization-server.ts), which issues opaque client_credentials tokens, introspects them (RFC 7662)
 * and revokes them (RFC 7009). Covers THREATS G1-G4 with a real AS.
 */

interface AuthorizationServer {
  issuer: string;
  tokenEndpoint: string;
  introspectionEndpoint: string;
  revocationEndpoint: string;
  clients: Record<"api" | "gate" | "gatePost", { id: string; secret: string }>;
}
const as = JSON.parse(inject("authorizationServer")) as AuthorizationServer;
const basic = (client: { id: string; secret: string }) => `Basic ${btoa(`${encodeURIComponent(client.id)}:${encodeURIComponent(client.secret)}`)}`;

async function token(scope: string): Promise<string> {
  const response = await fetch(as.tokenEndpoint, {
    method: "POST",
    headers: { authorization: basic(as.clients.api), "content-type": "application/x-www-form-urlencoded" },
    body: new URLSearchParams({ grant_type: "client_credentials", scope }),
  });
  const body = (await response.json()) as { access_token: string };
  return body.access_token;
}

async function revoke(accessToken: string) {
  const response = await fetch(as.revocationEndpoint, {
    method: "POST",
    headers: { authorization: basic(as.clients.api), "content-type": "application/x-www-form-urlencoded" },
    body: new URLSearchParams({ token: accessToken, token_type_hint: "access_token" }),
  });
  expect(response.status).toBe(200);
  await response.arrayBuffer();
}

function clock() {
  let t = Date.now();
  return { now: () => t, advance: (seconds: number) => void (t += seconds * 1000) };
}

function gateFor(options: { client?: "gate" | "gatePost"; secret?: string; endpoint?: string; cacheTtl?: number; now?: () => number } = {}) {
  const fixture = new Fixture();
  const client = as.clients[options.client ?? "gate"];
  const config = baseConfig(fixture, {
    issuers: [
      {
        issuer: as.issuer,
        audiences: [AUDIENCE],
        introspection: {
          client_id: client.id,
          client_secret: "AS_CLIENT_SECRET",
          auth_method: options.client === "gatePost" ? "client_secret_post" : "client_secret_basic",
          ...(options.endpoint ? { endpoint: options.endpoint } : {}),
          ...(options.cacheTtl !== undefined ? { cache_ttl: options.cacheTtl } : {}),
        },
      },
    ],
  });
  return makeGate(fixture, config, { env: { AS_CLIENT_SECRET: options.secret ?? client.secret }, ...(options.now ? { now: options.now } : {}) });
}

const calls = (gate: ReturnType<typeof gateFor>) => gate.logs.filter((line) => line.event === "introspection").length;

describe("introspection against oidc-provider", () => {
  it("an active opaque token passes with identity from the introspection answer (endpoint discovered)", async () => {
    const gate = gateFor();
    const seen = await originSaw(await gate.request("/items/1", { headers: bearer(await token("items:read")) }));
    expect(seen.headers["x-auth-client-id"]).toBe("api-client");
    expect(seen.headers["x-auth-scope"]).toBe("items:read");
    expect(seen.headers["x-auth-issuer"]).toBe(as.issuer);
  });

  it("client_secret_post works as well", async () => {
    const gate = gateFor({ client: "gatePost" });
    expect((await gate.request("/items/1", { headers: bearer(await token("items:read")) })).status).toBe(200);
  });

  it("T-G2 scope enough for one route but not another: the cached answer is re-checked per route", async () => {
    const gate = gateFor();
    const opaque = await token("items:read");
    expect((await gate.request("/items/1", { headers: bearer(opaque) })).status).toBe(200);
    const { challenge } = await expectRejected(gate, await gate.request("/admin/x", { headers: bearer(opaque) }), 403, "insufficient_scope");
    expect(challenge).toContain('scope="admin"');
    expect(calls(gate)).toBe(1);
  });

  it("T-G4 a token revoked through RFC 7009 is refused once the cache entry ends (at once with cache_ttl 0)", async () => {
    const time = clock();
    const cached = gateFor({ now: time.now });
    const opaque = await token("items:read");
    expect((await cached.request("/items/1", { headers: bearer(opaque) })).status).toBe(200);
    await revoke(opaque);
    expect((await cached.request("/items/1", { headers: bearer(opaque) })).status).toBe(200); // within cache_ttl (60 s)
    time.advance(61);
    await expectRejected(cached, await cached.request("/items/1", { headers: bearer(opaque) }), 401, "invalid_token");
    const uncached = gateFor({ cacheTtl: 0 });
    await expectRejected(uncached, await uncached.request("/items/1", { headers: bearer(opaque) }), 401, "invalid_token");
  });

  it("T-G3 an expired token is refused (the AS says inactive, and a cached entry never outlives exp)", async () => {
    const gate = gateFor();
    const shortLived = await token("items:read short-lived");
    expect((await gate.request("/items/1", { headers: bearer(shortLived) })).status).toBe(200);
    await new Promise((resolve) => setTimeout(resolve, 2_500));
    const fresh = gateFor();
    await expectRejected(fresh, await fresh.request("/items/1", { headers: bearer(shortLived) }), 401, "invalid_token");
    expect(fresh.logs.at(-1)?.reason).toBe("token_inactive");
  });

  it("T-G1 a garbage token is inactive: 401", async () => {
    const gate = gateFor();
    await expectRejected(gate, await gate.request("/items/1", { headers: bearer("not-a-real-token-at-all") }), 401, "invalid_token");
  });

  it("T-G1 wrong introspection credentials: 503 and an operator log line, never 401", async () => {
    const gate = gateFor({ secret: "wrong-secret" });
    const response = await gate.request("/items/1", { headers: bearer(await token("items:read")) });
    await expectRejected(gate, response, 503, "temporarily_unavailable");
    expect(response.headers.get("retry-after")).toBe("5");
    expect(gate.logs).toContainEqual(expect.objectContaining({ event: "introspection_failed", reason: "client_authentication_failed" }));
  });

  it("T-G1 authorization server down: 503", async () => {
    const gate = gateFor({ endpoint: `${inject("deadOriginUrl")}/token/introspection` });
    await expectRejected(gate, await gate.request("/items/1", { headers: bearer("anything") }), 503, "temporarily_unavailable");
  });
});
