/**
 * Origin side: verify the assertion Portcullis attaches to each forwarded request. One call, request in,
 * verified identity out. Self-contained (only `jose`), so it runs unchanged in a Worker, in Node 20+ (the
 * package's compiled build/origin/verify-assertion.js), from source in Node 22.18+ (which strips the types;
 * not under node_modules) or in any bundler:
 *
 *   import { createRemoteJWKSet } from "jose";
 *   import { verifyAssertion } from "portcullis/origin";
 *   const keys = createRemoteJWKSet(new URL("https://api.example.com/.well-known/portcullis-keys.json"));
 *   const identity = await verifyAssertion(request, { issuer: "https://gate.example", audience: "orders-origin", keys });
 *
 * It checks the signature (EdDSA or ES256, explicit `typ`), `iss`, `aud`, a lifetime of at most 60 s, the
 * binding to this exact request (method; the raw request target, byte for byte, in canonical form; the host
 * the gate matched against `X-Forwarded-Host`, which must be present; optionally scheme and host of the URL),
 * no method-override or rewrite header (the gate strips them all), the identity headers (exactly the ones the
 * gate set, unaltered), `Content-Digest` when the gate saw one (the body itself is the caller's to check
 * against it), and, with a replay store, that the assertion was not used before.
 */
import { base64url, jwtVerify, type JWTPayload, type JWTVerifyGetKey } from "jose";

export const ASSERTION_TYP = "portcullis-assertion+jwt";

export interface ReplayStore {
  /** Returns false when `jti` was already seen; otherwise remembers it until `expiresAt` (epoch seconds). */
  claim(jti: string, expiresAt: number): boolean | Promise<boolean>;
}

export interface VerifyAssertionOptions {
  issuer: string;
  audience: string;
  /** The gate's public keys (`createRemoteJWKSet` on its `jwks_path`, or `createLocalJWKSet`). */
  keys: JWTVerifyGetKey;
  /** Default `x-portcullis-assertion`. */
  header?: string;
  /** The gate's `forward.header_prefix`, default `x-auth-`. */
  headerPrefix?: string;
  /** Also require scheme and host to match (off by default: behind proxies the origin often sees another). */
  matchOrigin?: boolean;
  /** The URL the client used, when the request object's URL is not it (for example behind a rewrite). */
  url?: string;
  /**
   * The request target exactly as the origin received it, before any parsing: origin-form path and query
   * (in Node `req.url`). Compared byte for byte with the bound one. Default: `url`, else `request.url`, with
   * `scheme://authority` cut off as text. A Fetch `Request` (Workers, Deno, Bun) has no raw target: its URL is
   * already parsed (dot segments resolved, `\` read as `/`), which is safe when the code after this routes
   * on that same URL.
   */
  target?: string;
  replay?: ReplayStore;
  /** Seconds of clock skew tolerated; default 5. */
  clockTolerance?: number;
}

export interface OriginRequest {
  method: string;
  url: string;
  headers: Headers | { get(name: string): string | null; keys(): IterableIterator<string> };
}

export interface VerifiedAssertion {
  /** The normalized host the gate matched its rules on (what it sent as `X-Forwarded-Host`). */
  host: string;
  sub?: string;
  client_id?: string;
  scopes: string[];
  /**
   * Present when the client's token was sender-constrained and the gate checked the binding: `jkt` the
   * RFC 7638 thumbprint of the DPoP key the request proved, `x5t#S256` the client certificate's SHA-256.
   */
  sender?: { jkt?: string; "x5t#S256"?: string };
  claims: JWTPayload;
}

export class AssertionError extends Error {
  readonly code: string;
  // No parameter properties here: Node runs this file by stripping types, which allows only erasable syntax.
  constructor(code: string) {
    super(`portcullis assertion rejected: ${code}`);
    this.name = "AssertionError";
    this.code = code;
  }
}

