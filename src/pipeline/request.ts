import type { ResolvedConfig } from "../config/schema";
import { invalidRequest } from "../errors/errors";
import type { ExtractOptions } from "../extract/bearer";
import { hasMethodOverride } from "../forward/headers";
import { forwardedQuery } from "../forward/query";
import { canonicalPath, checkCaseFolding, type PathPolicy } from "../policy/path";
import { matchRoute, normalizeHost, type CompiledRoute } from "../policy/routes";

/**
 * The canonical request: what every later step decides on and what is forwarded. The canonical path (400
 * if ambiguous), the normalized host, the forwarded query, the method-override policy and CORS preflight
 * detection. The gate and explain both build it here.
 */

export interface CanonicalRequest {
  /** The client's method: the method checked is the method forwarded. */
  method: string;
  /** The canonical path: the only path that is matched and forwarded. */
  path: string;
  /** The normalized host the rules are matched on (`X-Forwarded-Host`, bound in the assertion). */
  host: string;
  /** The query as forwarded: method overrides and (forward.authorization = "strip") `access_token` removed. */
  search: string;
  /** The client's query carried a method override (removed from `search`). */
  queryOverride: boolean;
}

/** The canonical request for `url`; refuses (400) a path an origin could read differently. */
export function canonicalRequest(method: string, url: URL, paths: PathPolicy, config: ResolvedConfig): CanonicalRequest {
  const path = canonicalPath(url.pathname, paths);
  if (paths.caseInsensitive) checkCaseFolding(path);
  const query = forwardedQuery(url.search, config.forward.authorization === "strip");
  if (query.tokenLookalike) throw invalidRequest("access_token_lookalike");
  const host = normalizeHost(url.host, url.protocol);
  // An empty label left after the one trailing dot (`admin.example.com..`) names no host, and an origin that
  // strips every trailing dot would read it as the host a rule names.
  if (/^\.|\.\.|\.(?::|$)/.test(host)) throw invalidRequest("host_invalid");
  return { method, path, host, search: query.search, queryOverride: query.methodOverride };
}

/** `methods.override_headers = "reject"`: a method override in the query or the headers is a 400. */
export function checkMethodOverride(request: CanonicalRequest, headers: Headers, methods: ResolvedConfig["methods"]): void {
  if (methods.override_headers === "reject" && (request.queryOverride || hasMethodOverride(headers))) throw invalidRequest("method_override");
}

/** What preflight detection reads of the client's request (a `Request` is one). */
export interface ClientRequest {
  method: string;
  headers: Headers;
  body: unknown;
}

/**
 * The method a CORS preflight announces, when it is forwarded without a token (`methods.cors_preflight =
 * "forward"`, and no rule naming OPTIONS itself matches: such a rule decides OPTIONS requests, preflights
 * included, like any other request). Browsers send preflights without credentials or body: one with a body
 * is refused (400).
 */
export function corsPreflight(client: ClientRequest, request: CanonicalRequest, routes: readonly CompiledRoute[], paths: PathPolicy, methods: ResolvedConfig["methods"]): string | undefined {
  if (methods.cors_preflight !== "forward" || client.method !== "OPTIONS" || !client.headers.has("origin")) return undefined;
  const announced = client.headers.get("access-control-request-method")?.trim().toUpperCase();
  if (!announced || !/^[A-Z]+$/.test(announced)) return undefined;
  // A rule that names OPTIONS itself (not through `*`) decides it.
  if (matchRoute(routes, request, paths)?.rule.methods.includes("OPTIONS")) return undefined;
  if (carriesBody(client)) throw invalidRequest("preflight_with_body");
  return announced;
}

/**
 * Any sign of a request body: a preflight has none (Fetch standard, CORS-preflight fetch). A declared
 * `Content-Length: 0` without `Transfer-Encoding` is no body even though the runtime may hand over an empty
 * stream (`wrangler dev` does for every OPTIONS request): the network layer reads no byte past the length.
 */
function carriesBody(client: ClientRequest): boolean {
  const length = client.headers.get("content-length");
  if (client.headers.has("transfer-encoding")) return true;
  if (length !== null) return !/^0+$/.test(length.trim());
  return client.body !== null && client.body !== undefined;
}

/** Client headers a forwarded preflight may carry to the origin: what CORS and content negotiation need, no credentials. */
const CORS_REQUEST_HEADERS = new Set(["origin", "user-agent", "accept", "accept-language", "referer"]);
const CORS_REQUEST_PREFIXES = ["access-control-request-", "sec-fetch-"];

export function corsRequestHeaders(client: Headers): Headers {
  const kept = new Headers();
  for (const [name, value] of client) {
    if (CORS_REQUEST_HEADERS.has(name) || CORS_REQUEST_PREFIXES.some((prefix) => name.startsWith(prefix))) kept.set(name, value);
  }
  return kept;
}

/** What token extraction takes from the `token` section; the DPoP scheme is read when any issuer or rule accepts it. */
export function extractOptions(config: ResolvedConfig): ExtractOptions {
  return { maxLength: config.token.max_length, allowQuery: config.token.allow_query, extraCharacters: config.token.extra_characters, dpop: dpopAlgorithms(config) !== undefined };
}

/**
 * The proof algorithms the gate accepts (DPoP challenges, RFC 9728 metadata), undefined when DPoP is off
 * everywhere: those of every issuer whose mode is not disabled, or of every issuer when a rule turns DPoP on.
 */
export function dpopAlgorithms(config: ResolvedConfig): string[] | undefined {
  const ruleEnables = config.routes.some((route) => route.dpop !== undefined && route.dpop !== "disabled");
  const issuers = config.issuers.filter((issuer) => ruleEnables || issuer.dpop.mode !== "disabled");
  return issuers.length ? [...new Set(issuers.flatMap((issuer) => issuer.dpop.algorithms))] : undefined;
}

/**
 * Whether every token must be DPoP-bound (RFC 9728 `dpop_bound_access_tokens_required`; no Bearer
 * challenge): every issuer requires it, and no rule relaxes it.
 */
export function dpopRequiredEverywhere(config: ResolvedConfig): boolean {
  const everyRule = config.routes.every((route) => route.dpop === undefined || route.dpop === "required");
  return everyRule && config.issuers.every((issuer) => issuer.dpop.mode === "required");
}

/**
 * THE URL a DPoP proof's `htu` must name: the one the gate authorizes, in the form it routes on. The
 * client's scheme, the normalized host the rules matched (a custom domain's, workers.dev's: what the
 * client called, never ORIGIN_URL's) and the canonical path, compared after the same canonicalization
 * (so `%61` and `a` are one path, `/a` and `/a/` two); no user info. A path the gate would refuse is no match.
 */
export function sameTarget(request: CanonicalRequest, protocol: string, paths: PathPolicy): (htu: URL) => boolean {
  return (htu) => {
    if (htu.protocol !== protocol || htu.username !== "" || htu.password !== "") return false;
    if (normalizeHost(htu.host, htu.protocol) !== request.host) return false;
    try {
      return canonicalPath(htu.pathname, paths) === request.path;
    } catch {
      return false;
    }
  };
}
