import type { JWK } from "jose";
import type { IssuerConfig } from "../config/schema";
import { GateError } from "../errors/errors";
import type { LogFn } from "../log";
import { toKeyRecord, unusableReason, type KeyRecord } from "./keys";

/**
 * One issuer's JSON Web Key Set, in two tiers: isolate memory, then Workers KV (shared by every isolate),
 * then the issuer's `jwks_uri`. Keys never leave their issuer: each issuer has its own cache and KV entry.
 *
 * Fetches are never shared between requests (workerd forbids awaiting another request's I/O); the
 * refetch cooldown is what bounds load on the IdP instead: at most one fetch per cooldown per isolate,
 * whether caused by expiry, an unknown `kid` or a failure.
 */

export interface KeySetDeps {
  now: () => number;
  fetch: typeof fetch;
  kv: KVNamespace | undefined;
  /** Schedules work after the response (KV writes). */
  waitUntil: (promise: Promise<unknown>) => void;
  log: LogFn;
}

interface KeySet {
  keys: KeyRecord[];
  fetchedAt: number;
  expiresAt: number;
}

interface StoredKeySet {
  v: 1;
  keys: JWK[];
  fetched_at: number;
  expires_at: number;
}

/** Served after expiry only while the issuer cannot be reached. */
const MAX_STALE_MS = 24 * 3600 * 1000;
const KV_MIN_TTL = 60;

export class KeySetCache {
  #current: KeySet | undefined;
  #lastAttempt = -Infinity;
  /** Set while some request of this isolate is fetching; others wait for its result instead of fetching. */
  #fetching = false;
  #kvName: string | undefined;

  constructor(private readonly issuer: IssuerConfig) {}

  /** The current key set, loading or refreshing it as needed. Throws 503 when no keys can be had. */
  async keys(deps: KeySetDeps): Promise<KeyRecord[]> {
    const now = deps.now();
    if (this.#current && now < this.#current.expiresAt) return this.#current.keys;
    const stored = await this.#readKv(deps);
    if (stored && now < stored.expiresAt) {
      this.#current = stored;
      return stored.keys;
    }
    this.#current ??= stored;
    return this.#refresh(deps, "expired");
  }

  /**
   * Called when a token names a `kid` we do not have. Another isolate may already have fetched the
   * rotated set into KV; otherwise one refetch per cooldown, then the set as it is.
   */
  async keysAfterMiss(deps: KeySetDeps, kid: string): Promise<KeyRecord[]> {
    const stored = await this.#readKv(deps);
    if (stored && stored.fetchedAt > (this.#current?.fetchedAt ?? -Infinity) && stored.expiresAt > deps.now()) {
      this.#current = stored;
      if (stored.keys.some((key) => key.kid === kid)) return stored.keys;
    }
    return this.#refresh(deps, "unknown_kid");
  }

  async #refresh(deps: KeySetDeps, cause: string): Promise<KeyRecord[]> {
    const cooldownMs = this.issuer.jwks.refetch_cooldown * 1000;
    if (this.#fetching) {
      await this.#awaitOtherFetch();
      return this.#usable(deps.now(), cooldownMs);
    }
    const now = deps.now();
    const wait = this.#lastAttempt + cooldownMs - now;
    if (wait > 0) {
      deps.log({ event: "jwks_cooldown_skip", issuer: this.issuer.issuer, reason: cause });
      return this.#usable(now, wait);
    }
    this.#lastAttempt = now;
    this.#fetching = true;
    try {
      const fetched = await this.#fetch(deps);
      this.#current = fetched;
      deps.log({ event: "jwks_fetch", issuer: this.issuer.issuer, reason: cause, keys: fetched.keys.length });
      this.#writeKv(deps, fetched);
      return fetched.keys;
    } catch (error) {
      const reason = error instanceof KeySetError ? error.reason : "network_error";
      deps.log({ event: "jwks_fetch_failed", issuer: this.issuer.issuer, reason });
      return this.#usable(now, cooldownMs);
    } finally {
      this.#fetching = false;
    }
  }

  /**
   * Waits for another request's fetch by polling shared state, never by awaiting its promise (workerd
   * forbids one request continuing on another's I/O). Bounded by the fetch timeout.
   */
  async #awaitOtherFetch(): Promise<void> {
    const step = 5;
    for (let waited = 0; this.#fetching && waited <= this.issuer.jwks.timeout_ms; waited += step) {
      await new Promise((resolve) => setTimeout(resolve, step));
    }
  }

  /** Last good keys within the stale bound, else 503 with a Retry-After of the time to the next attempt. */
  #usable(now: number, retryMs: number): KeyRecord[] {
    if (this.#current && now < this.#current.expiresAt + MAX_STALE_MS) return this.#current.keys;
    throw new GateError("temporarily_unavailable", "jwks_unavailable", { retryAfter: retryMs / 1000 });
  }

