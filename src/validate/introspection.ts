import type { JWTPayload } from "jose";
import type { IssuerConfig } from "../config/schema";
import { GateError, invalidToken } from "../errors/errors";
import type { LogFn } from "../log";
import { discoverEndpoint } from "./discovery";
import { FetchJsonError, fetchJson, type Fetcher } from "./fetch-json";
import { sha256Hex } from "./jwks";

/**
 * RFC 7662 token introspection for one issuer, with a cache that is safe by construction: keyed by a
 * SHA-256 of issuer and token (the token itself is never stored, logged or used as a key), bounded by the
 * token's `exp`, holding claims (never decisions: the route's requirements are checked on every request).
 *
 * The line between the two failure kinds is strict: the authorization server said the token is not
 * usable -> 401 `invalid_token`; the authorization server could not give an answer (down, slow, 5xx,
 * not JSON, oversized, or it refused our client credentials) -> 503 with `Retry-After`, never cached.
 */

export interface IntrospectionDeps {
  now: () => number;
  fetch: Fetcher;
  kv: KVNamespace | undefined;
  waitUntil: (promise: Promise<unknown>) => void;
  log: LogFn;
  binding: (name: string) => unknown;
}

type Entry = { active: true; claims: JWTPayload; expiresAt: number } | { active: false; expiresAt: number };

/** Per-isolate entries per issuer; the oldest are dropped first. */
const MEMORY_LIMIT = 10_000;
const KV_MIN_TTL = 60;
/** Seconds a client should wait after the authorization server failed us. */
const RETRY_AFTER = 5;

export class Introspector {
  readonly #cache = new Map<string, Entry>();
  #endpoint: { url: string; expiresAt: number } | undefined;

  constructor(private readonly issuer: IssuerConfig) {}

