import type { JWTPayload } from "jose";
import type { IssuerConfig } from "../config/schema";
import { GateError, invalidToken } from "../errors/errors";
import type { LogFn } from "../log";
import { discoverEndpoint } from "./discovery";
import { FetchJsonError, fetchJson, type Fetcher, type JsonRequest } from "./fetch-json";
import { documentLifetime, sha256Hex } from "./jwks";

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
    const limits = { timeoutMs: settings.timeout_ms, maxBytes: settings.max_bytes };
    const secret = settings.client_secret === undefined ? undefined : deps.binding(settings.client_secret);
    if (settings.client_secret !== undefined && (typeof secret !== "string" || secret === "")) {
      throw new GateError("server_error", "introspection_secret_missing");
    }
    let body: unknown;
    try {
      const { url, request } = await this.#request(token, secret as string | undefined, deps, now, limits);
      ({ body } = await fetchJson(deps.fetch, url, limits, request));
    } catch (error) {
      const reason = error instanceof FetchJsonError ? error.reason : "network_error";
      // Providers answer "invalid, expired or revoked" with a status instead of `active: false`.
      if (INACTIVE_STATUS[settings.flavor] === reason) throw invalidToken("token_inactive");
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
    deps.log({ event: "introspection", issuer: this.issuer.issuer, flavor: settings.flavor });
    if (typeof body !== "object" || body === null || Array.isArray(body)) {
      deps.log({ event: "introspection_failed", issuer: this.issuer.issuer, reason: "not_an_object" });
      throw new GateError("temporarily_unavailable", "introspection_unavailable", { retryAfter: RETRY_AFTER });
    }
    return this.#checkClaims(this.#normalize(body as Record<string, unknown>, now), now);
  }

  /** The HTTP request each flavor's token check expects. */
  async #request(
    token: string,
    secret: string | undefined,
    deps: IntrospectionDeps,
    now: number,
    limits: { timeoutMs: number; maxBytes: number },
  ): Promise<{ url: string; request?: JsonRequest }> {
    const settings = this.issuer.introspection!;
    const clientId = settings.client_id ?? "";
    const basic = `Basic ${btoa(`${formEncode(clientId)}:${formEncode(secret ?? "")}`)}`;
    switch (settings.flavor) {
      case "google":
      case "amazon": {
        // Both providers take the token as a query parameter; the URL is never logged.
        const url = new URL(settings.endpoint!);
        url.searchParams.set("access_token", token);
        return { url: url.href };
      }
      case "github":
        return {
          url: settings.endpoint!.replace("{client_id}", encodeURIComponent(clientId)),
          request: {
            method: "POST",
            headers: {
              authorization: basic,
              accept: "application/vnd.github+json",
              "content-type": "application/json",
              "x-github-api-version": "2022-11-28",
              "user-agent": "portcullis",
            },
            body: JSON.stringify({ access_token: token }),
          },
        };
      case "rfc7662": {
        const endpoint = await this.#endpointUrl(deps, now, limits);
        const form = new URLSearchParams({ token, token_type_hint: "access_token" });
        const headers: Record<string, string> = { "content-type": "application/x-www-form-urlencoded" };
        if (settings.auth_method === "client_secret_post") {
          form.set("client_id", clientId);
          form.set("client_secret", secret ?? "");
        } else {
          // RFC 6749 2.3.1: both parts form-encoded before Basic encoding.
          headers.authorization = basic;
        }
        return { url: endpoint, request: { method: "POST", headers, body: form.toString() } };
      }
    }
  }

  /**
   * Each flavor's answer mapped into the same verified-identity claims: `sub`, `client_id`, `scope`,
   * `exp` (absolute), `aud`; provider extras (email, login) kept. Echoed tokens are never carried over.
   */
  #normalize(body: Record<string, unknown>, now: number): JWTPayload {
    const nowSeconds = Math.floor(now / 1000);
    const text = (value: unknown) => (typeof value === "string" && value !== "" ? value : undefined);
    switch (this.issuer.introspection!.flavor) {
      case "rfc7662": {
        // RFC 7662 2.2: only a JSON object with boolean `active: true` is an active token.
        if (body.active !== true) throw invalidToken("token_inactive");
        if (body.token_type !== undefined && (typeof body.token_type !== "string" || body.token_type.toLowerCase() !== "bearer")) {
          throw invalidToken("token_type_not_bearer");
        }
        const { active: _active, ...claims } = body;
        return claims as JWTPayload;
      }
      case "google": {
        // Google sends numbers as strings: `exp` is an absolute epoch, `expires_in` seconds left.
        const left = seconds(body.expires_in);
        const exp = seconds(body.exp) ?? (left === undefined ? undefined : nowSeconds + left);
        if (exp === undefined) throw invalidToken("claim_invalid_exp");
        const aud = [text(body.aud), text(body.azp)].filter((value): value is string => value !== undefined);
        return strip({
          sub: text(body.sub),
          client_id: text(body.azp) ?? text(body.aud),
          aud: [...new Set(aud)],
          scope: text(body.scope),
          exp,
          email: text(body.email),
          email_verified: body.email_verified === true || body.email_verified === "true",
        });
      }
      case "github": {
        const user = (body.user ?? {}) as Record<string, unknown>;
        const app = (body.app ?? {}) as Record<string, unknown>;
        // The check is per OAuth app: a token of another app must never pass as ours.
        if (app.client_id !== this.issuer.introspection!.client_id) throw invalidToken("client_mismatch");
        const scopes = Array.isArray(body.scopes) ? body.scopes.filter((scope): scope is string => typeof scope === "string") : [];
        const expiresAt = typeof body.expires_at === "string" ? Date.parse(body.expires_at) : Number.NaN;
        return strip({
          sub: user.id === undefined ? undefined : String(user.id),
          login: text(user.login),
          client_id: text(app.client_id),
          scope: scopes.join(" "),
          exp: Number.isFinite(expiresAt) ? Math.floor(expiresAt / 1000) : undefined,
        });
      }
      case "amazon": {
        // Amazon's `exp` is seconds remaining, not an epoch.
        const left = seconds(body.exp);
        if (left === undefined) throw invalidToken("claim_invalid_exp");
        return strip({
          iss: text(body.iss),
          sub: text(body.user_id),
          client_id: text(body.aud),
          aud: text(body.aud),
          app_id: text(body.app_id),
          iat: seconds(body.iat),
          exp: nowSeconds + left,
        });
      }
    }
  }

  /** Checks common to every flavor, on the normalized claims. */
  #checkClaims(claims: JWTPayload, now: number): JWTPayload {
    for (const time of ["exp", "nbf", "iat"] as const) {
      if (claims[time] !== undefined && typeof claims[time] !== "number") throw invalidToken(`claim_invalid_${time}`);
    }
    this.#checkTimes(claims, now);
    if (claims.iss !== undefined && claims.iss !== this.issuer.issuer) throw invalidToken("issuer_mismatch");
    const audiences = claims.aud === undefined ? undefined : Array.isArray(claims.aud) ? claims.aud : [claims.aud];
    // GitHub tokens have no audience: the per-app check in #normalize binds them to us.
    if (this.issuer.introspection!.flavor !== "github") {
      const required = this.issuer.introspection!.require_audience;
      if (audiences === undefined ? required : !audiences.some((aud) => this.issuer.audiences.includes(aud as string))) {
        throw invalidToken("audience_mismatch");
      }
    }
    if (claims.cnf !== undefined) throw invalidToken("token_sender_constrained");
    return { ...claims, iss: this.issuer.issuer };
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
    this.#endpoint = { url: discovered.url, expiresAt: now + documentLifetime(this.issuer.jwks, discovered.maxAge) * 1000 };
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

/** The failed status that means "this token is not valid" for each flavor (everything else is a 503). */
const INACTIVE_STATUS: Record<string, string | undefined> = { google: "status_400", amazon: "status_400", github: "status_404", rfc7662: undefined };

/** A number, or a string of digits (Google and Amazon send numbers as strings). */
function seconds(value: unknown): number | undefined {
  if (typeof value === "number" && Number.isFinite(value)) return value;
  return typeof value === "string" && /^\d{1,12}$/.test(value) ? Number(value) : undefined;
}

/** Drops undefined members, so absent provider fields stay absent. */
function strip(claims: Record<string, unknown>): JWTPayload {
  return Object.fromEntries(Object.entries(claims).filter(([, value]) => value !== undefined)) as JWTPayload;
}

/** application/x-www-form-urlencoded for one value. */
const formEncode = (value: string) => new URLSearchParams({ v: value }).toString().slice(2);
