import { BoundedMap } from "../lib/bounded-map";
import { sha256Base64 } from "../lib/digest";
import type { VerifiedToken } from "./jwt";

/**
 * The verified-token cache: successful JWT verifications, per isolate, keyed by a SHA-256 of the token, so
 * a token seen again skips header, key and signature work. Only successes are stored; an entry ends at the
 * token's `exp` (plus the issuer's clock tolerance, exactly where verification would start failing) or
 * after `max_ttl`, whichever is first, and it is only used while what verified it is still current: the
 * key verification would choose now for the token's `alg` and `kid` is still that key, or the HMAC secret is
 * still the one it was verified with. Claims are
 * cached, never decisions: the caller checks the route's requirements on every request. Least recently used
 * entries go first.
 */

/** What a hit gives back: the verification as `JwtVerifier.verify` returned it. */
export type CachedVerification = VerifiedToken;

interface Entry extends CachedVerification {
  expiresAt: number;
}

export class VerifiedTokenCache {
  readonly #entries: BoundedMap<string, Entry>;

  constructor(
    maxEntries: number,
    private readonly maxTtlMs: number,
  ) {
    this.#entries = new BoundedMap(maxEntries);
  }

  get(key: string, now: number): CachedVerification | undefined {
    const entry = this.#entries.get(key);
    if (entry && now >= entry.expiresAt) {
      this.#entries.delete(key);
      return undefined;
    }
    return entry;
  }

  set(key: string, verified: CachedVerification, clockTolerance: number, now: number): void {
    const exp = typeof verified.claims.exp === "number" ? (verified.claims.exp + clockTolerance) * 1000 : now;
    const expiresAt = Math.min(exp, now + this.maxTtlMs);
    if (expiresAt <= now) return;
    this.#entries.set(key, { ...verified, expiresAt });
  }

  get size(): number {
    return this.#entries.size;
  }
}

/** The cache key: SHA-256 of the token (padded base64, memory only); the token itself is never kept. */
export const tokenKey: (token: string) => Promise<string> = sha256Base64;