  /** The active token's claims, or a GateError: 401 inactive/invalid, 503 unavailable, 500 misconfigured. */
  async introspect(token: string, deps: IntrospectionDeps): Promise<JWTPayload> {
    const settings = this.issuer.introspection!;
    const key = await sha256Hex(`${this.issuer.issuer}\n${token}`);
    const now = deps.now();
    const cached = this.#cache.get(key) ?? (settings.kv_cache ? await this.#readKv(deps, key) : undefined);
    if (cached && now < cached.expiresAt) {
      if (!cached.active) throw invalidToken("token_inactive");
      this.#checkTimes(cached.claims, now);
      return cached.claims;
    }
    this.#cache.delete(key);

    const claims = await this.#ask(token, deps, now).catch((error: unknown) => {
      if (error instanceof GateError && error.code === "invalid_token" && settings.inactive_cache_ttl > 0) {
        this.#remember(key, { active: false, expiresAt: now + settings.inactive_cache_ttl * 1000 });
      }
      throw error;
    });
    const exp = typeof claims.exp === "number" ? claims.exp * 1000 : Infinity;
    const expiresAt = Math.min(now + settings.cache_ttl * 1000, exp);
    if (expiresAt > now) {
      this.#remember(key, { active: true, claims, expiresAt });
      if (settings.kv_cache) this.#writeKv(deps, key, claims, expiresAt, now);
    }
    return claims;
  }

  async #ask(token: string, deps: IntrospectionDeps, now: number): Promise<JWTPayload> {
    const settings = this.issuer.introspection!;
    const secret = deps.binding(settings.client_secret);
    if (typeof secret !== "string" || secret === "") throw new GateError("server_error", "introspection_secret_missing");
    const limits = { timeoutMs: settings.timeout_ms, maxBytes: settings.max_bytes };
    let body: unknown;
    try {
      const endpoint = await this.#endpointUrl(deps, now, limits);
      const form = new URLSearchParams({ token, token_type_hint: "access_token" });
      const headers: Record<string, string> = { "content-type": "application/x-www-form-urlencoded" };
      if (settings.auth_method === "client_secret_post") {
        form.set("client_id", settings.client_id);
        form.set("client_secret", secret);
      } else {
        // RFC 6749 2.3.1: both parts form-encoded before Basic encoding.
        headers.authorization = `Basic ${btoa(`${formEncode(settings.client_id)}:${formEncode(secret)}`)}`;
      }
      ({ body } = await fetchJson(deps.fetch, endpoint, limits, { method: "POST", headers, body: form.toString() }));
    } catch (error) {
      const reason = error instanceof FetchJsonError ? error.reason : "network_error";
      const operator = reason === "status_401" || reason === "status_403";
      // The body is never logged: some servers echo the token back.
      deps.log({
        event: "introspection_failed",
        issuer: this.issuer.issuer,
        reason: operator ? "client_authentication_failed" : reason,
        ...(operator ? { hint: "check introspection.client_id and the client_secret secret" } : {}),
      });
      throw new GateError("temporarily_unavailable", "introspection_unavailable", { retryAfter: RETRY_AFTER });
    }
    deps.log({ event: "introspection", issuer: this.issuer.issuer, active: (body as { active?: unknown } | null)?.active === true });
    if (typeof body !== "object" || body === null || Array.isArray(body)) {
      deps.log({ event: "introspection_failed", issuer: this.issuer.issuer, reason: "not_an_object" });
      throw new GateError("temporarily_unavailable", "introspection_unavailable", { retryAfter: RETRY_AFTER });
    }
    return this.#checkResponse(body, now);
  }

  /** RFC 7662 2.2: only a JSON object with boolean `active: true` is an active token. */
  #checkResponse(body: object, now: number): JWTPayload {
    const claims = body as JWTPayload & { active?: unknown; token_type?: unknown };
    if (claims.active !== true) throw invalidToken("token_inactive");
    for (const time of ["exp", "nbf", "iat"] as const) {
      if (claims[time] !== undefined && typeof claims[time] !== "number") throw invalidToken(`claim_invalid_${time}`);
    }
    this.#checkTimes(claims, now);
    if (claims.iss !== undefined && claims.iss !== this.issuer.issuer) throw invalidToken("issuer_mismatch");
    const audiences = claims.aud === undefined ? undefined : Array.isArray(claims.aud) ? claims.aud : [claims.aud];
    if (audiences === undefined ? this.issuer.introspection!.require_audience : !audiences.some((aud) => this.issuer.audiences.includes(aud as string))) {
      throw invalidToken("audience_mismatch");
    }
    if (claims.token_type !== undefined && (typeof claims.token_type !== "string" || claims.token_type.toLowerCase() !== "bearer")) {
      throw invalidToken("token_type_not_bearer");
    }
    if (claims.cnf !== undefined) throw invalidToken("token_sender_constrained");
    const { active: _active, ...rest } = claims;
    return { ...rest, iss: this.issuer.issuer };
  }

  /** Checked on every use, cached or not: a cache entry never outlives `exp`. */
  #checkTimes(claims: JWTPayload, now: number): void {
    const skew = this.issuer.clock_tolerance;
    if (typeof claims.exp === "number" && claims.exp <= now / 1000 - skew) throw invalidToken("token_expired");
    if (typeof claims.nbf === "number" && claims.nbf > now / 1000 + skew) throw invalidToken("token_not_yet_valid");
  }

  async #endpointUrl(deps: IntrospectionDeps, now: number, limits: { timeoutMs: number; maxBytes: number }): Promise<string> {
    const configured = this.issuer.introspection!.endpoint;
    if (configured) return configured;
    if (this.#endpoint && now < this.#endpoint.expiresAt) return this.#endpoint.url;
    const discovered = await discoverEndpoint(deps.fetch, this.issuer.issuer, "introspection_endpoint", limits);
    const { min_age, max_age, default_age } = this.issuer.jwks;
    const lifetime = discovered.maxAge === undefined ? default_age : Math.min(max_age, Math.max(min_age, discovered.maxAge));
    this.#endpoint = { url: discovered.url, expiresAt: now + lifetime * 1000 };
    return discovered.url;
  }

  #remember(key: string, entry: Entry): void {
    if (this.#cache.size >= MEMORY_LIMIT) this.#cache.delete(this.#cache.keys().next().value!);
    this.#cache.set(key, entry);
  }

  async #readKv(deps: IntrospectionDeps, key: string): Promise<Entry | undefined> {
    if (!deps.kv) return undefined;
    try {
      const stored = await deps.kv.get<{ v: 1; claims: JWTPayload; expires_at: number }>(`introspection:v1:${key}`, "json");
      if (!stored || stored.v !== 1 || typeof stored.expires_at !== "number" || typeof stored.claims !== "object") return undefined;
      const entry: Entry = { active: true, claims: stored.claims, expiresAt: stored.expires_at };
      this.#remember(key, entry);
      return entry;
    } catch {
      return undefined;
    }
  }

  #writeKv(deps: IntrospectionDeps, key: string, claims: JWTPayload, expiresAt: number, now: number): void {
    const kv = deps.kv;
    const ttl = Math.floor((expiresAt - now) / 1000);
    // Workers KV cannot hold anything for less than 60 s: shorter-lived results stay in memory only.
    if (!kv || ttl < KV_MIN_TTL) return;
    deps.waitUntil(
      kv
        .put(`introspection:v1:${key}`, JSON.stringify({ v: 1, claims, expires_at: expiresAt }), { expirationTtl: ttl })
        .catch(() => deps.log({ event: "introspection_kv_write_failed", issuer: this.issuer.issuer })),
    );
  }
}

/** application/x-www-form-urlencoded for one value. */
const formEncode = (value: string) => new URLSearchParams({ v: value }).toString().slice(2);
