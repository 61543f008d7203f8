import type { JWTPayload } from "jose";
import type { IssuerConfig, ResolvedConfig } from "./config/schema";
import { errorResponse, type ChallengeOptions } from "./errors/challenge";
import { GateError } from "./errors/errors";
import { metadataDocument, metadataUrl } from "./errors/metadata";
import { extractBearer } from "./extract/bearer";
import { keyRing } from "./forward/assertion";
import { claimAt, encodeHeaderValue, hasMethodOverride, setForwardedHost, stripControlledHeaders, type HeaderKind } from "./forward/headers";
import { forwardedQuery } from "./forward/query";
import { sendToOrigin } from "./forward/origin";
import { consoleLog, safeKid, type LogFn } from "./log";
import { canonicalPath, pathPolicy } from "./policy/path";
import { authorize } from "./policy/requirements";
import { compileRoutes, matchRoute, normalizeHost, type CompiledRoute } from "./policy/routes";
import { grantedScopes } from "./policy/scopes";
import { TokenValidator } from "./validate/token";

/**
 * The request flow in one place: extract, validate, match, authorize, then either a refusal (or a local
 * answer: metadata, assertion keys) or the cleaned headers to forward with. Framework-free: the Worker
 * calls `handle`, the Hono middleware (middleware.ts) adapts `check` and `forward`.
 */

/** What the gate decided, for the handlers after it (`c.get("portcullis")`). */
export interface GateDecision {
  /** The canonical path that was matched; the only path that may be forwarded. */
  path: string;
  /** The normalized host the rules were matched on: sent as `X-Forwarded-Host`, bound in the assertion. */
  host: string;
  /**
   * The client's query string as sent, minus method-override parameters and (forward.authorization =
   * "strip") every `access_token` pair; every other byte unchanged.
   */
  search: string;
  /** The matched rule's name. */
  rule: string;
  /** Present when identity headers were set: a verified token on a `token` or `optional` route. */
  identity?: Identity;
}

export interface Identity {
  issuer: string;
  subject: string | undefined;
  clientId: string | undefined;
  scopes: ReadonlySet<string>;
  /** Verified claims. Treat as data: never log them. */
  claims: JWTPayload;
}

/** Either the answer to send now, or the decision and the headers to forward with. */
export type GateOutcome = { response: Response } | { decision: GateDecision; headers: Headers };

export interface PortcullisOptions {
  /** Milliseconds since the epoch; injectable for tests. */
  now?: () => number;
  /** Used for JWKS requests; defaults to the global `fetch`. */
  fetch?: typeof fetch;
  log?: LogFn;
}

export type Env = Record<string, unknown> | undefined;
export type WaitUntil = (promise: Promise<unknown>) => void;

export interface Gate {
  /** Decides one request. Never throws: every failure is a response (fail closed). */
  check: (request: Request, env: Env, waitUntil: WaitUntil) => Promise<GateOutcome>;
  /**
   * Sends an allowed request to the origin: `origin` = ORIGIN_URL, undefined = the request's own origin
   * (route mode). `headers` are the outcome's (they may be added to).
   */
  forward: (request: Request, outcome: { decision: GateDecision; headers: Headers }, env: Env, origin: URL | undefined) => Promise<Response>;
  /** `check`, then `forward`: the whole Worker. */
  handle: (request: Request, env: Env, ctx: { waitUntil(promise: Promise<unknown>): void }, origin: URL | undefined) => Promise<Response>;
  /** Refreshes each issuer's keys that are past half their life into KV (for a cron trigger). */
  refreshKeys: (env: Env, waitUntil: WaitUntil) => Promise<Record<string, string>>;
  readonly config: ResolvedConfig;
  readonly log: LogFn;
  readonly now: () => number;
}

