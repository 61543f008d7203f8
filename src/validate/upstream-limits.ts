import { BoundedMap } from "../lib/bounded-map";

/**
 * What a flood of unknown tokens may cost an upstream token-check endpoint, per isolate and issuer: a
 * token bucket of calls (`introspection.max_calls_per_minute`); a bounded memory of the tokens seen active
 * (by cache key, never the token), which keep being checked when the bucket is empty so good clients keep
 * working; and the upstream's own "slow down" (429, or 403 with rate-limit headers), honoured until its
 * time is up. The clock is always the caller's.
 */

/** Bounds on an upstream's requested wait, in seconds. */
const MIN_WAIT = 1;
const MAX_WAIT = 3_600;
/** When a rate-limit answer names no time (GitHub: "wait at least one minute"). */
const DEFAULT_WAIT = 60;

/** A token bucket holding up to `perMinute` calls, refilled continuously. */
export class CallBudget {
  #tokens: number;
  #updatedAt: number | undefined;

  constructor(private readonly perMinute: number) {
    this.#tokens = perMinute;
  }

  /** Takes one call: 0 when granted, else the whole seconds until one is available (at least 1). */
  take(now: number): number {
    if (this.#updatedAt !== undefined && now > this.#updatedAt) {
      this.#tokens = Math.min(this.perMinute, this.#tokens + ((now - this.#updatedAt) * this.perMinute) / 60_000);
    }
    this.#updatedAt = Math.max(now, this.#updatedAt ?? now);
    if (this.#tokens >= 1) {
      this.#tokens -= 1;
      return 0;
    }
    return Math.max(MIN_WAIT, Math.ceil(((1 - this.#tokens) * 60) / this.perMinute));
  }
}

/** A bounded set of keys: adding one again makes it the newest, and the least recently added go first. */
export class RecentKeys extends BoundedMap<string, true> {
  add(key: string): void {
    this.set(key, true);
  }
}

/**
 * Seconds the upstream asked us to wait, when its failed answer is a rate limit: 429, or 403 with
 * `Retry-After` or `X-RateLimit-Remaining: 0` (GitHub's primary and secondary limits). Undefined otherwise.
 * The wait comes from `Retry-After` (seconds or an HTTP date), else `X-RateLimit-Reset` (epoch seconds),
 * bounded to 1..3600 s.
 */
export function rateLimitWait(status: number, headers: Headers, now: number): number | undefined {
  const retryAfter = headers.get("retry-after");
  const exhausted = headers.get("x-ratelimit-remaining")?.trim() === "0";
  if (status !== 429 && !(status === 403 && (retryAfter !== null || exhausted))) return undefined;
  const wait = secondsUntil(retryAfter, now) ?? (exhausted ? resetIn(headers.get("x-ratelimit-reset"), now) : undefined) ?? DEFAULT_WAIT;
  return Math.min(MAX_WAIT, Math.max(MIN_WAIT, Math.ceil(wait)));
}

/** RFC 9110 10.2.3: delay-seconds or an HTTP date. */
function secondsUntil(value: string | null, now: number): number | undefined {
  if (value === null) return undefined;
  const text = value.trim();
  if (/^\d{1,10}$/.test(text)) return Number(text);
  const date = Date.parse(text);
  return Number.isFinite(date) ? (date - now) / 1000 : undefined;
}

function resetIn(value: string | null, now: number): number | undefined {
  const text = value?.trim() ?? "";
  return /^\d{1,12}$/.test(text) ? Number(text) - now / 1000 : undefined;
}
