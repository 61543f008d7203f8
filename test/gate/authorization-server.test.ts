import { describe, expect, inject, it } from "vitest";

/**
 * The loopback authorization server (oidc-provider, test/setup/authorization-server.ts) seen from
 * inside workerd with plain `fetch`: what the gate's RFC 7662 introspection will talk to.
 */

interface Client {
  id: string;
  secret: string;
}

const as = JSON.parse(inject("authorizationServer")) as {
  issuer: string;
  tokenEndpoint: string;
  introspectionEndpoint: string;
  revocationEndpoint: string;
  clients: { api: Client; gate: Client; gatePost: Client };
};

const FORM = { "content-type": "application/x-www-form-urlencoded" };

/** RFC 6749 §2.3.1: id and secret are form-urlencoded before Basic encoding. */
const basic = ({ id, secret }: Client) => `Basic ${btoa(`${encodeURIComponent(id)}:${encodeURIComponent(secret)}`)}`;

async function clientCredentials(scope: string): Promise<{ access_token: string; expires_in: number; scope?: string; token_type: string }> {
  const response = await fetch(as.tokenEndpoint, {
    method: "POST",
    headers: { ...FORM, authorization: basic(as.clients.api) },
    body: new URLSearchParams({ grant_type: "client_credentials", scope }),
  });
  expect(response.status).toBe(200);
  return response.json();
}

/** Introspects as `gate` (client_secret_basic) unless told otherwise. */
function introspectBasic(token: string, client: Client = as.clients.gate) {
  return fetch(as.introspectionEndpoint, {
    method: "POST",
    headers: { ...FORM, authorization: basic(client), accept: "application/json" },
    body: new URLSearchParams({ token }),
  });
}

/** Introspects as `gate-post` (client_secret_post) unless told otherwise. */
function introspectPost(token: string, client: Client = as.clients.gatePost) {
  return fetch(as.introspectionEndpoint, {
    method: "POST",
    headers: { ...FORM, accept: "application/json" },
    body: new URLSearchParams({ token, client_id: client.id, client_secret: client.secret }),
  });
}

describe("loopback authorization server (oidc-provider)", () => {
  it("issues an opaque client_credentials token with the requested scope", async () => {
    const token = await clientCredentials("items:read");
    expect(token).toMatchObject({ token_type: "Bearer", scope: "items:read", expires_in: 600 });
    expect(token.access_token).toMatch(/^[A-Za-z0-9_-]{43}$/); // opaque, not a JWT
  });

  it("introspects an active token for gate (Basic) and gate-post (client_secret_post)", async () => {
    const { access_token } = await clientCredentials("items:read");

    const viaBasic = await introspectBasic(access_token);
    expect(viaBasic.status).toBe(200);
    expect(viaBasic.headers.get("content-type")).toBe("application/json; charset=utf-8");
    expect(viaBasic.headers.get("cache-control")).toBe("no-store");
    const body = (await viaBasic.json()) as Record<string, unknown>;
    expect(Object.keys(body).sort()).toEqual(["active", "client_id", "exp", "iat", "iss", "scope", "token_type"]);
    expect(body).toMatchObject({ active: true, client_id: "api-client", iss: as.issuer, scope: "items:read", token_type: "Bearer" });
    expect(body.exp).toBe((body.iat as number) + 600);

    const viaPost = await introspectPost(access_token);
    expect(viaPost.status).toBe(200);
    expect(await viaPost.json()).toEqual(body);
  });

  it("reports a revoked token (RFC 7009) as inactive", async () => {
    const { access_token } = await clientCredentials("items:read items:write");
    expect(await (await introspectBasic(access_token)).json()).toMatchObject({ active: true, scope: "items:read items:write" });

    const revoked = await fetch(as.revocationEndpoint, {
      method: "POST",
      headers: { ...FORM, authorization: basic(as.clients.api) },
      body: new URLSearchParams({ token: access_token, token_type_hint: "access_token" }),
    });
    expect(revoked.status).toBe(200);
    expect(await revoked.text()).toBe("");

    const after = await introspectBasic(access_token);
    expect(after.status).toBe(200);
    expect(await after.json()).toEqual({ active: false });
  });

  it("reports a token past its lifetime as inactive", async () => {
    const issued = await clientCredentials("items:read short-lived");
    expect(issued).toMatchObject({ expires_in: 2, scope: "items:read short-lived" });
    expect(await (await introspectBasic(issued.access_token)).json()).toMatchObject({ active: true });

    // exp = iat + 2 in whole seconds, and the provider has no clock tolerance: 2.5 s is always past it.
    await new Promise((resolve) => setTimeout(resolve, 2500));
    const after = await introspectBasic(issued.access_token);
    expect(after.status).toBe(200);
    expect(await after.json()).toEqual({ active: false });
  });

  it("reports an unknown token as inactive", async () => {
    const response = await introspectBasic("garbage");
    expect(response.status).toBe(200);
    expect(await response.json()).toEqual({ active: false });
  });

  it("rejects the introspecting client's wrong secret with 401 invalid_client", async () => {
    const { access_token } = await clientCredentials("items:read");

    const viaBasic = await introspectBasic(access_token, { id: as.clients.gate.id, secret: "wrong" });
    expect(viaBasic.status).toBe(401);
    expect(viaBasic.headers.get("www-authenticate")).toBe(
      `Basic realm="${as.issuer}", error="invalid_client", error_description="client authentication failed"`,
    );
    expect(await viaBasic.json()).toEqual({ error: "invalid_client", error_description: "client authentication failed" });

    const viaPost = await introspectPost(access_token, { id: as.clients.gatePost.id, secret: "wrong" });
    expect(viaPost.status).toBe(401);
    expect(viaPost.headers.get("www-authenticate")).toBeNull(); // only sent when an Authorization header was
    expect(await viaPost.json()).toEqual({ error: "invalid_client", error_description: "client authentication failed" });
  });

  it("publishes the introspection endpoint in its discovery document", async () => {
    const response = await fetch(`${as.issuer}/.well-known/openid-configuration`);
    expect(response.status).toBe(200);
    const metadata = (await response.json()) as Record<string, unknown>;
    expect(metadata).toMatchObject({
      issuer: as.issuer,
      token_endpoint: as.tokenEndpoint,
      introspection_endpoint: as.introspectionEndpoint,
      revocation_endpoint: as.revocationEndpoint,
    });
  });
});
