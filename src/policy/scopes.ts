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
