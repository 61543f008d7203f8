import { jsonError } from "../errors/challenge";
import { GateError } from "../errors/errors";
import { globalFetch, secretText, serviceFetch } from "../lib/bindings";
import type { Deps } from "../lib/deps";
import { consoleLog } from "../lib/log";
import type { ResolvedConfig } from "../config/schema";
import { keyRing, mintAssertion, type AssertionInput } from "./assertion";

/**
 * Sending the authorized request on. The target is built from the canonical path the gate matched, never
 * re-derived from the client's URL; the body is streamed, never buffered, except the bounded copy an MCP
 * route read to find its operation, which is sent as read.
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
  // Assigned before use: a promise executor runs synchronously. Not `| undefined`: with only the Workers
  // types (no @types/node), clearTimeout takes `number | null`.
  let timer!: ReturnType<typeof setTimeout>;
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

/** `fetch`, `log` and `now` default to the global fetch, the console log and `Date.now`. */
export interface ForwardOptions extends Partial<Pick<Deps, "fetch" | "log" | "now">> {
  /** ORIGIN_URL; undefined = route mode (the request continues to its own host). */
  origin: URL | undefined;
  /** The resolved `forward` section of the configuration. */
  forward: ResolvedConfig["forward"];
}

/** What forwarding needs of the gate's decision (the pipeline's `GateDecision` is one). */
export interface ForwardedDecision {
  /** The canonical path: the only path forwarded. */
  path: string;
  /** The forwarded query. */
  search: string;
  /** The normalized host the rules matched, bound in the assertion. */
  host: string;
  rule: string;
  identity?: AssertionInput["identity"];
}

export interface OriginRequest extends ForwardOptions {
  /** The client's request: method and body (streamed) come from it. */
  request: Request;
  /** The body to send instead of `request.body`: the gate's bounded read of it (MCP routes). */
  body?: ArrayBuffer;
  /** The headers to send, already cleaned by the gate; the forwarder's own headers are added to them. */
  headers: Headers;
  decision: ForwardedDecision;
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
    const outbound = new Request(target, { method: request.method, headers, body: input.body ?? request.body, redirect: "manual" });
    return await fetchOrigin(outbound, forward.timeout_ms, originFetcher(env, forward.service, input.fetch));
  } catch (error) {
    if (!(error instanceof GateError)) throw error;
    log({ event: "forward", outcome: "error", status: error.status, reason: error.reason, rule: decision.rule });
    return jsonError(error);
  }
}

function secretValue(env: Record<string, unknown>, name: string, reason: string): string {
  const value = secretText(env[name]);
  if (value === undefined) throw new GateError("server_error", reason);
  return value;
}

/** The service binding when configured (a missing one is a 500, never a fallback to the open internet). */
function originFetcher(env: Record<string, unknown>, service: string | undefined, fallback: typeof fetch | undefined): typeof fetch {
  if (service) {
    const fetcher = serviceFetch(env[service]);
    if (!fetcher) throw new GateError("server_error", "origin_service_missing");
    return fetcher;
  }
  return fallback ?? globalFetch;
}
