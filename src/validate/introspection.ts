import type { JWTPayload } from "jose";
import type { IssuerConfig } from "../config/schema";
import { GateError, invalidToken } from "../errors/errors";
import { secretText } from "../lib/bindings";
import { BoundedMap } from "../lib/bounded-map";
import type { Deps } from "../lib/deps";
import { sha256Hex } from "../lib/digest";
import { KV_MIN_TTL } from "../lib/kv";
import { confirmationOf, refuseIdToken, refuseSenderConstrained } from "./claims";
import { discoverEndpoint } from "./discovery";
import { FetchJsonError, fetchJson, type FetchLimits, type JsonRequest } from "./fetch-json";
import { documentLifetime } from "./jwks";
import { hasProviderFormat } from "./token-format";
import { CallBudget, rateLimitWait, RecentKeys } from "./upstream-limits";

/**
 * RFC 7662 token introspection for one issuer, with a cache that is safe by construction: keyed by a
 * SHA-256 of the token and everything the answer depends on (issuer, flavor, endpoint, client id; the
 * token itself is never stored, logged or used as a key), bounded by the token's `exp`, holding claims
 * (never decisions: the route's requirements are checked on every request). Every cache hit, memory or
 * KV, re-runs this configuration's answer checks, so an entry written by another configuration sharing
 * the KV namespace is never accepted on its checks.
 *
 * The line between the two failure kinds is strict: the authorization server said the token is not
 * usable -> 401 `invalid_token`; the authorization server could not give an answer (down, slow, 5xx,
 * not JSON, oversized, rate limiting, or it refused our client credentials) -> 503 with `Retry-After`,
 * never cached. Upstream calls are bounded (upstream-limits.ts): a made-up provider token is refused on
 * its format, and unknown tokens beyond `max_calls_per_minute` get a local 503.
 */

type Flavor = NonNullable<IssuerConfig["introspection"]>["flavor"];
type Entry = { active: true; claims: JWTPayload; expiresAt: number } | { active: false; reason: string; expiresAt: number };

/** Per-isolate entries per issuer; the least recently used are dropped first. */
const MEMORY_LIMIT = 10_000;
/** Tokens (by cache key) remembered as seen active, exempt from the call budget. */
const KNOWN_ACTIVE_LIMIT = 10_000;
/** v2: keyed by issuer, flavor, endpoint and client id, not issuer alone (v1 entries are never read). */
const KV_PREFIX = "introspection:v2:";
/** Seconds a client should wait after the authorization server failed us. */
const RETRY_AFTER = 5;

/** What each flavor's answer must carry (README "Provider tokens"): a missing field is a refusal. */
const REQUIRED: Record<Flavor, { iss: boolean; aud: boolean }> = {
  rfc7662: { iss: false, aud: false },
  google: { iss: false, aud: true },
  // GitHub tokens have no audience: the per-app `client_id` check binds them to us.
  github: { iss: false, aud: false },
  amazon: { iss: true, aud: true },
};

const unavailable = (reason: string, retryAfter: number) => new GateError("temporarily_unavailable", reason, { retryAfter });

/** A token the provider could never have issued costs no upstream call (and no cache entry): refused here. */
export function checkTokenFormat(settings: NonNullable<IssuerConfig["introspection"]>, token: string): void {
  if (settings.check_format && !hasProviderFormat(settings.flavor, token)) throw invalidToken("token_format_invalid");
}

export class Introspector {
  readonly #cache = new BoundedMap<string, Entry>(MEMORY_LIMIT);
  readonly #knownActive = new RecentKeys(KNOWN_ACTIVE_LIMIT);
  readonly #budget: CallBudget;
  /** Until when the upstream told us to stop calling it (epoch ms). */
  #blockedUntil = 0;
  /** One `introspection_budget_exhausted` line per exhaustion, not one per refused request. */
  #budgetLogged = false;
  #endpoint: { url: string; expiresAt: number } | undefined;

  constructor(private readonly issuer: IssuerConfig) {
    this.#budget = new CallBudget(issuer.introspection!.max_calls_per_minute);
  }

