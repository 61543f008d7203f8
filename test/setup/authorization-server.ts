import { randomBytes } from "node:crypto";
import { createServer } from "node:http";
import type { AddressInfo } from "node:net";
import { exportJWK, generateKeyPair } from "jose";
import Provider, { type ClientMetadata, type Configuration } from "oidc-provider";
import { introspectionAndRevocation } from "./oidc-policies";
import { memoryAdapter } from "./oidc-memory-adapter";

/**
 * A real OAuth 2.0 authorization server on loopback for the token-introspection tests: panva's
 * `oidc-provider` (certified OpenID provider), run in Node by vitest's globalSetup.
 *
 * - Client credentials grant (RFC 6749 §4.4) issues OPAQUE access tokens (no resource indicator is
 *   ever configured, so nothing is a JWT). The requested `scope` is honoured, limited to each
 *   client's `scope` metadata.
 * - Introspection (RFC 7662) at `/token/introspection`: the resource-server clients `gate`
 *   (client_secret_basic) and `gate-post` (client_secret_post) may introspect any token; every
 *   other client only its own.
 * - Revocation (RFC 7009) at `/token/revocation`: a client may revoke only its own tokens.
 * - A token requested with the marker scope `short-lived` lives SHORT_LIVED_TTL seconds, others
 *   DEFAULT_TTL seconds.
 *
 * Nothing leaves loopback: no interactions, no dynamic registration, no remote JWKS or sector URIs.
 */

export const SCOPES = ["items:read", "items:write", "admin", "short-lived"] as const;
export const SHORT_LIVED_SCOPE = "short-lived";
export const SHORT_LIVED_TTL = 2;
export const DEFAULT_TTL = 600;

/** The resource-server clients allowed to introspect every token. */
const INTROSPECTORS = new Set(["gate", "gate-post"]);

export interface ClientCredentialsPair {
  id: string;
  secret: string;
}

export interface AuthorizationServer {
  /** Issuer identifier, `http://127.0.0.1:<port>` (no trailing slash). */
  url: string;
  issuer: string;
  tokenEndpoint: string;
  introspectionEndpoint: string;
  revocationEndpoint: string;
  clients: { api: ClientCredentialsPair; gate: ClientCredentialsPair; gatePost: ClientCredentialsPair };
  close(): Promise<void>;
}


const secret = () => randomBytes(24).toString("base64url");

export async function startAuthorizationServer(): Promise<AuthorizationServer> {
  // The issuer must name the port, so listen first and attach the provider's handler afterwards
  // (no request can arrive before then: nobody knows the port yet).
  const server = createServer();
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  const { port } = server.address() as AddressInfo;
  const issuer = `http://127.0.0.1:${port}`;

  const api = { id: "api-client", secret: secret() };
  const gate = { id: "gate", secret: secret() };
  const gatePost = { id: "gate-post", secret: secret() };

  const clients: ClientMetadata[] = [
    {
      client_id: api.id,
      client_secret: api.secret,
      grant_types: ["client_credentials"],
      response_types: [],
      redirect_uris: [],
      token_endpoint_auth_method: "client_secret_basic",
      scope: SCOPES.join(" "),
    },
    // The resource server: it only authenticates at the introspection endpoint.
    {
      client_id: gate.id,
      client_secret: gate.secret,
      grant_types: [],
      response_types: [],
      redirect_uris: [],
      token_endpoint_auth_method: "client_secret_basic",
    },
    {
      client_id: gatePost.id,
      client_secret: gatePost.secret,
      grant_types: [],
      response_types: [],
      redirect_uris: [],
      token_endpoint_auth_method: "client_secret_post",
    },
  ];

  const { privateKey } = await generateKeyPair("ES256", { extractable: true });
  const signingKey = { ...(await exportJWK(privateKey)), kid: "as-1", alg: "ES256", use: "sig" };

  const configuration: Configuration = {
    adapter: memoryAdapter(),
    clients,
    // The only signing key is ES256; client metadata defaults to RS256 ID tokens and would be rejected.
    clientDefaults: { id_token_signed_response_alg: "ES256" },
    jwks: { keys: [signingKey] },
    cookies: { keys: [secret(), secret()] },
    scopes: ["openid", ...SCOPES],
    routes: { token: "/token", introspection: "/token/introspection", revocation: "/token/revocation" },
    features: {
      devInteractions: { enabled: false },
      clientCredentials: { enabled: true },
      ...introspectionAndRevocation(INTROSPECTORS),
    },
    ttl: {
      // Must be a function for per-token lifetimes; `token.scope` is already set when it is called.
      ClientCredentials: (_ctx, token) => (token.scopes.has(SHORT_LIVED_SCOPE) ? SHORT_LIVED_TTL : DEFAULT_TTL),
    },
    // No network beyond loopback: never fetch a client's JWKS, sector or request URIs.
    fetch: () => {
      throw new Error("the test authorization server makes no outgoing requests");
    },
  };

  const provider = new Provider(issuer, configuration);
  server.on("request", provider.callback());

  return {
    url: issuer,
    issuer,
    tokenEndpoint: `${issuer}/token`,
    introspectionEndpoint: `${issuer}/token/introspection`,
    revocationEndpoint: `${issuer}/token/revocation`,
    clients: { api, gate, gatePost },
    close: () =>
      new Promise<void>((resolve, reject) => {
        server.closeAllConnections();
        server.close((error) => (error ? reject(error) : resolve()));
      }),
  };
}
