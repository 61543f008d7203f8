import type { JWTPayload } from "jose";
import type { Algorithm } from "../config/schema";

/**
 * The verified-token cache: successful JWT verifications, per isolate, keyed by a SHA-256 of the token, so
 * a token seen again skips header, key and signature work. Only successes are stored; an entry ends at the
 * token's `exp` (plus the issuer's clock tolerance, exactly where verification would start failing) or
 * after `max_ttl`, whichever is first, and it is only used while what verified it is still current: the
 * issuer's key set still holds the key, or the HMAC secret is still the one it was verified with. Claims are
 * cached, never decisions: the caller checks the route's requirements on every request. Least recently used
 * entries go first.
 */

export interface CachedVerification {
  issuer: string;
  claims: JWTPayload;
  kid: string | undefined;
  alg: Algorithm;
  /** The verifying key's thumbprint, or the HMAC secret's fingerprint (see `VerifiedToken`). */
  thumbprint: string;
}

interface Entry extends CachedVerification {
  expiresAt: number;
}

export class VerifiedTokenCache {
  readonly #entries = new Map<string, Entry>();

  constructor(
    private readonly maxEntries: number,
    private readonly maxTtlMs: number,
  ) {}

  get(key: string, now: number): CachedVerification | undefined {
    const entry = this.#entries.get(key);
    if (!entry) return undefined;
    this.#entries.delete(key);
    if (now >= entry.expiresAt) return undefined;
    this.#entries.set(key, entry); // most recently used last
    return entry;
  }

  set(key: string, verified: CachedVerification, clockTolerance: number, now: number): void {
    const exp = typeof verified.claims.exp === "number" ? (verified.claims.exp + clockTolerance) * 1000 : now;
    const expiresAt = Math.min(exp, now + this.maxTtlMs);
    if (expiresAt <= now) return;
    if (this.#entries.size >= this.maxEntries) this.#entries.delete(this.#entries.keys().next().value!);
    this.#entries.set(key, { ...verified, expiresAt });
  }

  get size(): number {
    return this.#entries.size;
  }
}

/** The cache key: SHA-256 of the token, base64url; the token itself is never kept. */
export async function tokenKey(token: string): Promise<string> {
  const digest = new Uint8Array(await crypto.subtle.digest("SHA-256", new TextEncoder().encode(token)));
  let binary = "";
  for (const byte of digest) binary += String.fromCharCode(byte);
  return btoa(binary);
}