/** The gate for an already validated configuration. */
export function createGate(config: ResolvedConfig, options: PortcullisOptions = {}): Gate {
  const log = options.log ?? consoleLog;
  const logAllowed = config.log.allowed;
  // One path policy for canonicalization and matching, from the function explain uses too.
  const paths = pathPolicy(config.paths);
  const routes = compileRoutes(config.routes, paths);
  const extractOptions = { maxLength: config.token.max_length, allowQuery: config.token.allow_query, extraCharacters: config.token.extra_characters };
  const issuers = new Map(config.issuers.map((issuer) => [issuer.issuer, issuer]));
  const validator = new TokenValidator(config.issuers, config.token_cache);
  const now = options.now ?? Date.now;
  // Bound to the global: workerd refuses `fetch` called as a method of another object.
  const jwksFetch = options.fetch ?? ((input: RequestInfo | URL, init?: RequestInit) => fetch(input, init));
  const challenge: ChallengeOptions = {
    realm: config.realm,
    resourceMetadata: config.resource_metadata && metadataUrl(config.resource_metadata.resource).href,
  };
  const metadataPath = config.resource_metadata && metadataUrl(config.resource_metadata.resource).pathname;
  const ownHeaders = [config.forward.assertion?.header, config.forward.shared_secret?.header];

  const verifyDeps = (env: Env, waitUntil: WaitUntil) => ({
    now,
    fetch: jwksFetch,
    kv: kvBinding(env, config.kv_binding),
    waitUntil,
    log,
    binding: (name: string) => env?.[name],
  });

  /**
   * The request's headers as the origin gets them: identity namespace and forwarded-host headers cleared,
   * the matched host and the scheme set, verified claims set. `source`: the client headers to start from.
   */
  const forwardedHeaders = (request: Request, identity: Identity | undefined, host: string, protocol: string, source = request.headers): Headers => {
    const headers = new Headers(source);
    const { header_prefix: prefix, max_header_bytes: max, claim_headers, authorization } = config.forward;
    stripControlledHeaders(headers, prefix, { own: ownHeaders, authorization: authorization === "strip" });
    if (identity) {
      setClaimHeader(headers, `${prefix}sub`, identity.subject, "string", max, log);
      setClaimHeader(headers, `${prefix}client-id`, identity.clientId, "string", max, log);
      setClaimHeader(headers, `${prefix}scope`, [...identity.scopes].join(" ") || undefined, "string", max, log);
      setClaimHeader(headers, `${prefix}issuer`, identity.issuer, "string", max, log);
      for (const [name, path] of Object.entries(claim_headers)) setClaimHeader(headers, name, claimAt(identity.claims, path), "claim", max, log);
    }
    // Last, so nothing (not even a claim header under an odd prefix) can replace the host the rules matched.
    setForwardedHost(headers, host, protocol);
    return headers;
  };

  const check: Gate["check"] = async (request, env, waitUntil) => {
    const started = now();
    const entry: Record<string, unknown> = { method: request.method };
    try {
      const url = new URL(request.url);
      const assertion = config.forward.assertion;
      if (assertion && url.pathname === assertion.jwks_path && (request.method === "GET" || request.method === "HEAD")) {
        // The origin's verifier fetches the assertion keys here: public, cacheable, no route rule needed.
        const { publicKeys } = await keyRing(env?.[assertion.signing_keys]);
        log({ event: "decision", outcome: "assertion_keys", status: 200, ...entry });
        return { response: Response.json({ keys: publicKeys }, { headers: { "cache-control": "public, max-age=300" } }) };
      }
      if (metadataPath && url.pathname === metadataPath && (request.method === "GET" || request.method === "HEAD")) {
        log({ event: "decision", outcome: "metadata", status: 200, ...entry });
        const document = metadataDocument(config.resource_metadata!, config.token.allow_query);
        return { response: Response.json(document, { headers: { "cache-control": "public, max-age=3600" } }) };
      }
      const path = canonicalPath(url.pathname, paths);
      entry.path = path;
      const host = normalizeHost(url.host, url.protocol);
      const query = forwardedQuery(url.search, config.forward.authorization === "strip");
      if (config.methods.override_headers === "reject" && (query.methodOverride || hasMethodOverride(request.headers))) {
        throw new GateError("invalid_request", "method_override");
      }
      const search = query.search;

      const preflightMethod = corsPreflightMethod(request, config.methods.cors_preflight);
      // An explicit OPTIONS rule decides OPTIONS requests, preflights included, like any other request.
      if (preflightMethod && !explicitOptionsRule(matchRoute(routes, { method: "OPTIONS", host, path }, paths))) {
        // Browsers send preflights without credentials or body: authorized by the rule for the method they
        // announce, and forwarded with the CORS headers only, so nothing else rides on that authorization.
        if (carriesBody(request)) throw new GateError("invalid_request", "preflight_with_body");
        const target = matchRoute(routes, { method: preflightMethod, host, path }, paths);
        if (!target || target.rule.access === "deny") throw new GateError("access_denied", "no_matching_rule");
        entry.rule = target.name;
        if (logAllowed) log({ event: "decision", outcome: "allow_preflight", ...entry, ms: now() - started });
        const headers = forwardedHeaders(request, undefined, host, url.protocol, corsRequestHeaders(request.headers));
        return { decision: { path, host, search, rule: target.name }, headers };
      }

      const bearer = extractBearer(request, extractOptions, url);
      const route = matchRoute(routes, { method: request.method, host, path }, paths);
      if (!route) throw new GateError("access_denied", "no_matching_rule");
      entry.rule = route.name;
      const { rule } = route;

      let identity: Identity | undefined;
      let verifiedIssuer: IssuerConfig | undefined;
      if (bearer) {
        const verified = await validator.validate(bearer.token, { introspect: rule.introspect }, verifyDeps(env, waitUntil));
        entry.issuer = verified.issuer;
        entry.kid = safeKid(verified.kid);
        entry.via = verified.via;
        verifiedIssuer = issuers.get(verified.issuer)!;
        identity = toIdentity(verifiedIssuer, verified.claims);
      } else if (rule.access === "token") {
        log({ event: "decision", outcome: "deny", status: 401, reason: "token_missing", ...entry, ms: now() - started });
        return { response: errorResponse(challenge) };
      }

      const refusal = authorize(rule, identity);
      if (refusal) {
        // Report-only relaxes a rule's requirements, never authentication: the token was verified above.
        const reportOnly = rule.access === "token" && identity && (rule.report_only || verifiedIssuer!.report_only);
        if (!reportOnly) throw refusal;
        entry.report_only = true;
        entry.would = { status: refusal.status, reason: refusal.reason };
      }

      const withIdentity = rule.access === "token" || rule.access === "optional" ? identity : undefined;
      const headers = forwardedHeaders(request, withIdentity, host, url.protocol);
      // Report-only lines are always written: they are the point of report-only.
      if (logAllowed || entry.report_only) log({ event: "decision", outcome: identity ? "allow" : "allow_anonymous", ...entry, ms: now() - started });
      return { decision: { path, host, search, rule: route.name, ...(withIdentity ? { identity: withIdentity } : {}) }, headers };
    } catch (error) {
      if (!(error instanceof GateError)) {
        // Unexpected failures are refused too: a bug must never open the gate.
        log({ event: "decision", outcome: "error", status: 500, reason: "internal_error", ...entry });
        return { response: errorResponse(challenge, new GateError("server_error", "internal_error")) };
      }
      log({ event: "decision", outcome: "deny", status: error.status, reason: error.reason, ...entry, ms: now() - started });
      return { response: errorResponse(challenge, error) };
    }
  };

  const forward: Gate["forward"] = (request, { decision, headers }, env, origin) =>
    sendToOrigin({ request, headers, decision, env: env ?? {}, origin, forward: config.forward, log, now });

  return {
    check,
    forward,
    handle: async (request, env, ctx, origin) => {
      try {
        const outcome = await check(request, env, (promise) => ctx.waitUntil(promise));
        return "response" in outcome ? outcome.response : await forward(request, outcome, env, origin);
      } catch {
        // `forward` answers its own failures; anything else is a bug, refused like one.
        const error = new GateError("server_error", "internal_error");
        log({ event: "forward", outcome: "error", status: error.status, reason: error.reason });
        return errorResponse({ realm: config.realm }, error);
      }
    },
    refreshKeys: async (env, schedule) => {
      const results = await validator.jwt.refreshScheduled(verifyDeps(env, schedule));
      log({ event: "jwks_scheduled_refresh", results });
      return results;
    },
    config,
    log,
    now,
  };
}

