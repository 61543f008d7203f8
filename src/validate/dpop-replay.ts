import { GateError } from "../errors/errors";
import type { LogFn } from "../lib/log";
import type { DpopReplayStore } from "./dpop-replay-store";

/**
 * The gate's side of the DPoP replay store (the Durable Object is dpop-replay-store.ts, exported by the
 * Worker): which object a proof goes to, and how a store failure is answered. Kept apart from the class so
 * that importing the gate never imports `cloudflare:workers`.
 */

/** What the gate needs of the store: one atomic "first time?" per (jkt, jti). */
export type ReplayCheck = (jkt: string, jti: string, now: number, expiresAt: number) => Promise<boolean>;

/** Longest wait for the store before answering 503: a proof is never accepted unchecked. */
const STORE_TIMEOUT_MS = 5_000;

/**
 * The replay check through the Durable Object namespace bound as `bindingName`. A missing binding is a
 * deployment error (500); a store that throws or does not answer in time is 503 with `Retry-After`, logged
 * without the proof or token.
 */
export function durableReplayCheck(namespace: unknown, bindingName: string, log: LogFn): ReplayCheck {
  return async (jkt, jti, now, expiresAt) => {
    if (!isNamespace(namespace)) {
      log({ event: "dpop_replay_store", outcome: "error", reason: "binding_missing", binding: bindingName });
      throw new GateError("server_error", "dpop_replay_store_missing");
    }
    let timer: ReturnType<typeof setTimeout> | undefined;
    try {
      const stub = namespace.get(namespace.idFromName(jkt));
      const timeout = new Promise<never>((_, reject) => {
        timer = setTimeout(() => reject(new Error("timeout")), STORE_TIMEOUT_MS);
      });
      return await Promise.race([stub.claim(jti, now, expiresAt), timeout]);
    } catch (error) {
      log({ event: "dpop_replay_store", outcome: "error", reason: error instanceof Error && error.message === "timeout" ? "timeout" : "unreachable" });
      throw new GateError("temporarily_unavailable", "dpop_replay_store_unavailable", { retryAfter: 1 });
    } finally {
      if (timer !== undefined) clearTimeout(timer);
    }
  };
}

function isNamespace(value: unknown): value is DurableObjectNamespace<DpopReplayStore> {
  const candidate = value as Partial<DurableObjectNamespace> | undefined;
  return typeof candidate?.idFromName === "function" && typeof candidate.get === "function";
}
