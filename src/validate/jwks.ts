import type { JWK } from "jose";
import type { IssuerConfig } from "../config/schema";
import { GateError } from "../errors/errors";
import { BoundedMap } from "../lib/bounded-map";
import type { Deps } from "../lib/deps";
import { sha256Hex } from "../lib/digest";
import { KV_MIN_TTL } from "../lib/kv";
import type { LogFn } from "../lib/log";
import { discoverEndpoint } from "./discovery";
import { FetchJsonError, fetchJson } from "./fetch-json";
import { distinctKeys, toKeyRecord, unusableReason, type KeyRecord } from "./keys";

/**
 * One issuer's JSON Web Key Set, in three tiers: isolate memory, Workers KV (shared by every isolate and
 * location), the issuer. Keys never leave their issuer: each issuer has its own cache and KV entry.
 *
 * - Freshness follows the response's `Cache-Control: max-age`, clamped to [min_age, max_age]
 *   (default_age when absent). Near the end of a set's life it is served while a background refresh
 *   (`waitUntil`) fetches the next one, so requests do not wait on the IdP.
 * - A failed fetch never replaces a good set: the last good set is served up to `max_stale` past its
 *   expiry, and attempts back off from `refetch_cooldown` to `max_backoff`. No keys at all: 503.
 * - An unknown `kid` first looks at KV (another isolate may hold the rotated set), then causes at most one
 *   fetch per cooldown per isolate; the cooldown is also published in KV for other isolates, and the
 *   `kid` is remembered as unknown until the next allowed fetch (never longer: a rotated-in `kid` is picked
 *   up at the latest `refetch_cooldown`, or the failure backoff, after the previous fetch), so floods cost
 *   no I/O at all.
 * - KV entries are named by everything the stored set depends on (issuer, `jwks_uri`, `jwks_service`), and
 *   what is read is checked again under this configuration: the key policy, the configured `jwks_uri`, and
 *   this issuer's `max_age` and `max_stale`, so a namespace shared with another configuration never widens this one.
 * - Fetches are never shared between requests by promise (workerd forbids awaiting another request's
 *   I/O; jose #355, #509): a request that finds a fetch under way polls for its result instead.
 */

interface KeySet {
  keys: KeyRecord[];
  fetchedAt: number;
  expiresAt: number;
  jwksUri: string;
  /** When a discovered `jwks_uri` must be looked up again (Infinity when configured). */
  jwksUriExpiresAt: number;
}

/** The KV record. Versioned so a format change is ignored, not misread. */
interface StoredKeySet {
  v: 2;
  keys: JWK[];
  fetched_at: number;
  expires_at: number;
  jwks_uri: string;
  jwks_uri_expires_at: number | null;
}

/** On unknown kids, KV is consulted at most this often per isolate (floods must not become KV floods). */
const KV_RECHECK_MS = 1_000;
/** Unknown kids remembered per issuer; a flood of random kids only ever pushes the oldest out. */
const UNKNOWN_KIDS_LIMIT = 1_000;

export class KeySetCache {
  #current: KeySet | undefined;
  #lastAttempt = -Infinity;
  #failures = 0;
  /** Set while some request of this isolate is fetching; others wait for its result instead. */
  #fetching = false;
  #lastKvCheck = -Infinity;
  /** Unknown `kid` -> until when it is known to be unknown. */
  readonly #unknownKids = new BoundedMap<string, number>(UNKNOWN_KIDS_LIMIT);
  #kvNames: { set: string; attempt: string } | undefined;
  /** The end of another isolate's published cooldown, once read: until then no kid miss reads KV again. */
  #sharedCooldownUntil = -Infinity;

  constructor(private readonly issuer: IssuerConfig) {}

