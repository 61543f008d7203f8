import type { ResourceServer } from "oidc-provider";
import type { OidcStore } from "../test/setup/oidc-memory-adapter";
import {
  generateSigningKeys,
  newClients,
  SHORT_LIVED_SCOPE,
  startOidcServer,
  type ClientCredentials,
  type Clients,
  type OidcServer,
  type SigningKeySpec,
} from "../test/setup/oidc-server";

/**
 * The end-to-end suite's authorization server: panva's oidc-provider 9 on loopback, built by
 * test/setup/oidc-server.ts like the test fixture's, started (and restarted with new keys, on the same port)
 * by the suite.
 *
 * - Client credentials (RFC 6749 4.4) with a resource indicator (RFC 8707) issue JWT access tokens
 *   (RFC 9068, `typ: at+jwt`): each algorithm has its own resource, `https://api.e2e/<ALG>`, signed with that
 *   algorithm; FOREIGN_RESOURCE is a resource Portcullis does not accept (ES256).
 * - Without a resource the token is opaque (introspection, RFC 7662, for the clients `gate` and `gate-post`;
 *   revocation, RFC 7009, by the owning client).
 * - The marker scope `short-lived` makes a token live SHORT_LIVED_TTL seconds.
 *
 * Signing keys (`jwks`, private, generated at start): one RSA 2048 key without `alg` (oidc-provider's keystore
 * picks a key by `kty`, `crv`, and `alg` only when the key names one, so this one signs RS256..PS512), and
 * one key each for P-256, P-384, P-521 and Ed25519, with `alg`. Kids name the key and the generation
 * (`rsa-g1`, ...), so a restart with the next generation is a key rotation.
 */

export { SHORT_LIVED_TTL } from "../test/setup/oidc-server";

export const ALGORITHMS = ["RS256", "RS384", "RS512", "PS256", "PS384", "PS512", "ES256", "ES384", "ES512", "EdDSA"] as const;
export type Algorithm = (typeof ALGORITHMS)[number];

export const resourceFor = (alg: Algorithm) => `https://api.e2e/${alg}`;
/** A resource the AS knows but Portcullis does not accept as an audience. */
export const FOREIGN_RESOURCE = "https://other.e2e/api";

export const SCOPES = ["items:read", "items:write", SHORT_LIVED_SCOPE] as const;

/** The JWT access token resources: one per algorithm, plus the foreign one. */
const RESOURCE_SERVERS = new Map<string, ResourceServer>([
  ...ALGORITHMS.map((alg): [string, ResourceServer] => [resourceFor(alg), jwtResource(resourceFor(alg), alg)]),
  [FOREIGN_RESOURCE, jwtResource(FOREIGN_RESOURCE, "ES256")],
]);

function jwtResource(audience: string, alg: Algorithm): ResourceServer {
  return { scope: SCOPES.join(" "), audience, accessTokenFormat: "jwt", jwt: { sign: { alg } } };
}

/** What survives a restart: the clients (their secrets) and the stored artifacts (opaque tokens). */
export interface PersistentState {
  clients: Clients;
  store: OidcStore;
}

export type AuthorizationServer = OidcServer & {
  generation: number;
  /** The kids of this generation's keys, by key name (rsa, p256, p384, p521, ed25519). */
  kids: Record<string, string>;
  state: PersistentState;
};

function newState(): PersistentState {
  return { clients: newClients(), store: new Map() };
}

/** One generation's keys: RSA (no `alg`), P-256, P-384, P-521, Ed25519; kids `<name>-g<generation>`. */
function keySpecs(generation: number): Record<string, SigningKeySpec> {
  const kid = (name: string) => `${name}-g${generation}`;
  return {
    rsa: { kid: kid("rsa"), generate: "RS256", modulusLength: 2048 },
    p256: { kid: kid("p256"), generate: "ES256", alg: "ES256" },
    p384: { kid: kid("p384"), generate: "ES384", alg: "ES384" },
    p521: { kid: kid("p521"), generate: "ES512", alg: "ES512" },
    ed25519: { kid: kid("ed25519"), generate: "Ed25519", alg: "EdDSA" },
  };
}

export async function startAuthorizationServer(
  options: { port?: number; generation?: number; state?: PersistentState } = {},
): Promise<AuthorizationServer> {
  const generation = options.generation ?? 1;
  const state = options.state ?? newState();
  const specs = keySpecs(generation);
  const server = await startOidcServer({
    name: "the e2e authorization server",
    ...(options.port ? { port: options.port } : {}),
    clients: state.clients,
    scopes: SCOPES,
    keys: await generateSigningKeys(Object.values(specs)),
    store: state.store,
    resources: RESOURCE_SERVERS,
  });
  const kids = Object.fromEntries(Object.entries(specs).map(([name, spec]) => [name, spec.kid]));
  return { ...server, generation, kids, state };
}

/** Key rotation: stops `as` and starts the next key generation on the same port, same clients and tokens. */
export async function rotate(as: AuthorizationServer): Promise<AuthorizationServer> {
  await as.close();
  return startAuthorizationServer({ port: as.port, generation: as.generation + 1, state: as.state });
}

const basic = (client: ClientCredentials) => `Basic ${Buffer.from(`${encodeURIComponent(client.id)}:${encodeURIComponent(client.secret)}`).toString("base64")}`;

export interface TokenResponse {
  access_token: string;
  token_type: string;
  expires_in: number;
  scope?: string;
}

/**
 * Client credentials grant as `api-client`; with `resource`, a JWT for that resource; with `dpop` (a proof
 * for POST to the token endpoint), a DPoP-bound token (oidc-provider's `features.dPoP`, on by default).
 */
export async function clientCredentials(as: AuthorizationServer, params: { scope: string; resource?: string; dpop?: string }): Promise<TokenResponse> {
  const body = new URLSearchParams({ grant_type: "client_credentials", scope: params.scope });
  if (params.resource) body.set("resource", params.resource);
  const response = await fetch(as.tokenEndpoint, {
    method: "POST",
    headers: { authorization: basic(as.state.clients.api), "content-type": "application/x-www-form-urlencoded", ...(params.dpop ? { dpop: params.dpop } : {}) },
    body,
  });
  const json = (await response.json()) as TokenResponse & { error?: string; error_description?: string };
  if (response.status !== 200) throw new Error(`token endpoint: ${response.status} ${json.error}: ${json.error_description}`);
  return json;
}

/** RFC 7009 revocation by the owning client. */
export async function revoke(as: AuthorizationServer, token: string): Promise<void> {
  const response = await fetch(as.revocationEndpoint, {
    method: "POST",
    headers: { authorization: basic(as.state.clients.api), "content-type": "application/x-www-form-urlencoded" },
    body: new URLSearchParams({ token, token_type_hint: "access_token" }),
  });
  await response.arrayBuffer();
  if (response.status !== 200) throw new Error(`revocation endpoint: ${response.status}`);
}
