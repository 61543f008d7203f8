import { SELF } from "cloudflare:test";
import { importJWK, SignJWT } from "jose";
import { describe, expect, inject, it } from "vitest";
import { TOKEN as WARM_UP_TOKEN } from "../src/pipeline/warm-up";

/**
 * The deployable Worker (src/worker.ts) through `fetch`, configured by wrangler.toml plus the test bindings
 * in vitest.config.ts: PORTCULLIS_CONFIG points at the loopback issuer, ORIGIN_URL at the echo origin.
 */

async function token(claims: Record<string, unknown> = {}) {
  const jwk = JSON.parse(inject("selfPrivateJwk")) as Record<string, string>;
  const key = await importJWK(jwk, "ES256");
  const now = Math.floor(Date.now() / 1000);
  return new SignJWT({ iss: "https://auth.example.test/", aud: "https://api.example.test", sub: "svc-1", client_id: "cli-9", scope: "items:read", email: "a@example.test", iat: now, exp: now + 300, ...claims })
    .setProtectedHeader({ alg: "ES256", kid: "self-1", typ: "at+jwt" })
    .sign(key);
}

describe("Worker entry (SELF)", () => {
  it("forwards an authorized request to ORIGIN_URL with the canonical path, query and verified headers", async () => {
    const response = await SELF.fetch("https://api.example.test/v1/items/%61bc?q=1", {
      headers: { authorization: `Bearer ${await token()}`, "x-auth-sub": "forged", "x-test-ns": "self" },
    });
    expect(response.status).toBe(200);
    const seen = (await response.json()) as { path: string; headers: Record<string, string>; method: string };
    expect(seen.path).toBe("/v1/items/abc?q=1");
    expect(seen.headers["x-auth-sub"]).toBe("svc-1");
    expect(seen.headers["x-auth-client-id"]).toBe("cli-9");
    expect(seen.headers["x-auth-email"]).toBe("a@example.test");
    expect(seen.headers.authorization).toBeUndefined();
    expect(new URL(`http://${seen.headers.host}`).origin).toBe(inject("originUrl"));
  });

  it("refuses the start-up warm-up's token: its issuer and key exist only in the throwaway warm-up gate", async () => {
    const response = await SELF.fetch("https://api.example.test/v1/items/1", { headers: { authorization: `Bearer ${WARM_UP_TOKEN}` } });
    expect(response.status).toBe(401);
    expect(response.headers.get("www-authenticate")).toContain('error="invalid_token"');
  });

  it("answers RFC 6750 errors: 401 bare, 401 invalid_token, 403 insufficient_scope, 400 invalid_request", async () => {
    const none = await SELF.fetch("https://api.example.test/v1/items/1");
    expect(none.status).toBe(401);
    expect(none.headers.get("www-authenticate")).toBe(
      'Bearer realm="self-test", scope="items:read", resource_metadata="https://api.example.test/.well-known/oauth-protected-resource"',
    );
    const bad = await SELF.fetch("https://api.example.test/v1/items/1", { headers: { authorization: "Bearer a.b.c" } });
    expect(bad.status).toBe(401);
    expect(bad.headers.get("www-authenticate")).toContain('error="invalid_token"');
    const scope = await SELF.fetch("https://api.example.test/v1/items/1", { method: "POST", headers: { authorization: `Bearer ${await token()}` } });
    expect(scope.status).toBe(403);
    expect(scope.headers.get("www-authenticate")).toContain('scope="items:write"');
    const malformed = await SELF.fetch("https://api.example.test/v1/items/1", { headers: { authorization: "Bearer" } });
    expect(malformed.status).toBe(400);
    expect(await malformed.json()).toEqual({ error: "invalid_request", error_description: "The request is malformed" });
  });

  it("serves the RFC 9728 protected resource metadata document", async () => {
    const response = await SELF.fetch("https://api.example.test/.well-known/oauth-protected-resource");
    expect(response.status).toBe(200);
    expect(await response.json()).toMatchObject({ resource: "https://api.example.test", bearer_methods_supported: ["header"] });
  });

  it("public routes pass without a token and with client claim headers stripped", async () => {
    const response = await SELF.fetch("https://api.example.test/health", { headers: { "X-Auth-Sub": "admin", "x-test-ns": "self" } });
    expect(response.status).toBe(200);
    const seen = (await response.json()) as { headers: Record<string, string> };
    expect(seen.headers["x-auth-sub"]).toBeUndefined();
  });
});
