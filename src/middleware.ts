import type { Handler, MiddlewareHandler } from "hono";
import { keyRing } from "./forward/assertion";
import { forwardToOrigin, removeHopByHop, type ForwardOptions } from "./forward/origin";
import type { JWTPayload } from "jose";
import { formatIssues, parseConfig } from "./config/load";
import type { IssuerConfig, PortcullisConfig, ResolvedConfig } from "./config/schema";
import { errorResponse, type ChallengeOptions } from "./errors/challenge";
import { GateError } from "./errors/errors";
import { metadataDocument, metadataUrl } from "./errors/metadata";
import { extractBearer } from "./extract/bearer";
import { claimAt, encodeHeaderValue, hasMethodOverride, stripControlledHeaders } from "./forward/headers";
import { consoleLog, safeKid, type LogFn } from "./log";
import { canonicalPath, type PathOptions } from "./policy/path";
import { authorize } from "./policy/requirements";
import { compileRoutes, matchRoute, normalizeHost } from "./policy/routes";
import { grantedScopes } from "./policy/scopes";
import { TokenValidator } from "./validate/token";

/** What the gate decided, for the handlers after it (`c.get("portcullis")`). */
export interface GateDecision {
  /** The canonical path that was matched; the only path that may be forwarded. */
  path: string;
  /** The client's query string, minus `access_token` when the token came from it. */
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

export type PortcullisVariables = { portcullis: GateDecision };

export interface PortcullisOptions {
  /** Milliseconds since the epoch; injectable for tests. */
  now?: () => number;
  /** Used for JWKS requests; defaults to the global `fetch`. */
  fetch?: typeof fetch;
  log?: LogFn;
}

type Env = Record<string, unknown> | undefined;

/**
 * The gate as a Hono middleware. Requests that pass continue to the next handler with a cleaned request
 * (`c.req.raw`: client identity headers stripped, verified ones set) and `c.get("portcullis")`; every other
 * request is answered here. The configuration is validated at run time too (it may come from untyped
 * `[vars]`): an invalid one answers 500 to everything, never open.
 */
export function portcullis(
  rawConfig: PortcullisConfig,
  options: PortcullisOptions = {},
): MiddlewareHandler<{ Variables: PortcullisVariables }> {
  const log = options.log ?? consoleLog;
  const parsed = parseConfig(rawConfig);
  if (!parsed.ok) {
    const fields = formatIssues(parsed.issues);
    return async () => {
      log({ event: "config_invalid", outcome: "error", status: 500, issues: fields });
      return errorResponse({ realm: "api" }, new GateError("server_error", "config_invalid"));
    };
  }
  return createGate(parsed.config, options).middleware;
}

export interface Gate {
  middleware: MiddlewareHandler<{ Variables: PortcullisVariables }>;
  /** The forwarding handler for this configuration; `origin` = ORIGIN_URL, undefined = route mode. */
  forwarder: (origin: URL | undefined, options?: Omit<ForwardOptions, "origin" | "forward">) => Handler<{ Variables: PortcullisVariables }>;
  /** Refreshes each issuer's keys that are past half their life into KV (for a cron trigger). */
  refreshKeys: (env: Env, waitUntil: (promise: Promise<unknown>) => void) => Promise<Record<string, string>>;
}

/** The gate for an already validated configuration. */
export function createGate(config: ResolvedConfig, options: PortcullisOptions = {}): Gate {
  const log = options.log ?? consoleLog;
  const caseInsensitive = config.paths.case_insensitive;
  const routes = compileRoutes(config.routes, { caseInsensitive });
  const pathOptions: PathOptions = { semicolons: config.paths.semicolons, emptySegments: config.paths.empty_segments };
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

  const verifyDeps = (env: Env, waitUntil: (promise: Promise<unknown>) => void) => ({
    now,
    fetch: jwksFetch,
    kv: kvBinding(env, config.kv_binding),
    waitUntil,
    log,
    binding: (name: string) => env?.[name],
  });

  const middleware: MiddlewareHandler<{ Variables: PortcullisVariables }> = async (c, next) => {
    const started = now();
    const request = c.req.raw;
    const url = new URL(request.url);
    const env = c.env as Env;
    const entry: Record<string, unknown> = { method: request.method };
    try {
      const assertion = config.forward.assertion;
      if (assertion && url.pathname === assertion.jwks_path && (request.method === "GET" || request.method === "HEAD")) {
        // The origin's verifier fetches the assertion keys here: public, cacheable, no route rule needed.
        const { publicKeys } = await keyRing(env?.[assertion.signing_keys]);
        log({ event: "decision", outcome: "assertion_keys", status: 200, ...entry });
        return Response.json({ keys: publicKeys }, { headers: { "cache-control": "public, max-age=300" } });
      }
      if (metadataPath && url.pathname === metadataPath && (request.method === "GET" || request.method === "HEAD")) {
        log({ event: "decision", outcome: "metadata", status: 200, ...entry });
        return Response.json(metadataDocument(config.resource_metadata!, config.token.allow_query), {
          headers: { "cache-control": "public, max-age=3600" },
        });
      }
      const path = canonicalPath(url.pathname, pathOptions);
      entry.path = path;
      const host = normalizeHost(url.host, url.protocol);
      if (config.methods.override_headers === "reject" && hasMethodOverride(request.headers)) {
        throw new GateError("invalid_request", "method_override");
      }
      const search = url.search;

      const preflightMethod = corsPreflightMethod(request, config.methods.cors_preflight);
      if (preflightMethod) {
        // Browsers send preflights without credentials: authorized by the rule for the method they announce.
        const target = matchRoute(routes, { method: preflightMethod, host, path }, caseInsensitive);
        if (!target || target.rule.access === "deny") throw new GateError("access_denied", "no_matching_rule");
        entry.rule = target.name;
        c.req.raw = forwardedRequest(request, undefined, config, log);
        c.set("portcullis", { path, search, rule: target.name });
        log({ event: "decision", outcome: "allow_preflight", ...entry, ms: now() - started });
        return await next();
      }

      const bearer = extractBearer(request, {
        maxLength: config.token.max_length,
        allowQuery: config.token.allow_query,
        extraCharacters: config.token.extra_characters,
      });
      const route = matchRoute(routes, { method: request.method, host, path }, caseInsensitive);
      if (!route) throw new GateError("access_denied", "no_matching_rule");
      entry.rule = route.name;
      const { rule } = route;

      let identity: Identity | undefined;
      let verifiedIssuer: string | undefined;
      if (bearer) {
        const verified = await validator.validate(bearer.token, { introspect: rule.introspect }, verifyDeps(env, waitUntil(c)));
        entry.issuer = verified.issuer;
        entry.kid = safeKid(verified.kid);
        entry.via = verified.via;
        verifiedIssuer = verified.issuer;
        identity = toIdentity(issuers.get(verified.issuer)!, verified.claims);
      } else if (rule.access === "token") {
        log({ event: "decision", outcome: "deny", status: 401, reason: "token_missing", ...entry, ms: now() - started });
        return errorResponse(challenge);
      }

      const refusal = authorize(rule, identity);
      if (refusal) {
        // Report-only relaxes a rule's requirements, never authentication: the token was verified above.
        const reportOnly = rule.access === "token" && identity && (rule.report_only || issuers.get(verifiedIssuer!)!.report_only);
        if (!reportOnly) throw refusal;
        entry.report_only = true;
        entry.would = { status: refusal.status, reason: refusal.reason };
      }

      const forwardedSearch = bearer?.source === "query" && config.forward.authorization === "strip" ? withoutToken(url) : search;
      const withIdentity = rule.access === "token" || rule.access === "optional" ? identity : undefined;
      c.req.raw = forwardedRequest(request, withIdentity, config, log);
      c.set("portcullis", { path, search: forwardedSearch, rule: route.name, ...(withIdentity ? { identity: withIdentity } : {}) });
      log({ event: "decision", outcome: identity ? "allow" : "allow_anonymous", ...entry, ms: now() - started });
    } catch (error) {
      if (!(error instanceof GateError)) {
        // Unexpected failures are refused too: a bug must never open the gate.
        log({ event: "decision", outcome: "error", status: 500, reason: "internal_error", ...entry });
        return errorResponse(challenge, new GateError("server_error", "internal_error"));
      }
      log({ event: "decision", outcome: "deny", status: error.status, reason: error.reason, ...entry, ms: now() - started });
      return errorResponse(challenge, error);
    }
    await next();
  };

  return {
    middleware,
    forwarder: (origin, forwardOptions = {}) => forwardToOrigin({ log, now, ...forwardOptions, origin, forward: config.forward }),
    refreshKeys: async (env, schedule) => {
      const results = await validator.jwt.refreshScheduled(verifyDeps(env, schedule));
      log({ event: "jwks_scheduled_refresh", results });
      return results;
    },
  };
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

/** The request as the next handler sees it: identity namespace cleared, verified claims set. */
function forwardedRequest(request: Request, identity: Identity | undefined, config: ResolvedConfig, log: LogFn): Request {
  const headers = new Headers(request.headers);
  const { header_prefix: prefix, max_header_bytes: max, claim_headers, authorization } = config.forward;
  stripControlledHeaders(headers, prefix, [config.forward.assertion?.header, config.forward.shared_secret?.header]);
  removeHopByHop(headers);
  if (authorization === "strip") headers.delete("authorization");
  if (identity) {
    const values: [string, unknown][] = [
      [`${prefix}sub`, identity.subject],
      [`${prefix}client-id`, identity.clientId],
      [`${prefix}scope`, [...identity.scopes].join(" ") || undefined],
      [`${prefix}issuer`, identity.issuer],
      ...Object.entries(claim_headers).map(([name, path]): [string, unknown] => [name, claimAt(identity.claims, path)]),
    ];
    for (const [name, value] of values) {
      if (value === undefined) continue;
      const encoded = encodeHeaderValue(value, max);
      if (encoded === undefined) log({ event: "claim_header_dropped", header: name, reason: "unencodable_or_too_long" });
      else headers.set(name, encoded);
    }
  }
  return new Request(request, { headers });
}

function withoutToken(url: URL): string {
  const params = new URLSearchParams(url.search);
  params.delete("access_token");
  const search = params.toString();
  return search ? `?${search}` : "";
}

function kvBinding(env: Env, name: string): KVNamespace | undefined {
  const binding = env?.[name] as KVNamespace | undefined;
  return binding && typeof binding.get === "function" ? binding : undefined;
}

function waitUntil(c: { executionCtx: { waitUntil(promise: Promise<unknown>): void } }): (promise: Promise<unknown>) => void {
  try {
    const ctx = c.executionCtx;
    return (promise) => ctx.waitUntil(promise);
  } catch {
    // Outside a Worker (no execution context) the write simply runs detached.
    return (promise) => void promise.catch(() => {});
  }
}
