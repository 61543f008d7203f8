import type { IssuerConfig, ResolvedConfig } from "../config/schema";
import { errorResponse, type ChallengeOptions, type Scheme } from "../errors/challenge";
import { GateError } from "../errors/errors";
import { extractBearer, schemeOf, type BearerToken } from "../extract/bearer";
import { readMcpRequest } from "../extract/mcp";
import { sendToOrigin } from "../forward/origin";
import { globalFetch } from "../lib/bindings";
import type { Deps } from "../lib/deps";
import { consoleLog, type LogFn } from "../lib/log";
import { durableReplayCheck } from "../validate/dpop-replay";
import { checkSenderConstraint } from "../validate/sender";
import { TokenValidator, type ValidatedToken } from "../validate/token";
import type { CompiledRoute } from "../policy/routes";
import { combinedRequirement } from "../policy/requirements";
import { challengeScopes } from "../policy/scopes";
import { compileRules, decide, decidePreflight, matchOperation, matchRule, type Decision, type OperationMatch } from "./decide";
import { decisionLog, type DecisionLine } from "./decision-log";
import { forwardedHeaders, toIdentity, type Identity } from "./identity";
import { localAnswers } from "./local";
import { protectedResources } from "./metadata";
import { canonicalRequest, checkMethodOverride, corsPreflight, corsRequestHeaders, dpopAlgorithms, dpopRequiredEverywhere, extractOptions, sameTarget, type CanonicalRequest } from "./request";

/**
 * The gate: the request flow as named steps, in the order the README states. `check` decides and cleans
 * the headers (or answers: a refusal, a local answer); `forward` sends an allowed request on. Framework-free:
 * the Worker (worker.ts) calls `handle`, the Hono adapter (hono.ts) adapts `check` and `forward`.
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
  /**
   * A CORS preflight let through without a token (`methods.cors_preflight = "forward"`): answer it with CORS
   * headers only. A handler that serves every method (Hono `app.all`, `app.use`) must not act on it.
   */
  preflight?: true;
}

export type { Identity };

/** What is forwarded for an allowed request: the decision, the cleaned headers, and a body the gate read. */
export interface Allowed {
  decision: GateDecision;
  headers: Headers;
  /** On an MCP route, the body as read (bounded) to find the operation: forwarded instead of the consumed stream. */
  body?: ArrayBuffer;
}

/** Either the answer to send now, or what to forward. */
export type GateOutcome = { response: Response } | Allowed;

export interface PortcullisOptions {
  /** Milliseconds since the epoch; injectable for tests. */
  now?: () => number;
  /** Used for JWKS requests; defaults to the global `fetch`. */
  fetch?: typeof fetch;
  log?: LogFn;
}

/** The Worker's bindings: `[vars]` (PORTCULLIS_CONFIG, ORIGIN_URL), secrets, KV and services, by name. */
export interface Env {
  PORTCULLIS_CONFIG?: unknown;
  ORIGIN_URL?: string;
  [binding: string]: unknown;
}

export type WaitUntil = (promise: Promise<unknown>) => void;

export interface Gate {
  /** Decides one request. Never throws: every failure is a response (fail closed). */
  check: (request: Request, env: Env | undefined, waitUntil: WaitUntil) => Promise<GateOutcome>;
  /**
   * Sends an allowed request to the origin: `origin` = ORIGIN_URL, undefined = the request's own origin
   * (route mode). `headers` are the outcome's (they may be added to).
   */
  forward: (request: Request, outcome: Allowed, env: Env | undefined, origin: URL | undefined) => Promise<Response>;
  /** `check`, then `forward`: the whole Worker. */
  handle: (request: Request, env: Env | undefined, ctx: { waitUntil(promise: Promise<unknown>): void }, origin: URL | undefined) => Promise<Response>;
  /** Refreshes each issuer's keys that are past half their life into KV (for a cron trigger). */
  refreshKeys: (env: Env | undefined, waitUntil: WaitUntil) => Promise<Record<string, string>>;
  readonly config: ResolvedConfig;
  readonly log: LogFn;
  readonly now: () => number;
}