  /** The current key set, loading or refreshing it as needed. Throws 503 when no keys can be had. */
  async keys(deps: Deps): Promise<KeyRecord[]> {
    const now = deps.now();
    if (!this.#fresh(now) && now - this.#lastKvCheck >= KV_RECHECK_MS) await this.#readKv(deps, now);
    if (this.#fresh(now)) {
      this.#refreshAhead(deps, now);
      return this.#current!.keys;
    }
    // No set yet is a first load, not an expiry: the log says which.
    return this.#refresh(deps, this.#current ? "expired" : "initial");
  }

  /** Called when a token names a `kid` the current set lacks. Returns the set to retry the lookup in. */
  async keysAfterMiss(deps: Deps, kid: string): Promise<KeyRecord[]> {
    const now = deps.now();
    if ((this.#unknownKids.get(kid) ?? -Infinity) > now) return this.#usable(now);
    if (now - this.#lastKvCheck >= KV_RECHECK_MS && (await this.#readKv(deps, now)) && this.#has(kid)) {
      return this.#current!.keys;
    }
    if (this.#fetching) {
      await this.#awaitOtherFetch();
      if (this.#has(kid)) return this.#current!.keys;
    }
    const nextFetchAt = now < this.#nextAttemptAt() ? this.#nextAttemptAt() : now < this.#sharedCooldownUntil ? this.#sharedCooldownUntil : await this.#sharedCooldownEnd(deps, now);
    if (nextFetchAt !== undefined) {
      this.#rememberUnknown(kid, nextFetchAt);
      deps.log({ event: "jwks_cooldown_skip", issuer: this.issuer.issuer, reason: "unknown_kid" });
      return this.#usable(now);
    }
    this.#publishAttempt(deps, now);
    const keys = await this.#refresh(deps, "unknown_kid");
    if (!keys.some((key) => key.kid === kid)) this.#rememberUnknown(kid, this.#nextAttemptAt());
    return keys;
  }

  /** For the cron trigger: refresh into KV when less than half of the set's life is left. */
  async refreshScheduled(deps: Deps): Promise<"fresh" | "refreshed" | "failed"> {
    const now = deps.now();
    await this.#readKv(deps, now);
    const current = this.#current;
    if (current && now < current.fetchedAt + (current.expiresAt - current.fetchedAt) / 2) return "fresh";
    const before = current?.fetchedAt;
    await this.#refresh(deps, "scheduled").catch(() => undefined);
    return this.#current && this.#current.fetchedAt !== before ? "refreshed" : "failed";
  }

  #fresh(now: number): boolean {
    return this.#current !== undefined && now < this.#current.expiresAt;
  }

  #has(kid: string): boolean {
    return this.#current?.keys.some((key) => key.kid === kid) ?? false;
  }

  /** Until the next fetch this isolate may make: remembering longer would delay a rotated-in `kid`. */
  #rememberUnknown(kid: string, until: number): void {
    this.#unknownKids.set(kid, until);
  }

  /** Cooldown after a success; after failures it doubles, up to max_backoff. */
  #nextAttemptAt(): number {
    const { refetch_cooldown, max_backoff } = this.issuer.jwks;
    const wait = this.#failures === 0 ? refetch_cooldown : Math.min(max_backoff, refetch_cooldown * 2 ** (this.#failures - 1));
    return this.#lastAttempt + wait * 1000;
  }

