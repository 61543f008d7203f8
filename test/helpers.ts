import { createExecutionContext, env, waitOnExecutionContext } from "cloudflare:test";
import { Hono } from "hono";
import { base64url, exportJWK, generateKeyPair, importJWK, SignJWT, type JWK } from "jose";
import { inject } from "vitest";
import { parseConfig } from "../src/config/load";
import { forwardToOrigin, honoMiddleware, portcullis, type PortcullisVariables } from "../src/hono";
import { createGate, type PortcullisOptions } from "../src/pipeline/gate";
import type { PortcullisConfig } from "../src/config/schema";

/** Test-side helpers, run inside workerd. Fixture servers live on loopback (see test/setup/fixtures.ts). */

export const ISSUER = "https://issuer.test/";
export const AUDIENCE = "https://api.test";

export interface OriginRecord {
  method: string;
  path: string;
  headers: Record<string, string | string[] | undefined>;
  bodyBytes: number;
  /** The body the origin received, Base64 (absent when empty). */
  bodyBase64?: string;
}

/** A private fixture namespace: its own JWKS endpoint, fetch counter and origin log. */
export class Fixture {
  readonly ns = crypto.randomUUID();
  readonly issuerBase = `${inject("issuerUrl")}/${this.ns}`;
  readonly jwksUri = `${this.issuerBase}/jwks`;

  async serveJwks(jwks: unknown, extra: { status?: number; body?: string; headers?: Record<string, string>; delayMs?: number } = {}) {
    const response = await fetch(`${this.issuerBase}/jwks/_set`, { method: "POST", body: JSON.stringify({ jwks, ...extra }) });
    await response.arrayBuffer();
  }

  async slowOrigin(delayMs: number) {
    await (await fetch(`${this.issuerBase}/origin/_set`, { method: "POST", body: JSON.stringify({ delayMs }) })).arrayBuffer();
  }

  async serveMetadata(metadata: { as?: unknown; oidc?: unknown }) {
    await (await fetch(`${this.issuerBase}/metadata/_set`, { method: "POST", body: JSON.stringify(metadata) })).arrayBuffer();
  }

  /** Introspection answers by token (`default` for any other), as status + raw body (+ response headers). */
  async serveIntrospection(answers: Record<string, { status?: number; body: unknown; delayMs?: number; headers?: Record<string, string> }>) {
    const raw = Object.fromEntries(
      Object.entries(answers).map(([token, a]) => [
        token,
        { status: a.status ?? 200, body: typeof a.body === "string" ? a.body : JSON.stringify(a.body), delayMs: a.delayMs, headers: a.headers },
      ]),
    );
    await (await fetch(`${this.issuerBase}/introspection/_set`, { method: "POST", body: JSON.stringify(raw) })).arrayBuffer();
  }

  get introspectionEndpoint(): string {
    return `${this.issuerBase}/introspect`;
  }

  async stats(): Promise<{
    jwksFetches: number;
    metadataFetches: number;
    introspectionCalls: { method: string; path: string; authorization: string | null; accept: string; apiVersion: string; form: Record<string, string>; tokenIn: string }[];
    uploadFirstChunk: boolean;
    originRequests: OriginRecord[];
  }> {
    return (await fetch(`${this.issuerBase}/_stats`)).json();
  }

  async originRequests(): Promise<OriginRecord[]> {
    return (await this.stats()).originRequests;
  }

  /** Headers every test request carries so the echo origin files what it receives under this namespace. */
  get tag(): Record<string, string> {
    return { "x-test-ns": this.ns };
  }
}

export type AlgName = "RS256" | "RS384" | "RS512" | "PS256" | "PS384" | "PS512" | "ES256" | "ES384" | "ES512" | "EdDSA";

export interface TestKey {
  alg: AlgName;
  kid: string;
  privateKey: CryptoKey;
  publicJwk: JWK;
}

export async function makeKey(alg: AlgName = "ES256", kid = `k-${crypto.randomUUID().slice(0, 8)}`, opts: { modulusLength?: number } = {}): Promise<TestKey> {
  const { publicKey, privateKey } = await generateKeyPair(alg, { extractable: true, ...(opts.modulusLength ? { modulusLength: opts.modulusLength } : {}) });
  const publicJwk = { ...(await exportJWK(publicKey)), kid, alg, use: "sig" };
  return { alg, kid, privateKey, publicJwk };
}

