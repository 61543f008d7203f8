import { GateError } from "../errors/errors";
import type { JWTPayload } from "jose";

/**
 * The token's granted scopes: `scope` (RFC 8693/9068 space-delimited string) merged with `scp` (string or
 * array, as Azure AD and Okta send it). Tokens match whole and case-sensitively (RFC 6749 3.3): "admin" is
 * not granted by "admin:read", "administrator" or "Admin".
 */
export function grantedScopes(claims: JWTPayload): Set<string> {
  const granted = new Set<string>();
  for (const source of [claims.scope, claims.scp]) {
    const values = typeof source === "string" ? source.split(" ") : Array.isArray(source) ? source : [];
    for (const value of values) if (typeof value === "string" && value !== "") granted.add(value);
  }
  return granted;
}

/** Throws 403 insufficient_scope naming every required scope (RFC 6750 3.1 `scope`). */
export function requireScopes(granted: ReadonlySet<string>, required: readonly string[]): void {
  if (required.every((scope) => granted.has(scope))) return;
  throw new GateError("insufficient_scope", "scope_missing", { scope: required });
}
