import type { JWTPayload } from "jose";

/**
 * Claim paths: the names configuration uses for claims (`realm_access.roles`, `scopes_from`,
 * `required_claims`, `claim_headers`, route claim conditions), read the same way everywhere. A path is
 * segments joined by `.`; a segment is a plain name (letters, digits, `_ : $ -`) or, for names with other
 * characters (printable ASCII but `"`, `\\`, `[`, `]`) such as Auth0's namespaced claims, the name in brackets: `[https://acme.example/roles]`,
 * `[https://acme.example/app].tier`.
 */

const SEGMENT = String.raw`(?:[A-Za-z0-9_:$-]+|\[[\x20\x21\x23-\x5a\x5e-\x7e]+\])`;
/** The syntax, for configuration validation. */
export const CLAIM_PATH = new RegExp(`^${SEGMENT}(?:\\.${SEGMENT})*$`);

/** The claim names along a valid path (brackets removed). */
export function claimPathParts(path: string): string[] {
  // Most paths have no brackets: a plain split.
  if (!path.includes("[")) return path.split(".");
  return [...path.matchAll(/\[([^\]]+)\]|([^.[\]]+)/g)].map((match) => (match[1] ?? match[2])!);
}

/** Reads a claim path through own properties only (no `__proto__`/`constructor` traversal). */
export function claimAt(claims: JWTPayload, path: string): unknown {
  let current: unknown = claims;
  for (const part of claimPathParts(path)) {
    if (typeof current !== "object" || current === null || Array.isArray(current) || !Object.hasOwn(current, part)) {
      return undefined;
    }
    current = (current as Record<string, unknown>)[part];
  }
  return current;
}