export const nowSeconds = () => Math.floor(Date.now() / 1000);

/** A valid RFC 9068 access token unless overridden. */
export async function mint(
  key: TestKey,
  claims: Record<string, unknown> = {},
  header: Record<string, unknown> = {},
): Promise<string> {
  const now = nowSeconds();
  return new SignJWT({
    iss: ISSUER,
    aud: AUDIENCE,
    sub: "user-123",
    client_id: "client-abc",
    iat: now,
    exp: now + 300,
    jti: crypto.randomUUID(),
    scope: "items:read",
    ...claims,
  })
    .setProtectedHeader({ alg: key.alg, kid: key.kid, typ: "at+jwt", ...header })
    .sign(key.privateKey);
}

export function baseConfig(fixture: Fixture, overrides: Partial<PortcullisConfig> = {}): PortcullisConfig {
  return {
    realm: "test-api",
    issuers: [{ issuer: ISSUER, audiences: [AUDIENCE], jwks_uri: fixture.jwksUri, algorithms: ["RS256", "ES256", "PS256", "EdDSA"] }],
    routes: [
      { path: "/public/**", access: "public" },
      { path: "/items/**", methods: ["GET"], scopes: ["items:read"] },
      { path: "/items/**", methods: ["POST", "DELETE"], scopes: ["items:write"] },
      { path: "/admin/**", scopes: ["admin"] },
    ],
    ...overrides,
  };
}

/** The User-Agent tag the echo origin files a request by when the `x-test-*` headers did not reach it. */
const testUserAgent = (ns: string, id: string) => `portcullis-test ns=${ns} request=${id}`;
const cameFrom = (record: OriginRecord, id: string) =>
  record.headers["x-test-request"] === id || String(record.headers["user-agent"] ?? "").endsWith(` request=${id}`);

/** Which test request produced a response, so a rejection check can look for exactly that request. */
const requestIds = new WeakMap<Response, string>();

/** A test request to `path` (absolute, or under https://api.test), tagged so the echo origin files it under `fixture`. */
function taggedRequest(fixture: Fixture, path: string, init: RequestInit): { request: Request; id: string } {
  const headers = new Headers(init.headers);
  for (const [name, value] of Object.entries(fixture.tag)) headers.set(name, value);
  const id = crypto.randomUUID();
  headers.set("x-test-request", id);
  // Also in User-Agent: a forwarded CORS preflight keeps only CORS headers (User-Agent among them).
  if (!headers.has("user-agent")) headers.set("user-agent", testUserAgent(fixture.ns, id));
  const url = /^https?:\/\//.test(path) ? path : `https://api.test${path}`;
  return { request: new Request(url, { ...init, headers }), id };
}

export interface Gate {
  fixture: Fixture;
  logs: Record<string, unknown>[];
  /** Sends a request through portcullis + forwarder; the origin echoes what it got. */
  request: (path: string, init?: RequestInit) => Promise<Response>;
}

/**
 * A gate with test-chosen config and clock, mounted the way the vitest project says (`inject("mount")`):
 * `worker` = the Worker entry's pipeline (`gate.handle`), `hono` = the Hono middleware + forwarder (hono.ts) a
 * library user mounts. Both run every gate test (vitest.config.ts projects).
 */
export function makeGate(
  fixture: Fixture,
  config: unknown,
  options: PortcullisOptions & { origin?: string | null; env?: Record<string, unknown> } = {},
): Gate {
  const logs: Record<string, unknown>[] = [];
  const gateOptions: PortcullisOptions = { log: (entry) => logs.push(entry), ...options };
  const parsed = parseConfig(config);
  // origin: a URL (ORIGIN_URL mode, the echo origin by default), or null for route mode.
  const origin = options.origin === null ? undefined : new URL(options.origin ?? inject("originUrl"));
  let handler: (request: Request, env: Record<string, unknown>, ctx: ExecutionContext) => Promise<Response>;
  if (parsed.ok && inject("mount") !== "hono") {
    const gate = createGate(parsed.config, gateOptions);
    handler = (request, env, ctx) => gate.handle(request, env, ctx, origin);
  } else {
    const app = new Hono<{ Variables: PortcullisVariables }>();
    if (parsed.ok) {
      const gate = createGate(parsed.config, gateOptions);
      app.use("*", honoMiddleware(gate));
      app.all("*", forwardToOrigin(gate, origin));
    } else {
      app.use("*", portcullis(config as PortcullisConfig, gateOptions));
    }
    app.onError(() => Response.json({ error: "server_error" }, { status: 500 }));
    handler = async (request, env, ctx) => app.fetch(request, env, ctx);
  }
  return {
    fixture,
    logs,
    request: async (path, init = {}) => {
      const { request, id } = taggedRequest(fixture, path, init);
      const ctx = createExecutionContext();
      const response = await handler(request, { ...env, ...options.env }, ctx);
      await waitOnExecutionContext(ctx);
      requestIds.set(response, id);
      return response;
    },
  };
}