  /** The active token's claims, or a GateError: 401 inactive/invalid, 503 unavailable, 500 misconfigured. */
  async introspect(token: string, deps: Deps): Promise<JWTPayload> {
    const settings = this.issuer.introspection!;
    checkTokenFormat(settings, token);
    const key = await this.#cacheKey(token);
    const now = deps.now();
    // `cache_ttl = 0` means every request asks: not even another isolate's answer is taken.
    const cached = this.#cache.get(key) ?? (settings.kv_cache && settings.cache_ttl > 0 ? await this.#readKv(deps, key, now) : undefined);
    if (cached && now < cached.expiresAt) {
      if (!cached.active) throw invalidToken(cached.reason);
      // Claims are cached, never the verdict: this configuration's checks decide on every hit.
      const claims = this.#checkClaims(cached.claims, now);
      this.#knownActive.add(key); // a KV hit makes the token known to this isolate too
      return claims;
    }
    this.#cache.delete(key);
    this.#admit(key, now, deps);

    const claims = await this.#ask(token, deps, now).catch((error: unknown) => {
      if (error instanceof GateError && error.code === "invalid_token") {
        this.#knownActive.delete(key);
        if (settings.inactive_cache_ttl > 0) {
          this.#cache.set(key, { active: false, reason: error.reason, expiresAt: now + settings.inactive_cache_ttl * 1000 });
        }
      }
      throw error;
    });
    this.#knownActive.add(key);
    const exp = typeof claims.exp === "number" ? claims.exp * 1000 : Infinity;
    const expiresAt = Math.min(now + settings.cache_ttl * 1000, exp);
    if (expiresAt > now) {
      this.#cache.set(key, { active: true, claims, expiresAt });
      if (settings.kv_cache) this.#writeKv(deps, key, claims, expiresAt, now);
    }
    return claims;
  }

  /** The cache key: what the answer depends on besides the token, so other configurations get other keys. */
  #cacheKey(token: string): Promise<string> {
    const { flavor, endpoint, client_id } = this.issuer.introspection!;
    return sha256Hex(JSON.stringify([this.issuer.issuer, flavor, endpoint ?? "(discovered)", client_id ?? "", token]));
  }

  /**
   * Whether this isolate may call the upstream now: never while it asked us to wait; otherwise within the
   * call budget, which tokens seen active before bypass (a flood of unknown tokens must not lock out the
   * clients that were working). Refusals are a local 503, the upstream is not called.
   */
  #admit(key: string, now: number, deps: Deps): void {
    if (now < this.#blockedUntil) throw unavailable("introspection_rate_limited", (this.#blockedUntil - now) / 1000);
    if (this.#knownActive.has(key)) return;
    const wait = this.#budget.take(now);
    if (wait === 0) {
      this.#budgetLogged = false;
      return;
    }
    if (!this.#budgetLogged) {
      this.#budgetLogged = true;
      deps.log({ event: "introspection_budget_exhausted", issuer: this.issuer.issuer, max_calls_per_minute: this.issuer.introspection!.max_calls_per_minute });
    }
    throw unavailable("introspection_budget_exhausted", wait);
  }

  async #ask(token: string, deps: Deps, now: number): Promise<JWTPayload> {
    const settings = this.issuer.introspection!;
    const secret = settings.client_secret === undefined ? undefined : secretText(deps.binding(settings.client_secret));
    if (settings.client_secret !== undefined && secret === undefined) throw new GateError("server_error", "introspection_secret_missing");
    let body: unknown;
    try {
      const { url, request } = await this.#request(token, secret, deps, now, settings);
      ({ body } = await fetchJson(deps.fetch, url, settings, request));
    } catch (error) {
      const reason = error instanceof FetchJsonError ? error.reason : "network_error";
      // Providers answer "invalid, expired or revoked" with a status instead of `active: false`.
      if (INACTIVE_STATUS[settings.flavor] === reason) throw invalidToken("token_inactive");
      const wait = error instanceof FetchJsonError && error.response ? rateLimitWait(error.response.status, error.response.headers, now) : undefined;
      if (wait !== undefined) {
        // Told to slow down: no call to this issuer from this isolate until the wait is over.
        this.#blockedUntil = now + wait * 1000;
        deps.log({ event: "introspection_failed", issuer: this.issuer.issuer, reason: "rate_limited", retry_after: wait });
        throw unavailable("introspection_rate_limited", wait);
      }
      const operator = reason === "status_401" || reason === "status_403";
      // The body is never logged: some servers echo the token back.
      deps.log({
        event: "introspection_failed",
        issuer: this.issuer.issuer,
        reason: operator ? "client_authentication_failed" : reason,
        ...(operator ? { hint: "check introspection.client_id and the client_secret secret" } : {}),
      });
      throw unavailable("introspection_unavailable", RETRY_AFTER);
    }
    deps.log({ event: "introspection", issuer: this.issuer.issuer, flavor: settings.flavor });
    if (typeof body !== "object" || body === null || Array.isArray(body)) {
      deps.log({ event: "introspection_failed", issuer: this.issuer.issuer, reason: "not_an_object" });
      throw unavailable("introspection_unavailable", RETRY_AFTER);
    }
    return this.#checkClaims(this.#normalize(body as Record<string, unknown>, now), now);
  }

  /** The HTTP request each flavor's token check expects. */
  async #request(
    token: string,
    secret: string | undefined,
    deps: Deps,
    now: number,
    limits: FetchLimits,
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
   * `exp` (absolute), `aud`; provider extras (email, login, Google's `azp`) kept. Echoed tokens are never
   * carried over. `nonce`, and a `cnf` the gate cannot check, are refused on the raw answer, before any
   * mapping could drop them: RFC 7662 answers keep a checkable `cnf` (RFC 9449 section 6.2, RFC 8705
   * section 3.2), which binds the token like a JWT's; provider answers never carry one, so any is refused.
   */
  #normalize(body: Record<string, unknown>, now: number): JWTPayload {
    const nowSeconds = Math.floor(now / 1000);
    const text = (value: unknown) => (typeof value === "string" && value !== "" ? value : undefined);
    // RFC 7662 2.2: only a JSON object with boolean `active: true` is an active token.
    if (this.issuer.introspection!.flavor === "rfc7662" && body.active !== true) throw invalidToken("token_inactive");
    if (this.issuer.introspection!.flavor === "rfc7662") confirmationOf(body);
    else refuseSenderConstrained(body);
    refuseIdToken(body, ["nonce"]);
    switch (this.issuer.introspection!.flavor) {
      case "rfc7662": {
        const { active: _active, ...claims } = body;
        return claims as JWTPayload;
      }
      case "google": {
        // Google sends numbers as strings: `exp` is an absolute epoch, `expires_in` seconds left.
        const left = seconds(body.expires_in);
        const exp = seconds(body.exp) ?? (left === undefined ? undefined : nowSeconds + left);
        if (exp === undefined) throw invalidToken("claim_invalid_exp");
        return strip({
          sub: text(body.sub),
          client_id: text(body.azp) ?? text(body.aud),
          aud: text(body.aud),
          azp: text(body.azp),
          scope: text(body.scope),
          exp,
          email: text(body.email),
          email_verified: body.email_verified === true || body.email_verified === "true",
        });
      }
      case "github": {
        const user = (body.user ?? {}) as Record<string, unknown>;
        const app = (body.app ?? {}) as Record<string, unknown>;
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

  /**
   * This configuration's checks on normalized claims, on a fresh answer and again on every cache hit
   * (memory or KV): times, issuer, audience, GitHub app, token type, `cnf` form, `nonce`. (`required_claims`
   * apply where the answer is the identity: token.ts.)
   */
  #checkClaims(claims: JWTPayload, now: number): JWTPayload {
    const settings = this.issuer.introspection!;
    for (const time of ["exp", "nbf", "iat"] as const) {
      if (claims[time] !== undefined && typeof claims[time] !== "number") throw invalidToken(`claim_invalid_${time}`);
    }
    this.#checkTimes(claims, now);
    if (claims.iss === undefined ? REQUIRED[settings.flavor].iss : claims.iss !== this.issuer.issuer) {
      throw invalidToken(claims.iss === undefined ? "issuer_missing" : "issuer_mismatch");
    }
    this.#checkAudience(claims);
    // The GitHub check is per OAuth app: a token of another app must never pass as ours.
    if (settings.flavor === "github" && claims.client_id !== settings.client_id) throw invalidToken("client_mismatch");
    // RFC 9449 section 6.2: a DPoP-bound token is introspected as `token_type` DPoP, with its `cnf.jkt`.
    const confirmation = settings.flavor === "rfc7662" ? confirmationOf(claims) : undefined;
    const tokenType = typeof claims.token_type === "string" ? claims.token_type.toLowerCase() : claims.token_type;
    if (tokenType !== undefined && tokenType !== "bearer" && !(tokenType === "dpop" && confirmation?.jkt !== undefined)) {
      throw invalidToken("token_type_not_bearer");
    }
    if (settings.flavor !== "rfc7662") refuseSenderConstrained(claims);
    refuseIdToken(claims, ["nonce"]);
    return { ...claims, iss: this.issuer.issuer };
  }

  /**
   * `aud` must name one of `audiences` (and be there at all for Google, Amazon, or with
   * `require_audience`); Google's `azp`, when sent, must be listed too. GitHub tokens have no audience.
   */
  #checkAudience(claims: JWTPayload): void {
    const { flavor, require_audience } = this.issuer.introspection!;
    if (flavor === "github") return;
    const listed = (value: unknown) => typeof value === "string" && this.issuer.audiences.includes(value);
    if (claims.aud === undefined) {
      if (REQUIRED[flavor].aud || require_audience) throw invalidToken("audience_missing");
    } else if (!(Array.isArray(claims.aud) ? claims.aud : [claims.aud]).some(listed)) {
      throw invalidToken("audience_mismatch");
    }
    if (flavor === "google" && claims.azp !== undefined && !listed(claims.azp)) throw invalidToken("audience_mismatch");
  }

  /** Checked on every use, cached or not: a cache entry never outlives `exp`. */
  #checkTimes(claims: JWTPayload, now: number): void {
    const skew = this.issuer.clock_tolerance;
    if (typeof claims.exp === "number" && claims.exp <= now / 1000 - skew) throw invalidToken("token_expired");
    if (typeof claims.nbf === "number" && claims.nbf > now / 1000 + skew) throw invalidToken("token_not_yet_valid");
  }

  async #endpointUrl(deps: Deps, now: number, limits: FetchLimits): Promise<string> {
    const configured = this.issuer.introspection!.endpoint;
    if (configured) return configured;
    if (this.#endpoint && now < this.#endpoint.expiresAt) return this.#endpoint.url;
    const discovered = await discoverEndpoint(deps.fetch, this.issuer.issuer, "introspection_endpoint", limits);
    this.#endpoint = { url: discovered.url, expiresAt: now + documentLifetime(this.issuer.jwks, discovered.maxAge) * 1000 };
    return discovered.url;
  }

  /**
   * Another isolate's answer, kept no longer than this configuration's `cache_ttl` allows: from when it was
   * written (`written_at`), or, for an entry without it, from now. A writer with a longer `cache_ttl` (an
   * older deploy, another configuration) never extends how long a revoked token keeps working here.
   */
  async #readKv(deps: Deps, key: string, now: number): Promise<Entry | undefined> {
    if (!deps.kv) return undefined;
    try {
      const stored = await deps.kv.get<{ v: 2; claims: JWTPayload; expires_at: number; written_at?: number }>(KV_PREFIX + key, "json");
      if (!stored || stored.v !== 2 || typeof stored.expires_at !== "number" || !isObject(stored.claims)) return undefined;
      const written = typeof stored.written_at === "number" ? stored.written_at : now;
      // Written in the future: not an answer any isolate got (clocks agree within seconds).
      if (written > now + 60_000) return undefined;
      const entry: Entry = { active: true, claims: stored.claims, expiresAt: Math.min(stored.expires_at, written + this.issuer.introspection!.cache_ttl * 1000) };
      this.#cache.set(key, entry);
      return entry;
    } catch {
      return undefined;
    }
  }

  #writeKv(deps: Deps, key: string, claims: JWTPayload, expiresAt: number, now: number): void {
    const kv = deps.kv;
    const ttl = Math.floor((expiresAt - now) / 1000);
    // Workers KV cannot hold anything for less than 60 s: shorter-lived results stay in memory only.
    if (!kv || ttl < KV_MIN_TTL) return;
    deps.waitUntil(
      kv
        .put(KV_PREFIX + key, JSON.stringify({ v: 2, claims, expires_at: expiresAt, written_at: now }), { expirationTtl: ttl })
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

const isObject = (value: unknown): value is JWTPayload => typeof value === "object" && value !== null && !Array.isArray(value);

/** Drops undefined members, so absent provider fields stay absent. */
function strip(claims: Record<string, unknown>): JWTPayload {
  return Object.fromEntries(Object.entries(claims).filter(([, value]) => value !== undefined)) as JWTPayload;
}

/** application/x-www-form-urlencoded for one value. */
const formEncode = (value: string) => new URLSearchParams({ v: value }).toString().slice(2);