export async function verifyAssertion(request: OriginRequest, options: VerifyAssertionOptions): Promise<VerifiedAssertion> {
  const header = (options.header ?? "x-portcullis-assertion").toLowerCase();
  const prefix = (options.headerPrefix ?? "x-auth-").toLowerCase();
  const token = request.headers.get(header);
  if (!token) throw new AssertionError("missing");
  let claims: JWTPayload;
  try {
    ({ payload: claims } = await jwtVerify(token, options.keys, {
      issuer: options.issuer,
      audience: options.audience,
      algorithms: ["EdDSA", "ES256"],
      typ: ASSERTION_TYP,
      requiredClaims: ["iat", "exp", "jti", "htm", "htu", "host", "hpx"],
      clockTolerance: options.clockTolerance ?? 5,
    }));
  } catch (error) {
    const code = (error as { code?: string }).code;
    throw new AssertionError(code === "ERR_JWT_EXPIRED" ? "expired" : "invalid");
  }
  if (typeof claims.exp !== "number" || typeof claims.iat !== "number" || claims.exp - claims.iat > 60) throw new AssertionError("lifetime");

  if (claims.htm !== request.method.toUpperCase()) throw new AssertionError("method_mismatch");
  const target = originForm(options.target ?? options.url ?? request.url);
  if (!isCanonicalTarget(target)) throw new AssertionError("target_not_canonical");
  if (target !== originForm(String(claims.htu))) throw new AssertionError("url_mismatch");
  if (options.matchOrigin && !sameOrigin(String(claims.htu), options.url ?? request.url)) throw new AssertionError("url_mismatch");
  // The gate always sends the host it matched; a request without it did not come from the gate as sent.
  if (typeof claims.host !== "string" || request.headers.get("x-forwarded-host") !== claims.host) throw new AssertionError("host_mismatch");
  // The gate strips these from every request: one here was added after it, to reroute what it authorized.
  if ([...request.headers.keys()].some((name) => REROUTING.includes(name.toLowerCase().replace(/_/g, "-")))) throw new AssertionError("rerouting_header");

  // Set up with another prefix than the gate's, the check below would look at the wrong headers: a client's
  // copy in the gate's namespace could pass for identity the gate never set.
  if (claims.hpx !== prefix) throw new AssertionError("header_prefix_mismatch");
  const names = Array.isArray(claims.hdrs) ? (claims.hdrs as unknown[]).filter((name): name is string => typeof name === "string") : [];
  const present = [...request.headers.keys()].map((name) => name.toLowerCase()).filter((name) => name.replace(/_/g, "-").startsWith(prefix));
  const expected = new Set(names);
  if (present.length !== expected.size || present.some((name) => !expected.has(name))) throw new AssertionError("headers_mismatch");
  if ((await headersDigest(names, request.headers)) !== claims.hdh) throw new AssertionError("headers_mismatch");

  if (claims.cdg !== undefined && request.headers.get("content-digest") !== claims.cdg) throw new AssertionError("content_digest_mismatch");
  if (options.replay && !(await options.replay.claim(String(claims.jti), claims.exp))) throw new AssertionError("replayed");

  return {
    host: claims.host,
    ...(typeof claims.sub === "string" ? { sub: claims.sub } : {}),
    ...(typeof claims.client_id === "string" ? { client_id: claims.client_id } : {}),
    scopes: typeof claims.scope === "string" && claims.scope ? claims.scope.split(" ") : [],
    ...senderOf(claims.sender),
    claims,
  };
}

/**
 * Headers that make an origin framework act on another method or path than the request line's (method
 * overrides, `X-Original-URL` and relatives): the gate's list (src/forward/headers.ts), repeated here because
 * this file ships on its own.
 */
const REROUTING = ["x-http-method-override", "x-http-method", "x-method-override", "x-original-url", "x-rewrite-url", "x-original-uri", "x-forwarded-uri", "x-envoy-original-path"];

/** The `sender` claim's known members (strings only), as `{ sender }`, or nothing. */
function senderOf(value: unknown): { sender?: { jkt?: string; "x5t#S256"?: string } } {
  if (typeof value !== "object" || value === null) return {};
  const { jkt, "x5t#S256": x5t } = value as Record<string, unknown>;
  const sender = { ...(typeof jkt === "string" ? { jkt } : {}), ...(typeof x5t === "string" ? { "x5t#S256": x5t } : {}) };
  return Object.keys(sender).length ? { sender } : {};
}

/**
 * The origin-form target (path and query) of a raw target: `scheme://authority` cut off as text, never with a
 * URL parser, which would resolve the dot segments and backslashes this verifier must see.
 */
function originForm(target: string): string {
  const authority = /^[A-Za-z][A-Za-z0-9+.-]*:\/\/[^/\\?#]*/.exec(target);
  if (!authority) return target;
  const rest = target.slice(authority[0].length);
  return rest.startsWith("/") ? rest : `/${rest}`;
}

/**
 * False for a path that origins may route differently from its bytes, and that the gate never forwards: a
 * `.` or `..` segment (also as `%2e`), a `\`, an encoded `/` or `\`. The query is data and is not checked.
 */
function isCanonicalTarget(target: string): boolean {
  const query = target.indexOf("?");
  const path = query === -1 ? target : target.slice(0, query);
  if (/\\|%2f|%5c/i.test(path)) return false;
  return !path.split("/").some((segment) => /^(?:\.|%2e){1,2}$/i.test(segment));
}

function sameOrigin(bound: string, actual: string): boolean {
  try {
    return new URL(bound).origin === new URL(actual).origin;
  } catch {
    return false;
  }
}

/**
 * SHA-256 over `name:value` lines of the named headers, in the given (sorted) order, base64url. The gate
 * mints `hdh` with this same function; it is not src/lib/digest.ts because this file ships standalone
 * (`portcullis/origin`, run by Node's type stripping) and may import only jose.
 */
export async function headersDigest(names: readonly string[], headers: { get(name: string): string | null }): Promise<string> {
  const text = names.map((name) => `${name}:${headers.get(name) ?? ""}`).join("\n");
  return base64url.encode(new Uint8Array(await crypto.subtle.digest("SHA-256", new TextEncoder().encode(text))));
}

/** An in-memory replay store for one process (use a shared store when the origin runs several). */
export function memoryReplayStore(): ReplayStore {
  const seen = new Map<string, number>();
  return {
    claim(jti, expiresAt) {
      const now = Date.now() / 1000;
      for (const [id, until] of seen) if (until < now) seen.delete(id);
      if (seen.has(jti)) return false;
      seen.set(jti, expiresAt + 60);
      return true;
    },
  };
}