  #refreshAhead(deps: Deps, now: number): void {
    const current = this.#current!;
    const ahead = this.issuer.jwks.refresh_ahead * 1000;
    if (ahead === 0 || now < current.expiresAt - ahead || this.#fetching || now < this.#nextAttemptAt()) return;
    deps.waitUntil(this.#refresh(deps, "refresh_ahead").catch(() => undefined));
  }

  async #refresh(deps: Deps, cause: string): Promise<KeyRecord[]> {
    if (this.#fetching) {
      await this.#awaitOtherFetch();
      return this.#usable(deps.now());
    }
    const now = deps.now();
    if (now < this.#nextAttemptAt()) {
      deps.log({ event: "jwks_cooldown_skip", issuer: this.issuer.issuer, reason: cause });
      return this.#usable(now);
    }
    this.#lastAttempt = now;
    this.#fetching = true;
    try {
      const fetched = await this.#fetch(deps, now);
      this.#current = fetched;
      this.#failures = 0;
      this.#unknownKids.clear();
      deps.log({ event: "jwks_fetch", issuer: this.issuer.issuer, reason: cause, keys: fetched.keys.length, ttl: (fetched.expiresAt - now) / 1000 });
      this.#writeKv(deps, fetched);
      return fetched.keys;
    } catch (error) {
      this.#failures++;
      const reason = error instanceof FetchJsonError ? error.reason : "network_error";
      deps.log({ event: "jwks_fetch_failed", issuer: this.issuer.issuer, reason, cause, failures: this.#failures });
      return this.#usable(now);
    } finally {
      this.#fetching = false;
    }
  }

  /** The last good keys within max_stale, else 503 with a Retry-After of the time to the next attempt. */
  #usable(now: number): KeyRecord[] {
    const current = this.#current;
    if (current && now < current.expiresAt + this.issuer.jwks.max_stale * 1000) return current.keys;
    const retryAfter = Math.max(1, (this.#nextAttemptAt() - now) / 1000);
    throw new GateError("temporarily_unavailable", "jwks_unavailable", { retryAfter });
  }

  /**
   * Waits for another request's fetch by polling shared state, never by awaiting its promise. Bounded by
   * the fetch timeout (twice, for discovery plus JWKS).
   */
  async #awaitOtherFetch(): Promise<void> {
    const step = 5;
    for (let waited = 0; this.#fetching && waited <= 2 * this.issuer.jwks.timeout_ms; waited += step) {
      await new Promise((resolve) => setTimeout(resolve, step));
    }
  }

  async #fetch(deps: Deps, now: number): Promise<KeySet> {
    let jwksUri = this.issuer.jwks_uri;
    let jwksUriExpiresAt = Infinity;
    if (!jwksUri) {
      const current = this.#current;
      if (current && now < current.jwksUriExpiresAt) {
        ({ jwksUri, jwksUriExpiresAt } = current);
      } else {
        const discovered = await discoverEndpoint(deps.fetch, this.issuer.issuer, "jwks_uri", this.issuer.jwks);
        jwksUri = discovered.url;
        jwksUriExpiresAt = now + documentLifetime(this.issuer.jwks, discovered.maxAge) * 1000;
        deps.log({ event: "jwks_discovered", issuer: this.issuer.issuer });
      }
    }
    const { body, maxAge } = await fetchJson(deps.fetch, jwksUri, this.issuer.jwks);
    const keys = await usableKeys(body, this.issuer, deps.log);
    return { keys, fetchedAt: now, expiresAt: now + documentLifetime(this.issuer.jwks, maxAge) * 1000, jwksUri, jwksUriExpiresAt };
  }


  /** Settled values only are shared between requests, so the names are cached, not a promise of them. */
  async #names(): Promise<{ set: string; attempt: string }> {
    this.#kvNames ??= await keySetKvNames(this.issuer);
    return this.#kvNames;
  }