  async #fetch(deps: KeySetDeps): Promise<KeySet> {
    const { timeout_ms, max_bytes, max_age } = this.issuer.jwks;
    const response = await deps.fetch(this.issuer.jwks_uri, {
      redirect: "manual",
      signal: AbortSignal.timeout(timeout_ms),
      headers: { accept: "application/jwk-set+json, application/json" },
    });
    if (response.status !== 200) {
      await response.body?.cancel();
      throw new KeySetError(response.status >= 300 && response.status < 400 ? "redirect" : `status_${response.status}`);
    }
    const document = parseJson(await readCapped(response, max_bytes));
    const keys = await usableKeys(document, this.issuer.issuer, deps);
    const now = deps.now();
    return { keys, fetchedAt: now, expiresAt: now + max_age * 1000 };
  }

  /** Settled values only are shared between requests (see the class comment), so no promise is cached. */
  async #kvKey(): Promise<string> {
    this.#kvName ??= `jwks:v1:${await sha256Hex(`${this.issuer.issuer}\n${this.issuer.jwks_uri}`)}`;
    return this.#kvName;
  }

  async #readKv(deps: KeySetDeps): Promise<KeySet | undefined> {
    if (!deps.kv) return undefined;
    try {
      const stored = await deps.kv.get<StoredKeySet>(await this.#kvKey(), "json");
      if (!stored || stored.v !== 1 || !Array.isArray(stored.keys)) return undefined;
      if (typeof stored.fetched_at !== "number" || typeof stored.expires_at !== "number") return undefined;
      const keys = await usableKeys(stored, this.issuer.issuer, deps);
      return { keys, fetchedAt: stored.fetched_at, expiresAt: stored.expires_at };
    } catch {
      deps.log({ event: "jwks_kv_ignored", issuer: this.issuer.issuer, reason: "malformed" });
      return undefined;
    }
  }

  #writeKv(deps: KeySetDeps, set: KeySet): void {
    const kv = deps.kv;
    if (!kv) return;
    const stored: StoredKeySet = {
      v: 1,
      keys: set.keys.map((key) => key.jwk),
      fetched_at: set.fetchedAt,
      expires_at: set.expiresAt,
    };
    // Kept past expiry so other isolates can still serve it stale if the issuer goes down.
    const ttl = Math.max(KV_MIN_TTL, Math.ceil((set.expiresAt - set.fetchedAt + MAX_STALE_MS) / 1000));
    deps.waitUntil(
      this.#kvKey()
        .then((name) => kv.put(name, JSON.stringify(stored), { expirationTtl: ttl }))
        .catch(() => deps.log({ event: "jwks_kv_write_failed", issuer: this.issuer.issuer })),
    );
  }
}

class KeySetError extends Error {
  constructor(readonly reason: string) {
    super(reason);
  }
}

/** The usable keys of a JWKS document; a set with none is a failed fetch, never an empty replacement. */
async function usableKeys(document: unknown, issuer: string, deps: KeySetDeps): Promise<KeyRecord[]> {
  const keys = (document as { keys?: unknown } | null)?.keys;
  if (!Array.isArray(keys)) throw new KeySetError("keys_not_array");
  const usable: KeyRecord[] = [];
  for (const candidate of keys.slice(0, 100)) {
    const jwk = candidate as JWK;
    const reason = typeof candidate === "object" && candidate !== null ? unusableReason(jwk) : "not_an_object";
    if (reason) {
      deps.log({ event: "jwks_key_skipped", issuer, reason });
      continue;
    }
    try {
      usable.push(await toKeyRecord(jwk));
    } catch {
      deps.log({ event: "jwks_key_skipped", issuer, reason: "malformed_key" });
    }
  }
  if (!usable.length) throw new KeySetError("no_usable_keys");
  return usable;
}

function parseJson(text: string): unknown {
  try {
    return JSON.parse(text);
  } catch {
    throw new KeySetError("not_json");
  }
}

/** Reads at most `limit` bytes; a larger body is a failure, not a truncation. */
async function readCapped(response: Response, limit: number): Promise<string> {
  const declared = Number(response.headers.get("content-length"));
  if (declared > limit) {
    await response.body?.cancel();
    throw new KeySetError("too_large");
  }
  if (!response.body) return "";
  const reader = response.body.getReader();
  const chunks: Uint8Array[] = [];
  let size = 0;
  for (;;) {
    const { done, value } = await reader.read();
    if (done) break;
    size += value.byteLength;
    if (size > limit) {
      await reader.cancel();
      throw new KeySetError("too_large");
    }
    chunks.push(value);
  }
  const bytes = new Uint8Array(size);
  let offset = 0;
  for (const chunk of chunks) {
    bytes.set(chunk, offset);
    offset += chunk.byteLength;
  }
  return new TextDecoder().decode(bytes);
}

export async function sha256Hex(text: string): Promise<string> {
  const digest = await crypto.subtle.digest("SHA-256", new TextEncoder().encode(text));
  return [...new Uint8Array(digest)].map((byte) => byte.toString(16).padStart(2, "0")).join("");
}
