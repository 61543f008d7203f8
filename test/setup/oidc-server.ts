import { randomBytes } from "node:crypto";
import { createServer } from "node:http";
import type { AddressInfo } from "node:net";
import { exportJWK, generateKeyPair, type JWK } from "jose";
import Provider, { errors, type ClientMetadata, type Configuration, type ResourceServer, type SigningAlgorithmWithNone } from "oidc-provider";
import { memoryAdapter, type OidcStore } from "./oidc-memory-adapter";
import { introspectionAndRevocation } from "./oidc-policies";

/**
 * The one way Portcullis's tests run a real authorization server: panva's oidc-provider 9 on loopback, used by
 * the test fixture (test/setup/authorization-server.ts, opaque tokens) and the e2e suite
 * (e2e/authorization-server.ts, JWT access tokens per resource, restarted with new keys). Both get:
 *
 * - three clients: `api-client` (client credentials grant, RFC 6749 4.4, limited to `scopes`), and the
 *   resource servers `gate` (client_secret_basic) and `gate-post` (client_secret_post), which only
 *   authenticate at the introspection endpoint;
 * - introspection (RFC 7662) and revocation (RFC 7009) as test/setup/oidc-policies.ts words them;
 * - the silent memory adapter (test/setup/oidc-memory-adapter.ts), its store optionally kept across restarts;
 * - the marker scope `short-lived`: such a token lives SHORT_LIVED_TTL seconds, others DEFAULT_TTL;
 * - without `resources` every access token is opaque; with them, a token requested with a `resource`
 *   (RFC 8707) is the JWT that resource's entry describes, and one without stays opaque;
 * - nothing beyond loopback: no interactions, no dynamic registration, no outgoing fetches.
 *
 * What differs between the two is parameters: scopes, signing keys, resources, port and stored state.
 */

export const SHORT_LIVED_SCOPE = "short-lived";
export const SHORT_LIVED_TTL = 2;
export const DEFAULT_TTL = 600;

/** The resource-server clients allowed to introspect every token. */
const INTROSPECTORS = new Set(["gate", "gate-post"]);

export interface ClientCredentials {
  id: string;
  secret: string;
}
export interface Clients {
  api: ClientCredentials;
  gate: ClientCredentials;
  gatePost: ClientCredentials;
}

export const newSecret = () => randomBytes(24).toString("base64url");

/** The three clients, with fresh secrets. */
export function newClients(): Clients {
  return {
    api: { id: "api-client", secret: newSecret() },
    gate: { id: "gate", secret: newSecret() },
    gatePost: { id: "gate-post", secret: newSecret() },
  };
}

export interface SigningKeySpec {
  kid: string;
  /** What jose's generateKeyPair is asked for (an algorithm, or "Ed25519"). */
  generate: "RS256" | "ES256" | "ES384" | "ES512" | "Ed25519";
  /** The JWK's `alg`; without it oidc-provider picks the key by `kty`/`crv` (an RSA key then signs RS256..PS512). */
  alg?: string;
  modulusLength?: number;
}

/** Private signing JWKs, one per spec. */
export async function generateSigningKeys(specs: readonly SigningKeySpec[]): Promise<JWK[]> {
  const keys: JWK[] = [];
  for (const spec of specs) {
    const options = spec.modulusLength ? { modulusLength: spec.modulusLength } : {};
    const { privateKey } = await generateKeyPair(spec.generate, { ...options, extractable: true });
    keys.push({ ...(await exportJWK(privateKey)), kid: spec.kid, ...(spec.alg ? { alg: spec.alg } : {}), use: "sig" });
  }
  return keys;
}

export interface OidcServerOptions {
  /** Names the server in the error thrown if it ever tries an outgoing request. */
  name: string;
  /** A fixed port (a restart keeps its issuer); default: any free one. */
  port?: number;
  clients: Clients;
  /** The scopes `api-client` may request. */
  scopes: readonly string[];
  keys: JWK[];
  /** The memory adapter's store; pass the previous instance's to keep its tokens across a restart. */
  store?: OidcStore;
  /** JWT access token formats by resource indicator (RFC 8707); without, every token is opaque. */
  resources?: ReadonlyMap<string, ResourceServer>;
  /** For clients' ID tokens, when the keys cannot sign oidc-provider's default RS256. */
  idTokenAlg?: SigningAlgorithmWithNone;
}

