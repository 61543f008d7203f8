import type { Handler } from "hono";
import { jsonError } from "../errors/challenge";
import { GateError } from "../errors/errors";
import { consoleLog, type LogFn } from "../log";
import type { ResolvedConfig } from "../config/schema";
import type { GateDecision } from "../gate";
import type { PortcullisVariables } from "../middleware";
import { keyRing, mintAssertion } from "./assertion";

/**
 * Sending the authorized request on. The target is built from the canonical path the gate matched, never
 * re-derived from the client's URL; the body is streamed, never buffered.
 */

/**
 * The origin URL: `origin` (scheme, host, port of ORIGIN_URL) or the request's own origin (route mode),
 * with the canonical path and the client's query. A string, not a URL object: the path is already
 * canonical and percent-encoded (nothing for a URL parser to change), and this runs on every request.
 */
export function originUrl(requestUrl: string, canonicalPath: string, search: string, origin: URL | undefined): string {
  return (origin ? origin.origin : new URL(requestUrl).origin) + canonicalPath + search;
}

/**
 * Fetches from the origin; unreachable -> 502, no response headers within `timeoutMs` -> 504. Only the wait
 * for response headers is bounded; a long streamed body is not cut off. A race rather than an abort signal
 * (cheaper per request): on a timeout the subrequest is dropped with the request that made it.
 */
export async function fetchOrigin(request: Request, timeoutMs: number, fetcher: typeof fetch = fetch): Promise<Response> {
  let timer: ReturnType<typeof setTimeout> | undefined;
  const timedOut = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new GateError("gateway_timeout", "origin_timeout")), timeoutMs);
  });
  // Async so that a fetcher throwing synchronously (a broken binding) is a 502 too, and the timer is cleared.
  const answered = (async () => {
    try {
      return await fetcher(request, { redirect: "manual" });
    } catch {
      throw new GateError("bad_gateway", "origin_unreachable");
    }
  })();
  try {
    return await Promise.race([answered, timedOut]);
  } finally {
    clearTimeout(timer);
  }
}

export interface ForwardOptions {
  /** ORIGIN_URL; undefined = route mode (the request continues to its own host). */
  origin: URL | undefined;
  /** The resolved `forward` section of the configuration. */
  forward: ResolvedConfig["forward"];
  fetch?: typeof fetch;
  log?: LogFn;
  now?: () => number;
}

export interface OriginRequest extends ForwardOptions {
  /** The client's request: method and body (streamed) come from it. */
  request: Request;
  /** The headers to send, already cleaned by the gate; the forwarder's own headers are added to them. */
  headers: Headers;
  decision: GateDecision;
  env: Record<string, unknown>;
}

/**
 * Sends one authorized request to the canonical URL, through `forward.service` when configured, with the
 * signed assertion and/or shared secret. Failures the client should see (502, 504, missing secrets) are
 * answered here; anything else is thrown.
 */
export async function sendToOrigin(input: OriginRequest): Promise<Response> {
  const { request, headers, decision, env, forward } = input;
  const log = input.log ?? consoleLog;
  try {
    const target = originUrl(request.url, decision.path, decision.search, input.origin);
    if (forward.shared_secret) headers.set(forward.shared_secret.header, secretValue(env, forward.shared_secret.secret, "shared_secret_missing"));
    if (forward.assertion) {
      const ring = await keyRing(env[forward.assertion.signing_keys]);
      const { identity } = decision;
      const now = (input.now ?? Date.now)();
      const assertion = await mintAssertion(ring, forward.assertion, { method: request.method, url: new URL(target), host: decision.host, headers, headerPrefix: forward.header_prefix, now, ...(identity ? { identity } : {}) });
      headers.set(forward.assertion.header, assertion);
    }
    const outbound = new Request(target, { method: request.method, headers, body: request.body, redirect: "manual" });
    return await fetchOrigin(outbound, forward.timeout_ms, originFetcher(env, forward.service, input.fetch));
  } catch (error) {
    if (!(error instanceof GateError)) throw error;
    log({ event: "forward", outcome: "error", status: error.status, reason: error.reason, rule: decision.rule });
    return jsonError(error);
  }
}

/**
 * The Hono handler after the gate: sends `c.req.raw` (already cleaned by the gate) on. Without a gate
 * decision it refuses, so mounting it alone can never open a route.
 */
export function forwardToOrigin(options: ForwardOptions): Handler<{ Variables: PortcullisVariables }> {
  const { forward } = options;
  // The gate already copied and cleaned the headers; a further copy only when the forwarder adds its own.
  const addsHeaders = forward.shared_secret !== undefined || forward.assertion !== undefined;
  return async (c) => {
    const decision = c.get("portcullis");
    if (!decision) throw new GateError("server_error", "forward_without_gate");
    const request = c.req.raw;
    const headers = addsHeaders ? new Headers(request.headers) : request.headers;
    return sendToOrigin({ ...options, request, headers, decision, env: (c.env ?? {}) as Record<string, unknown> });
  };
}

function secretValue(env: Record<string, unknown>, name: string, reason: string): string {
  const value = env[name];
  if (typeof value !== "string" || value === "") throw new GateError("server_error", reason);
  return value;
}

/** The service binding when configured (a missing one is a 500, never a fallback to the open internet). */
function originFetcher(env: Record<string, unknown>, service: string | undefined, fallback: typeof fetch | undefined): typeof fetch {
  if (service) {
    const binding = env[service] as { fetch?: typeof fetch } | undefined;
    if (!binding || typeof binding.fetch !== "function") throw new GateError("server_error", "origin_service_missing");
    return (input, init) => binding.fetch!(input, init);
  }
  return fallback ?? ((input, init) => fetch(input, init));
}
