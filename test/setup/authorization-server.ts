import { generateSigningKeys, newClients, SHORT_LIVED_SCOPE, startOidcServer, type Clients, type OidcServer } from "./oidc-server";

/**
 * A real OAuth 2.0 authorization server on loopback for the token-introspection tests: panva's
 * `oidc-provider` (certified OpenID provider), run in Node by vitest's globalSetup, built by
 * test/setup/oidc-server.ts like the e2e suite's.
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

export const SCOPES = ["items:read", "items:write", "admin", SHORT_LIVED_SCOPE] as const;

export type AuthorizationServer = OidcServer & { clients: Clients };

export async function startAuthorizationServer(): Promise<AuthorizationServer> {
  const clients = newClients();
  const server = await startOidcServer({
    name: "the test authorization server",
    clients,
    scopes: SCOPES,
    keys: await generateSigningKeys([{ kid: "as-1", generate: "ES256", alg: "ES256" }]),
    // The only signing key is ES256; client metadata defaults to RS256 ID tokens and would be rejected.
    idTokenAlg: "ES256",
  });
  return { ...server, clients };
}
