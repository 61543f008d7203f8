import type { JWTPayload } from "jose";

/**
 * Claim paths: the dotted names configuration uses for claims (`realm_access.roles`, `scopes_from`,
 * `required_claims`, `claim_headers`, route claim conditions), read the same way everywhere.
 */

/** Reads a dotted claim path through own properties only (no `__proto__`/`constructor` traversal). */
export function claimAt(claims: JWTPayload, path: string): unknown {
  let current: unknown = claims;
  for (const part of path.split(".")) {
    if (typeof current !== "object" || current === null || Array.isArray(current) || !Object.hasOwn(current, part)) {
      return undefined;
    }
    current = (current as Record<string, unknown>)[part];
  }
  return current;
}
