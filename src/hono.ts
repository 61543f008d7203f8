import type { Handler, MiddlewareHandler } from "hono";
import { formatIssues, parseConfig } from "./config/load";
import type { PortcullisConfig } from "./config/schema";
import { GateError } from "./errors/errors";
import { sendToOrigin, type ForwardOptions } from "./forward/origin";
import { consoleLog } from "./lib/log";
import { createGate, type Env, type Gate, type GateDecision, type PortcullisOptions, type WaitUntil } from "./pipeline/gate";
import { configInvalidAnswer } from "./pipeline/local";

/**
 * The Hono adapter: the gate (pipeline/gate.ts) on `c.req.raw`, `c.set` and `next()`. The only file that
 * imports hono.
 */

export type PortcullisVariables = { portcullis: GateDecision };
type PortcullisEnv = { Variables: PortcullisVariables };

/**
 * The gate as a Hono middleware, from raw configuration. It is validated at run time too (it may come from
 * untyped `[vars]`): an invalid one answers 500 to everything, never open.
 */
export function portcullis(rawConfig: PortcullisConfig, options: PortcullisOptions = {}): MiddlewareHandler<PortcullisEnv> {
  const parsed = parseConfig(rawConfig);
  if (!parsed.ok) {
    const answer = configInvalidAnswer(formatIssues(parsed.issues), options.log ?? consoleLog);
    return async () => answer();
  }
  return honoMiddleware(createGate(parsed.config, options));
}

/**
 * A gate as Hono middleware. Requests that pass continue to the next handler with a cleaned request
 * (`c.req.raw`: the canonical path and forwarded query, client identity headers stripped, verified ones
 * set) and `c.get("portcullis")`; every other request is answered here.
 */
export function honoMiddleware(gate: Gate): MiddlewareHandler<PortcullisEnv> {
  return async (c, next) => {
    const outcome = await gate.check(c.req.raw, c.env as Env | undefined, waitUntil(c));
    if ("response" in outcome) return outcome.response;
    // The next handlers see exactly what was authorized: the canonical path and the forwarded query (method
    // overrides and stripped tokens removed), with the cleaned headers. An MCP route's body was read to find
    // its operation: the bytes read go on.
    const { path, search } = outcome.decision;
    const init = outcome.body ? { headers: outcome.headers, body: outcome.body } : { headers: outcome.headers };
    c.req.raw = new Request(new URL(c.req.raw.url).origin + path + search, new Request(c.req.raw, init));
    c.set("portcullis", outcome.decision);
    await next();
  };
}

/**
 * The Hono handler after `honoMiddleware(gate)`: sends `c.req.raw` (already cleaned by the gate) to `origin`
 * (ORIGIN_URL; undefined = route mode). Without a gate decision it refuses, so mounting it alone can never
 * open a route. `options` override the gate's log and clock and the global fetch.
 */
export function forwardToOrigin(gate: Gate, origin: URL | undefined, options: Partial<Pick<ForwardOptions, "fetch" | "log" | "now">> = {}): Handler<PortcullisEnv> {
  const { forward } = gate.config;
  const forwarding: ForwardOptions = { log: gate.log, now: gate.now, ...options, origin, forward };
  // The gate already copied and cleaned the headers; a further copy only when the forwarder adds its own.
  const addsHeaders = forward.shared_secret !== undefined || forward.assertion !== undefined;
  return async (c) => {
    const decision = c.get("portcullis");
    if (!decision) throw new GateError("server_error", "forward_without_gate");
    const request = c.req.raw;
    const headers = addsHeaders ? new Headers(request.headers) : request.headers;
    return sendToOrigin({ ...forwarding, request, headers, decision, env: (c.env ?? {}) as Record<string, unknown> });
  };
}

function waitUntil(c: { executionCtx: { waitUntil(promise: Promise<unknown>): void } }): WaitUntil {
  try {
    const ctx = c.executionCtx;
    return (promise) => ctx.waitUntil(promise);
  } catch {
    // Outside a Worker (no execution context) the write simply runs detached.
    return (promise) => void promise.catch(() => {});
  }
}
