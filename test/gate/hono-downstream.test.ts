import { Hono } from "hono";
import { methodOverride } from "hono/method-override";
import { describe, expect, it } from "vitest";
import { parseConfig } from "../../src/config/load";
import { honoMiddleware, type PortcullisVariables } from "../../src/hono";
import { createGate } from "../../src/pipeline/gate";
import { baseConfig, bearer, Fixture, makeKey, mint } from "../helpers";

/**
 * Library users mount the middleware and write their own handlers after it: those handlers must see exactly
 * the request that was authorized (I1 canonical path, I15 method overrides stripped, I16 the token removed
 * from the query), not the client's raw URL. Built as its own Hono app, so it runs the same in both projects.
 */

async function appWithHandlers() {
  const fixture = new Fixture();
  const key = await makeKey("ES256");
  await fixture.serveJwks({ keys: [key.publicJwk] });
  const parsed = parseConfig(baseConfig(fixture, { token: { allow_query: true } }));
  if (!parsed.ok) throw new Error("config");
  const gate = createGate(parsed.config, { log: () => {} });
  const app = new Hono<{ Variables: PortcullisVariables }>();
  app.use("*", honoMiddleware(gate));
  // Hono's own method-override middleware reads `_method` from the query: after the gate it must find none.
  app.use("*", methodOverride({ app, query: "_method" }));
  app.all("*", (c) => c.json({ method: c.req.method, url: c.req.url, override: c.req.query("_method") ?? null, token: c.req.query("access_token") ?? null, decision: c.get("portcullis") }));
  return { app, key };
}

describe("Hono mount: the handlers after the middleware see the authorized request", () => {
  it("T-I15 T-I16 the query as forwarded: no _method, no access_token, every other byte as sent", async () => {
    const { app, key } = await appWithHandlers();
    const token = await mint(key, { scope: "items:read" });
    const response = await app.request(`https://api.test/items/1?q=a%20b&_method=DELETE&r=1+2`, { headers: bearer(token) });
    expect(response.status).toBe(200);
    const seen = (await response.json()) as { method: string; url: string; override: string | null };
    expect(seen).toMatchObject({ method: "GET", url: "https://api.test/items/1?q=a%20b&r=1+2", override: null });

    const viaQuery = await app.request(`https://api.test/items/1?access_token=${token}&x=%2F`);
    expect(viaQuery.status).toBe(200);
    expect(await viaQuery.json()).toMatchObject({ url: "https://api.test/items/1?x=%2F", token: null });
  });

  it("T-I2 a CORS preflight let through without a token is marked as one for the handlers; other requests are not", async () => {
    const { app, key } = await appWithHandlers();
    const preflight = await app.request("https://api.test/items/1", { method: "OPTIONS", headers: { origin: "https://app.test", "access-control-request-method": "GET" } });
    expect(preflight.status).toBe(200);
    expect(((await preflight.json()) as { decision: Record<string, unknown> }).decision).toMatchObject({ path: "/items/1", preflight: true });
    const plain = await app.request("https://api.test/items/1", { headers: bearer(await mint(key, { scope: "items:read" })) });
    expect(((await plain.json()) as { decision: Record<string, unknown> }).decision).not.toHaveProperty("preflight");
  });

  it("T-I1 the canonical path: decoded sub-delims and unreserved escapes, as matched", async () => {
    const { app, key } = await appWithHandlers();
    const token = await mint(key, { scope: "items:read" });
    const response = await app.request("https://api.test/%69tems/a%3Ab%40c", { headers: bearer(token) });
    expect(response.status).toBe(200);
    expect(((await response.json()) as { url: string }).url).toBe("https://api.test/items/a:b@c");
  });
});