/**
 * A Gate whose requests go through a service binding to a Worker in another isolate (the echo origin files
 * them under `fixture`, so `expectRejected` works). Its logs stay in that isolate: `logs` is always empty.
 */
export function serviceGate(fixture: Fixture, service: Fetcher): Gate {
  return {
    fixture,
    logs: [],
    request: async (path, init = {}) => {
      const { request, id } = taggedRequest(fixture, path, init);
      const response = await service.fetch(request);
      requestIds.set(response, id);
      return response;
    },
  };
}

/** A fixture serving one fresh key, and a gate in front of the echo origin. */
export async function setup(config?: (fixture: Fixture) => unknown, alg: AlgName = "ES256") {
  const fixture = new Fixture();
  const key = await makeKey(alg);
  await fixture.serveJwks({ keys: [key.publicJwk] });
  const gate = makeGate(fixture, config ? config(fixture) : baseConfig(fixture));
  return { fixture, key, gate };
}

export const bearer = (token: string) => ({ authorization: `Bearer ${token}` });

/** Asserts a rejection: status, RFC 6750 error code, and that nothing reached the origin. */
export async function expectRejected(
  gate: Gate,
  response: Response,
  status: number,
  error?: string,
): Promise<{ challenge: string | null; body: Record<string, unknown> }> {
  const text = await response.text(); // empty for HEAD
  const body = (text ? JSON.parse(text) : {}) as Record<string, unknown>;
  const challenge = response.headers.get("www-authenticate");
  const problems: string[] = [];
  if (response.status !== status) problems.push(`status ${response.status} (expected ${status})`);
  if (error !== undefined && !challenge?.includes(`error="${error}"`) && body.error !== error) problems.push(`error ${String(body.error)} (expected ${error})`);
  const id = requestIds.get(response);
  if (!id) problems.push("response did not come from gate.request");
  const reached = id ? (await gate.fixture.originRequests()).filter((record) => cameFrom(record, id)) : [];
  if (reached.length) problems.push("the request reached the origin");
  if (problems.length) throw new Error(`rejection check failed: ${problems.join("; ")}; body ${JSON.stringify(body)}`);
  return { challenge, body };
}

export async function originSaw(response: Response): Promise<OriginRecord> {
  if (response.status !== 200) throw new Error(`expected 200 from the origin, got ${response.status}: ${await response.text()}`);
  return (await response.json()) as OriginRecord;
}

/**
 * Signs an arbitrary protected header by hand (ES256 or RS256 keys), for what jose refuses to produce
 * (unknown `crit`, `b64: false`, RSA keys under 2048 bits). The signature is valid: only the header policy can refuse the token.
 */
export async function signRaw(key: TestKey, header: Record<string, unknown>, claims: Record<string, unknown>): Promise<string> {
  const encode = (value: unknown) => base64url.encode(JSON.stringify(value));
  const input = `${encode(header)}.${encode(claims)}`;
  const algorithm = key.alg === "RS256" ? { name: "RSASSA-PKCS1-v1_5" } : { name: "ECDSA", hash: "SHA-256" };
  const signature = await crypto.subtle.sign(algorithm, key.privateKey, new TextEncoder().encode(input));
  return `${input}.${base64url.encode(new Uint8Array(signature))}`;
}

/** The same private key re-imported for another RSA algorithm (RS256 key -> PS256 signer). */
export async function asAlgorithm(key: TestKey, alg: AlgName): Promise<TestKey> {
  const privateJwk = await exportJWK(key.privateKey);
  return { ...key, alg, privateKey: (await importJWK({ ...privateJwk, alg }, alg)) as CryptoKey };
}
