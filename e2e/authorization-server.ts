import { randomBytes } from "node:crypto";
import { createServer } from "node:http";
import type { AddressInfo } from "node:net";
import { exportJWK, generateKeyPair, type JWK } from "jose";
import Provider, { errors, type ClientMetadata, type Configuration, type ResourceServer } from "oidc-provider";
import { introspectionAndRevocation } from "../test/setup/oidc-policies";
import { memoryAdapter, type OidcStore } from "../test/setup/oidc-memory-adapter";

/**
 * The end-to-end suite's authorization server: panva's oidc-provider 9 on loopback, started (and restarted
 * with new keys, on the same port) by the suite.
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

export const ALGORITHMS = ["RS256", "RS384", "RS512", "PS256", "PS384", "PS512", "ES256", "ES384", "ES512", "EdDSA"] as const;
export type Algorithm = (typeof ALGORITHMS)[number];

export const resourceFor = (alg: Algorithm) => `https://api.e2e/${alg}`;
/** A resource the AS knows but Portcullis does not accept as an audience. */
export const FOREIGN_RESOURCE = "https://other.e2e/api";

export const SCOPES = ["items:read", "items:write", "short-lived"] as const;
export const SHORT_LIVED_SCOPE = "short-lived";
export const SHORT_LIVED_TTL = 2;
export const DEFAULT_TTL = 600;

const INTROSPECTORS = new Set(["gate", "gate-post"]);

/** The JWT access token resources: one per algorithm, plus the foreign one. */
const RESOURCE_SERVERS = new Map<string, ResourceServer>([
  ...ALGORITHMS.map((alg): [string, ResourceServer] => [resourceFor(alg), jwtResource(resourceFor(alg), alg)]),
  [FOREIGN_RESOURCE, jwtResource(FOREIGN_RESOURCE, "ES256")],
]);

function jwtResource(audience: string, alg: Algorithm): ResourceServer {
  return { scope: SCOPES.join(" "), audience, accessTokenFormat: "jwt", jwt: { sign: { alg } } };
}

export interface ClientPair {
  id: string;
  secret: string;
}
export interface Clients {
  api: ClientPair;
  gate: ClientPair;
  gatePost: ClientPair;
}

/** What survives a restart: the clients (their secrets) and the stored artifacts (opaque tokens). */
export interface PersistentState {
  clients: Clients;
  store: OidcStore;
}

export interface AuthorizationServer {
  /** `http://127.0.0.1:<port>`, no trailing slash; also the issuer. */
  issuer: string;
  port: number;
  generation: number;
  /** Every request this instance received, as "METHOD /path" (the order they arrived in). */
  requests: string[];
  /** The kids of this generation's keys, by key name (rsa, p256, p384, p521, ed25519). */
  kids: Record<string, string>;
  tokenEndpoint: string;
  revocationEndpoint: string;
  state: PersistentState;
  close(): Promise<void>;
}

const secret = () => randomBytes(24).toString("base64url");

export function newState(): PersistentState {
  return {
    clients: {
      api: { id: "api-client", secret: secret() },
      gate: { id: "gate", secret: secret() },
      gatePost: { id: "gate-post", secret: secret() },
    },
    store: new Map(),
  };
}

/** Private signing JWKs for one generation. */
export async function generateSigningKeys(generation: number): Promise<{ keys: JWK[]; kids: Record<string, string> }> {
  const specs = [
    { name: "rsa", generate: "RS256", options: { modulusLength: 2048 }, alg: undefined },
    { name: "p256", generate: "ES256", options: {}, alg: "ES256" },
    { name: "p384", generate: "ES384", options: {}, alg: "ES384" },
    { name: "p521", generate: "ES512", options: {}, alg: "ES512" },
    { name: "ed25519", generate: "Ed25519", options: {}, alg: "EdDSA" },
  ] as const;
  const keys: JWK[] = [];
  const kids: Record<string, string> = {};
  for (const spec of specs) {
    const { privateKey } = await generateKeyPair(spec.generate, { ...spec.options, extractable: true });
    const kid = `${spec.name}-g${generation}`;
    kids[spec.name] = kid;
    keys.push({ ...(await exportJWK(privateKey)), kid, use: "sig", ...(spec.alg ? { alg: spec.alg } : {}) });
  }
  return { keys, kids };
}