function setClaimHeader(headers: Headers, name: string, value: unknown, kind: HeaderKind, maxBytes: number, log: LogFn): void {
  if (value === undefined) return;
  const encoded = encodeHeaderValue(value, kind, maxBytes);
  if (encoded === undefined) log({ event: "claim_header_dropped", header: name, reason: "unencodable_or_too_long" });
  else headers.set(name, encoded);
}

function toIdentity(issuer: IssuerConfig, claims: JWTPayload): Identity {
  const clientId = typeof claims.client_id === "string" ? claims.client_id : typeof claims.azp === "string" ? claims.azp : undefined;
  return {
    // The token's own `iss` (for a `{tenantid}` issuer: the tenant's), verified equal to the configuration.
    issuer: typeof claims.iss === "string" ? claims.iss : issuer.issuer,
    subject: typeof claims.sub === "string" ? claims.sub : undefined,
    clientId,
    scopes: grantedScopes(claims, issuer.scopes_from),
    claims,
  };
}

/** The method a CORS preflight asks about, when preflights are forwarded without a token. */
function corsPreflightMethod(request: Request, mode: "forward" | "authorize"): string | undefined {
  if (mode !== "forward" || request.method !== "OPTIONS" || !request.headers.has("origin")) return undefined;
  const method = request.headers.get("access-control-request-method")?.trim().toUpperCase();
  return method && /^[A-Z]+$/.test(method) ? method : undefined;
}

/** A rule that names OPTIONS itself (not through `*`): it, not preflight forwarding, decides OPTIONS requests. */
function explicitOptionsRule(route: CompiledRoute | undefined): boolean {
  return route !== undefined && route.rule.methods.includes("OPTIONS");
}

/** Any sign of a request body: a preflight has none (Fetch standard, CORS-preflight fetch). */
function carriesBody(request: Request): boolean {
  const length = request.headers.get("content-length");
  return request.body !== null || request.headers.has("transfer-encoding") || (length !== null && !/^0+$/.test(length.trim()));
}

/** Client headers a preflight may carry to the origin: what CORS and content negotiation need, no credentials. */
const CORS_REQUEST_HEADERS = new Set(["origin", "user-agent", "accept", "accept-language", "referer"]);
const CORS_REQUEST_PREFIXES = ["access-control-request-", "sec-fetch-"];

function corsRequestHeaders(client: Headers): Headers {
  const kept = new Headers();
  for (const [name, value] of client) {
    if (CORS_REQUEST_HEADERS.has(name) || CORS_REQUEST_PREFIXES.some((prefix) => name.startsWith(prefix))) kept.set(name, value);
  }
  return kept;
}

function kvBinding(env: Env, name: string): KVNamespace | undefined {
  const binding = env?.[name] as KVNamespace | undefined;
  return binding && typeof binding.get === "function" ? binding : undefined;
}