/** The gate for an already validated configuration (`parseConfig`). */
export function createGate(config: ResolvedConfig, options: PortcullisOptions = {}): Gate {
  const log = options.log ?? consoleLog;
  const now = options.now ?? Date.now;
  const rules = compileRules(config);
  const resources = protectedResources(config, rules.routes, rules.paths.caseInsensitive);
  const localAnswer = localAnswers(config, resources);
  const extract = extractOptions(config);
  const issuers = new Map(config.issuers.map((issuer) => [issuer.issuer, issuer]));
  const validator = new TokenValidator(config.issuers, config.token_cache);
  const headersFor = forwardedHeaders(config.forward, log);
  const decisions = decisionLog(log, config.log.allowed, now);
  const jwksFetch = options.fetch ?? globalFetch;
  // DPoP challenges (RFC 9449 section 7.1) beside Bearer where DPoP is on; Bearer alone where it is off.
  const challengeDpopAlgorithms = dpopAlgorithms(config);
  const bearerChallenge = !dpopRequiredEverywhere(config);
  /** The challenge for a request: its resource's metadata URL (by path) and the scopes the matched rule (and MCP operation) needs. */
  const challengeFor = (path: string, route: CompiledRoute | undefined, operation?: OperationMatch): ChallengeOptions => ({
    realm: config.realm,
    resourceMetadata: resources.covering(path)?.documentUrl,
    scope: route && challengeScopes(combinedRequirement(route.rule, operation?.requirements)),
    dpopAlgorithms: challengeDpopAlgorithms,
    bearer: bearerChallenge,
  });

  const deps = (env: Env | undefined, waitUntil: WaitUntil): Deps => ({
    now,
    fetch: jwksFetch,
    kv: kvBinding(env, config.kv_binding),
    waitUntil,
    log,
    binding: (name: string) => env?.[name],
  });

  /**
   * The steps in the README's order: local answers; the canonical request (path, host, query) and the
   * method-override policy; a forwarded CORS preflight; token extraction; the rule match; on an MCP route the
   * operation (a bounded body read); verification of a presented token, then its sender constraint (DPoP
   * proof, client certificate: never relaxed by report-only); the decision (no token on a token rule,
   * requirements, report-only); identity headers.
   * Any step refuses by throwing a GateError, answered and logged in one place.
   */
  const check: Gate["check"] = async (request, env, waitUntil) => {
    const started = now();
    const line: DecisionLine = { method: request.method };
    // What the challenge of a refusal names, known more precisely as the steps go.
    let challengePath = "/";
    let route: CompiledRoute | undefined;
    let operation: OperationMatch | undefined;
    // How the token was presented: a refusal's error goes into that scheme's challenge.
    let scheme: Scheme = "bearer";
    try {
      const url = new URL(request.url);
      challengePath = url.pathname;
      const local = localAnswer(url, request.method);
      if (local) {
        line.path = url.pathname;
        const response = await local.respond(env);
        decisions.local(local.outcome, response.status, line);
        return { response };
      }
      const target = canonicalRequest(request.method, url, rules.paths, config);
      line.path = challengePath = target.path;
      checkMethodOverride(target, request.headers, config.methods);
      const preflight = corsPreflight(request, target, rules.routes, rules.paths, config.methods);
      if (preflight) {
        // A forwarded preflight: the CORS headers only, so nothing else rides on an authorization without a token.
        const decision = decidePreflight(rules, target, preflight);
        if (decision.outcome !== "deny") line.rule = decision.rule!;
        return conclude(decision, corsRequestHeaders(request.headers), undefined, url, target, line, started);
      }
      const bearer = extractBearer(request, extract, url);
      if (bearer) scheme = schemeOf(bearer);
      route = matchRule(rules, target);
      line.rule = route.name;
      const mcp = route.rule.mcp && (await readMcpRequest(request, route.rule.mcp));
      operation = matchOperation(rules, route, mcp ? mcp.message : undefined);
      if (operation?.label !== undefined) line.operation = operation.label;
      const requestDeps = deps(env, waitUntil);
      // Token verification (401/503) with what the rule asks of it (`introspect`).
      const token = bearer && (await validator.validate(bearer.token, { introspect: route.rule.introspect }, requestDeps));
      if (token) decisions.token(line, token);
      const issuer = token && issuers.get(token.issuer)!;
      // How the token is bound to its sender (DPoP proof, client certificate), checked on every request.
      const sender = token && (await senderConstraint(bearer!, token, issuer!, route, request, url, target, env, requestDeps));
      const identity = token && toIdentity(issuer!, token.claims, sender);
      // Identity headers only where a token is asked for or optional: a public route forwards none.
      const forwarded = route.rule.access === "token" || route.rule.access === "optional" ? identity : undefined;
      const outcome = conclude(decide(route, identity, issuer, operation), request.headers, forwarded, url, target, line, started, scheme, route, operation);
      return mcp && mcp.body && "decision" in outcome ? { ...outcome, body: mcp.body } : outcome;
    } catch (error) {
      if (error instanceof GateError) return refuse(error.status, error.reason, error, line, started, challengeFor(challengePath, route, operation), scheme);
      decisions.failed(line);
      return { response: errorResponse({ realm: config.realm }, new GateError("server_error", "internal_error")) };
    }
  };

  /** The sender-constraint step (validate/sender.ts) for a verified token, with the rule's or issuer's DPoP mode. */
  const senderConstraint = (presented: BearerToken, token: ValidatedToken, issuer: IssuerConfig, route: CompiledRoute, request: Request, url: URL, target: CanonicalRequest, env: Env | undefined, stageDeps: Deps) =>
    checkSenderConstraint(token.claims, issuer, {
      presentation: { scheme: schemeOf(presented), proof: presented.dpopProof, tlsClientAuth: () => (request.cf as { tlsClientAuth?: unknown } | undefined)?.tlsClientAuth },
      mode: route.rule.dpop ?? issuer.dpop.mode,
      request: { method: target.method, sameTarget: sameTarget(target, url.protocol, rules.paths), token: presented.token, now: stageDeps.now() },
      replay: durableReplayCheck(env?.[config.dpop_replay_binding], config.dpop_replay_binding, log),
      binding: stageDeps.binding,
    });

  /**
   * The decision answered: refused (with the challenge for the canonical path, the rule and the operation:
   * built only then, allowed requests never need one), or allowed with the headers from `source`
   * (stripped, identity set).
   */
  const conclude = (decision: Decision, source: Headers, identity: Identity | undefined, url: URL, target: CanonicalRequest, line: DecisionLine, started: number, scheme: Scheme = "bearer", route?: CompiledRoute, operation?: OperationMatch): GateOutcome => {
    if (decision.outcome === "deny") return refuse(decision.status, decision.reason, decision.refusal, line, started, challengeFor(target.path, route, operation), scheme);
    const headers = headersFor(source, identity, target.host, url.protocol);
    decisions.allowed(decision, line, started);
    const { path, host, search } = target;
    const rule = decision.rule!;
    const gateDecision: GateDecision = identity ? { path, host, search, rule, identity } : { path, host, search, rule };
    if (decision.outcome === "allow_preflight") gateDecision.preflight = true;
    return { decision: gateDecision, headers };
  };

  /** `refusal` undefined: no credentials were sent, a bare challenge (RFC 6750 3.1). */
  const refuse = (status: number, reason: string, refusal: GateError | undefined, line: DecisionLine, started: number, challenge: ChallengeOptions, scheme: Scheme = "bearer"): GateOutcome => {
    decisions.denied(status, reason, line, started);
    return { response: errorResponse(challenge, refusal, scheme) };
  };

  const forward: Gate["forward"] = (request, { decision, headers, body }, env, origin) =>
    sendToOrigin({ request, headers, decision, env: env ?? {}, origin, forward: config.forward, log, now, ...(body ? { body } : {}) });

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
      const results = await validator.jwt.refreshScheduled(deps(env, schedule));
      log({ event: "jwks_scheduled_refresh", results });
      return results;
    },
    config,
    log,
    now,
  };
}

function kvBinding(env: Env | undefined, name: string): KVNamespace | undefined {
  const binding = env?.[name] as KVNamespace | undefined;
  return binding && typeof binding.get === "function" ? binding : undefined;
}