export async function startAuthorizationServer(
  options: { port?: number; generation?: number; state?: PersistentState } = {},
): Promise<AuthorizationServer> {
  const generation = options.generation ?? 1;
  const state = options.state ?? newState();
  const { keys, kids } = await generateSigningKeys(generation);

  // The issuer names the port: listen first, attach the provider's handler right after.
  const requests: string[] = [];
  const server = createServer((request) => void requests.push(`${request.method} ${request.url}`));
  await new Promise<void>((resolve, reject) => {
    server.once("error", reject);
    server.listen(options.port ?? 0, "127.0.0.1", () => resolve());
  });
  const { port } = server.address() as AddressInfo;
  const issuer = `http://127.0.0.1:${port}`;
  const { api, gate, gatePost } = state.clients;

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
    // The resource server: it only authenticates at the introspection endpoint (basic, or post for gate-post).
    ...([[gate, "client_secret_basic"], [gatePost, "client_secret_post"]] as const).map(([client, method]) => ({
      client_id: client.id,
      client_secret: client.secret,
      grant_types: [],
      response_types: [],
      redirect_uris: [],
      token_endpoint_auth_method: method,
    })),
  ];

  const configuration: Configuration = {
    adapter: memoryAdapter(state.store),
    clients,
    jwks: { keys },
    cookies: { keys: [secret(), secret()] },
    scopes: ["openid", ...SCOPES],
    routes: { jwks: "/jwks", token: "/token", introspection: "/token/introspection", revocation: "/token/revocation" },
    features: {
      devInteractions: { enabled: false },
      clientCredentials: { enabled: true },
      ...introspectionAndRevocation(INTROSPECTORS),
      resourceIndicators: {
        enabled: true,
        // No `resource` parameter: no resource server, so an opaque token (for introspection).
        defaultResource: () => undefined,
        useGrantedResource: () => false,
        getResourceServerInfo: (_ctx, resourceIndicator) => {
          const info = RESOURCE_SERVERS.get(resourceIndicator);
          if (!info) throw new errors.InvalidTarget();
          return info;
        },
      },
    },
    ttl: {
      // Called once `token.scope` is set (for JWTs: already narrowed to the resource's scopes).
      ClientCredentials: (_ctx, token) => (token.scopes.has(SHORT_LIVED_SCOPE) ? SHORT_LIVED_TTL : DEFAULT_TTL),
    },
    fetch: () => {
      throw new Error("the e2e authorization server makes no outgoing requests");
    },
  };

  const provider = new Provider(issuer, configuration);
  server.on("request", provider.callback());

  return {
    issuer,
    port,
    generation,
    requests,
    kids,
    tokenEndpoint: `${issuer}/token`,
    revocationEndpoint: `${issuer}/token/revocation`,
    state,
    close: () =>
      new Promise<void>((resolve, reject) => {
        server.closeAllConnections();
        server.close((error) => (error ? reject(error) : resolve()));
      }),
  };
}

/** Key rotation: stops `as` and starts the next key generation on the same port, same clients and tokens. */
export async function rotate(as: AuthorizationServer): Promise<AuthorizationServer> {
  await as.close();
  return startAuthorizationServer({ port: as.port, generation: as.generation + 1, state: as.state });
}

const basic = (client: ClientPair) => `Basic ${Buffer.from(`${encodeURIComponent(client.id)}:${encodeURIComponent(client.secret)}`).toString("base64")}`;

export interface TokenResponse {
  access_token: string;
  token_type: string;
  expires_in: number;
  scope?: string;
}

/** Client credentials grant as `api-client`; with `resource`, a JWT for that resource. */
export async function clientCredentials(as: AuthorizationServer, params: { scope: string; resource?: string }): Promise<TokenResponse> {
  const body = new URLSearchParams({ grant_type: "client_credentials", scope: params.scope });
  if (params.resource) body.set("resource", params.resource);
  const response = await fetch(as.tokenEndpoint, {
    method: "POST",
    headers: { authorization: basic(as.state.clients.api), "content-type": "application/x-www-form-urlencoded" },
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
