import type { JWTPayload } from "jose";
import type { IssuerConfig } from "../config/schema";
import { claimAt } from "../lib/claim-path";

/**
 * The token's granted scopes, merged from the issuer's `scopes_from` sources (default `scope`, the
 * RFC 8693/9068 space-delimited string, and `scp`, string or array as Entra and Okta send it; also e.g.
 * `permissions` or `realm_access.roles` with a prefix). Scope tokens match whole and case-sensitively
 * (RFC 6749 3.3): "admin" is not granted by "admin:read", "administrator" or "Admin".
 */
export function grantedScopes(claims: JWTPayload, sources: IssuerConfig["scopes_from"] = DEFAULT_SOURCES): Set<string> {
  const granted = new Set<string>();
  for (const { claim, prefix } of sources) {
    const source = claimAt(claims, claim);
    const values = typeof source === "string" ? source.split(" ") : Array.isArray(source) ? source : [];
    for (const value of values) {
      if (typeof value === "string" && value !== "" && !/[\s"\\]/.test(value)) granted.add(`${prefix ?? ""}${value}`);
    }
  }
  return granted;
}

const DEFAULT_SOURCES = [
  { claim: "scope", prefix: "" },
  { claim: "scp", prefix: "" },
];

/**
 * What a requirement asks of the token's scopes: a rule's `scopes` / `scopes_any` (and, with per-operation
 * MCP rules, an operation's). One shape, so challenges and `scopes_supported` read every requirement alike.
 */
export interface ScopeRequirement {
  /** All of these. */
  scopes: readonly string[];
  /** At least one of these (empty: no such condition). */
  scopes_any: readonly string[];
}

/**
 * The scopes a challenge names (`scope="..."` on 401 and 403, RFC 6750 section 3): all of `scopes`, then
 * every alternative of `scopes_any`, once each. A token granted this set passes the requirement, so a client
 * that requests what the challenge names gets in (MCP step-up); any one of the `scopes_any` would do.
 */
export function challengeScopes(requirement: ScopeRequirement): string[] {
  return [...new Set([...requirement.scopes, ...requirement.scopes_any])];
}

/** RFC 9728 `scopes_supported` computed from the rules: every scope any of `requirements` can ask for, first seen first. */
export function scopesSupported(requirements: Iterable<ScopeRequirement>): string[] {
  const supported = new Set<string>();
  for (const requirement of requirements) for (const scope of challengeScopes(requirement)) supported.add(scope);
  return [...supported];
}
