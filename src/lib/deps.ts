import type { LogFn } from "./log";

/**
 * What the stages need from the world, injected so that tests control it (no real clock, network or
 * waiting). One type for validation (JWT, key sets, introspection) and forwarding, so it lives here, below
 * both stages, rather than in either. The gate builds one per request; `issuerDeps` (validate/jwt.ts)
 * derives an issuer's own, whose `fetch` goes through its `jwks_service` binding when it has one.
 */
export interface Deps {
  /** Milliseconds since the epoch. */
  now: () => number;
  /** Outbound requests (to issuers, authorization servers, the origin). */
  fetch: typeof fetch;
  /** The shared Workers KV namespace, when bound. */
  kv: KVNamespace | undefined;
  /** Schedules work after the response (KV writes, background refreshes). */
  waitUntil: (promise: Promise<unknown>) => void;
  log: LogFn;
  /** Worker bindings by name (secrets, services), read per request: a secret may change at any time. */
  binding: (name: string) => unknown;
}