export interface OidcServer {
  /** `http://127.0.0.1:<port>`, no trailing slash; also the base of every endpoint. */
  issuer: string;
  port: number;
  /** Every request this instance received, as "METHOD /path" (the order they arrived in). */
  requests: string[];
  tokenEndpoint: string;
  introspectionEndpoint: string;
  revocationEndpoint: string;
  close(): Promise<void>;
}

const ROUTES = { jwks: "/jwks", token: "/token", introspection: "/token/introspection", revocation: "/token/revocation" };

export async function startOidcServer(options: OidcServerOptions): Promise<OidcServer> {
  // The issuer names the port: listen first, attach the provider's handler right after (no request can
  // arrive before then: nobody knows the port yet, or, on a restart, the old instance is already closed).
  const requests: string[] = [];
  const server = createServer((request) => void requests.push(`${request.method} ${request.url}`));
  await new Promise<void>((resolve, reject) => {
    server.once("error", reject);
    server.listen(options.port ?? 0, "127.0.0.1", () => resolve());
  });
  const { port } = server.address() as AddressInfo;
  const issuer = `http://127.0.0.1:${port}`;
  const provider = new Provider(issuer, providerConfiguration(options));
  server.on("request", provider.callback());

  return {
    issuer,
    port,
    requests,
    tokenEndpoint: `${issuer}${ROUTES.token}`,
    introspectionEndpoint: `${issuer}${ROUTES.introspection}`,
    revocationEndpoint: `${issuer}${ROUTES.revocation}`,
    close: () =>
      new Promise<void>((resolve, reject) => {
        server.closeAllConnections();
        server.close((error) => (error ? reject(error) : resolve()));
      }),
  };
}

function providerConfiguration(options: OidcServerOptions): Configuration {
  return {
    adapter: memoryAdapter(options.store),
    clients: clientMetadata(options.clients, options.scopes),
    ...(options.idTokenAlg ? { clientDefaults: { id_token_signed_response_alg: options.idTokenAlg } } : {}),
    jwks: { keys: options.keys },
    cookies: { keys: [newSecret(), newSecret()] },
    scopes: ["openid", ...options.scopes],
    routes: ROUTES,
    features: {
      devInteractions: { enabled: false },
      clientCredentials: { enabled: true },
      ...introspectionAndRevocation(INTROSPECTORS),
      ...(options.resources ? { resourceIndicators: resourceIndicators(options.resources) } : {}),
    },
    ttl: {
      // Must be a function for per-token lifetimes; called once `token.scope` is set (for JWTs: already
      // narrowed to the resource's scopes).
      ClientCredentials: (_ctx, token) => (token.scopes.has(SHORT_LIVED_SCOPE) ? SHORT_LIVED_TTL : DEFAULT_TTL),
    },
    // No network beyond loopback: never fetch a client's JWKS, sector or request URIs.
    fetch: () => {
      throw new Error(`${options.name} makes no outgoing requests`);
    },
  };
}

function clientMetadata({ api, gate, gatePost }: Clients, scopes: readonly string[]): ClientMetadata[] {
  return [
    {
      client_id: api.id,
      client_secret: api.secret,
      grant_types: ["client_credentials"],
      response_types: [],
      redirect_uris: [],
      token_endpoint_auth_method: "client_secret_basic",
      scope: scopes.join(" "),
    },
    // The resource servers: they only authenticate at the introspection endpoint.
    ...([[gate, "client_secret_basic"], [gatePost, "client_secret_post"]] as const).map(([client, method]) => ({
      client_id: client.id,
      client_secret: client.secret,
      grant_types: [],
      response_types: [],
      redirect_uris: [],
      token_endpoint_auth_method: method,
    })),
  ];
}

/** RFC 8707: a known resource gets its JWT format; no `resource` parameter means no resource, an opaque token. */
function resourceIndicators(resources: ReadonlyMap<string, ResourceServer>) {
  return {
    enabled: true,
    defaultResource: () => undefined,
    useGrantedResource: () => false,
    getResourceServerInfo: (_ctx: unknown, resourceIndicator: string) => {
      const info = resources.get(resourceIndicator);
      if (!info) throw new errors.InvalidTarget();
      return info;
    },
  } satisfies NonNullable<Configuration["features"]>["resourceIndicators"];
}
