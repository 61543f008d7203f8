import type { Handler, MiddlewareHandler } from "hono";
import { formatIssues, parseConfig } from "./config/load";
import type { PortcullisConfig, ResolvedConfig } from "./config/schema";
import { errorResponse } from "./errors/challenge";
import { GateError } from "./errors/errors";
import { forwardToOrigin, type ForwardOptions } from "./forward/origin";
import { createGate as createCoreGate, type Env, type Gate as CoreGate, type GateDecision, type PortcullisOptions, type WaitUntil } from "./gate";
import { consoleLog } from "./log";

/** Portcullis as Hono middleware: the gate (gate.ts) adapted to `c.req.raw`, `c.set` and `next()`. */

export type { GateDecision, Identity, PortcullisOptions } from "./gate";
export type PortcullisVariables = { portcullis: GateDecision };

/**
 * The gate as a Hono middleware. Requests that pass continue to the next handler with a cleaned request
 * (`c.req.raw`: the canonical path and forwarded query, client identity headers stripped, verified ones set)
 * and `c.get("portcullis")`; every other
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

export interface Gate extends CoreGate {
  middleware: MiddlewareHandler<{ Variables: PortcullisVariables }>;
  /** The forwarding handler for this configuration; `origin` = ORIGIN_URL, undefined = route mode. */
  forwarder: (origin: URL | undefined, options?: Omit<ForwardOptions, "origin" | "forward">) => Handler<{ Variables: PortcullisVariables }>;
}

/** The gate for an already validated configuration, with its Hono middleware and forwarding handler. */
export function createGate(config: ResolvedConfig, options: PortcullisOptions = {}): Gate {
  const gate = createCoreGate(config, options);
  const middleware: MiddlewareHandler<{ Variables: PortcullisVariables }> = async (c, next) => {
    const outcome = await gate.check(c.req.raw, c.env as Env, waitUntil(c));
    if ("response" in outcome) return outcome.response;
    // The next handlers see exactly what was authorized: the canonical path and the forwarded query (method
    // overrides and stripped tokens removed), with the cleaned headers. Body and method are the client's.
    const { path, search } = outcome.decision;
    c.req.raw = new Request(new URL(c.req.raw.url).origin + path + search, new Request(c.req.raw, { headers: outcome.headers }));
    c.set("portcullis", outcome.decision);
    await next();
  };
  return {
    ...gate,
    middleware,
    forwarder: (origin, forwardOptions = {}) =>
      forwardToOrigin({ log: gate.log, now: gate.now, ...forwardOptions, origin, forward: config.forward }),
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