  /** Adopts the KV copy when it is newer than memory. True when it did. Malformed entries are ignored. */
  async #readKv(deps: Deps, now: number): Promise<boolean> {
    this.#lastKvCheck = now;
    if (!deps.kv) return false;
    try {
      const stored = await deps.kv.get<StoredKeySet>((await this.#names()).set, "json");
      if (!stored || stored.v !== 2 || !Array.isArray(stored.keys) || typeof stored.jwks_uri !== "string") return false;
      if (typeof stored.fetched_at !== "number" || typeof stored.expires_at !== "number") return false;
      // Fetched in the future: no isolate wrote that (clocks agree within seconds), and adopting it would pin
      // it past max_age and shadow every genuine entry written after it.
      if (stored.fetched_at > now + 60_000) return false;
      if (stored.fetched_at <= (this.#current?.fetchedAt ?? -Infinity)) return false;
      // Lifetimes as this configuration allows: a writer with a longer max_age never extends them here.
      const latest = stored.fetched_at + this.issuer.jwks.max_age * 1000;
      const expiresAt = Math.min(stored.expires_at, latest);
      if (now >= expiresAt + this.issuer.jwks.max_stale * 1000) return false;
      // Configured jwks_uri changed since the entry was written: not this issuer's set any more.
      if (this.issuer.jwks_uri && stored.jwks_uri !== this.issuer.jwks_uri) return false;
      const keys = await usableKeys(stored, this.issuer, deps.log);
      const uriExpiresAt = Math.min(typeof stored.jwks_uri_expires_at === "number" ? stored.jwks_uri_expires_at : Infinity, latest);
      this.#current = {
        keys,
        fetchedAt: stored.fetched_at,
        expiresAt,
        jwksUri: stored.jwks_uri,
        jwksUriExpiresAt: this.issuer.jwks_uri ? Infinity : uriExpiresAt,
      };
      deps.log({ event: "jwks_kv_hit", issuer: this.issuer.issuer, fresh: now < expiresAt });
      return true;
    } catch {
      deps.log({ event: "jwks_kv_ignored", issuer: this.issuer.issuer, reason: "malformed" });
      return false;
    }
  }

  #writeKv(deps: Deps, set: KeySet): void {
    if (!deps.kv) return;
    const stored: StoredKeySet = {
      v: 2,
      keys: set.keys.map((key) => key.jwk),
      fetched_at: set.fetchedAt,
      expires_at: set.expiresAt,
      jwks_uri: set.jwksUri,
      jwks_uri_expires_at: Number.isFinite(set.jwksUriExpiresAt) ? set.jwksUriExpiresAt : null,
    };
    // Kept past expiry so that other isolates can still serve it stale while the issuer is down.
    const ttl = Math.max(KV_MIN_TTL, Math.ceil((set.expiresAt - set.fetchedAt) / 1000 + this.issuer.jwks.max_stale));
    this.#putLater(deps, deps.kv, "set", JSON.stringify(stored), ttl, () => deps.log({ event: "jwks_kv_write_failed", issuer: this.issuer.issuer }));
  }

  /**
   * Other isolates skip their own kid-miss fetch while a recent attempt is published: the end of that
   * attempt's cooldown, or undefined when there is none (KV is eventually consistent: best effort).
   */
  async #sharedCooldownEnd(deps: Deps, now: number): Promise<number | undefined> {
    if (!deps.kv) return undefined;
    try {
      const end = Number(await deps.kv.get((await this.#names()).attempt)) + this.issuer.jwks.refetch_cooldown * 1000;
      if (!Number.isFinite(end) || end <= now) return undefined;
      // Remembered, so that a flood of new kids during it costs no further KV reads (never past the cooldown).
      this.#sharedCooldownUntil = Math.min(end, now + this.issuer.jwks.refetch_cooldown * 1000);
      return end;
    } catch {
      return undefined;
    }
  }

  #publishAttempt(deps: Deps, now: number): void {
    if (deps.kv) this.#putLater(deps, deps.kv, "attempt", String(now), KV_MIN_TTL, () => undefined);
  }

  /** One of this issuer's KV entries written after the response; a failed write only costs the sharing. */
  #putLater(deps: Deps, kv: KVNamespace, entry: "set" | "attempt", value: string, ttl: number, onFailure: () => void): void {
    deps.waitUntil(this.#names().then((names) => kv.put(names[entry], value, { expirationTtl: ttl })).catch(onFailure));
  }
}

/** Seconds a fetched key set or metadata document is used: its max-age within [min_age, max_age], else default_age. */
export function documentLifetime(jwks: IssuerConfig["jwks"], maxAge: number | undefined): number {
  return maxAge === undefined ? jwks.default_age : Math.min(jwks.max_age, Math.max(jwks.min_age, maxAge));
}

/**
 * The KV names of an issuer's key set and of its last kid-miss attempt, by everything the stored set depends
 * on: a set fetched through a service binding is not the public URL's set, nor a discovered one a configured one's.
 */
export async function keySetKvNames(issuer: Pick<IssuerConfig, "issuer" | "jwks_uri" | "jwks_service">): Promise<{ set: string; attempt: string }> {
  const id = await sha256Hex(JSON.stringify([issuer.issuer, issuer.jwks_uri ?? "(discovered)", issuer.jwks_service ?? "(fetch)"]));
  return { set: `jwks:v2:${id}`, attempt: `jwks-attempt:v2:${id}` };
}

/** The usable keys of a JWKS document; a set with none is a failed fetch, never an empty replacement. */
async function usableKeys(document: unknown, config: IssuerConfig, log: LogFn): Promise<KeyRecord[]> {
  const issuer = config.issuer;
  const keys = (document as { keys?: unknown } | null)?.keys;
  if (!Array.isArray(keys)) throw new FetchJsonError("keys_not_array");
  const usable: KeyRecord[] = [];
  for (const candidate of keys.slice(0, 100)) {
    const jwk = candidate as JWK;
    const reason = typeof candidate === "object" && candidate !== null ? unusableReason(jwk) : "not_an_object";
    if (reason) {
      log({ event: "jwks_key_skipped", issuer, reason });
      continue;
    }
    try {
      usable.push(await toKeyRecord(jwk));
    } catch {
      log({ event: "jwks_key_skipped", issuer, reason: "malformed_key" });
    }
  }
  if (!usable.length) throw new FetchJsonError("no_usable_keys");
  return distinctKeys(usable, config, log);
}
