import type { JWTPayload } from "jose";
import type { RouteConfig } from "../config/schema";
import { GateError } from "../errors/errors";
import { claimAt } from "../lib/claim-path";
import { challengeScopes, type ScopeRequirement } from "./scopes";

/**
 * A matched rule's requirement, applied to the verified identity (or to its absence). Pure: the middleware
 * and `explain` call exactly this. Returns the refusal instead of throwing so report-only mode can log it.
 */

export interface Subject {
  scopes: ReadonlySet<string>;
  claims: JWTPayload;
}

/** What a rule or an MCP operation can require of a token. */
export type Requirements = Pick<RouteConfig, "scopes" | "scopes_any" | "claims">;

/**
 * `extra`: an MCP operation's requirements, on top of the rule's: the scopes of both are all required (one
 * refusal names them all), each `scopes_any` list must be met, every claim condition must hold.
 */
export function authorize(rule: RouteConfig, subject: Subject | undefined, extra?: Requirements): GateError | undefined {
  switch (rule.access) {
    case "deny":
      return new GateError("access_denied", "rule_denies");
    case "public":
    case "optional":
      return undefined;
    case "token":
      if (!subject) return new GateError("invalid_token", "token_missing");
      return requirementsOf(rule, extra, subject);
  }
}

/**
 * What a rule and an MCP operation on it ask of the token's scopes together, as one scope requirement: what
 * a challenge names (every scope either needs) and what `scopes_supported` lists.
 */
export function combinedRequirement(rule: Requirements, extra?: Requirements): ScopeRequirement {
  return extra ? { scopes: [...new Set([...rule.scopes, ...extra.scopes])], scopes_any: [...rule.scopes_any, ...extra.scopes_any] } : rule;
}

/**
 * The rule's (and operation's) requirements met by the subject, each `scopes_any` list on its own. A scope
 * refusal names every scope both need (`challengeScopes`), not only the missing part.
 */
function requirementsOf(rule: Requirements, extra: Requirements | undefined, subject: Subject): GateError | undefined {
  const scope = combinedRequirement(rule, extra);
  if (!scope.scopes.every((name) => subject.scopes.has(name))) {
    return new GateError("insufficient_scope", "scope_missing", { scope: challengeScopes(scope) });
  }
  for (const any of extra ? [rule.scopes_any, extra.scopes_any] : [rule.scopes_any]) {
    if (any.length && !any.some((name) => subject.scopes.has(name))) {
      return new GateError("insufficient_scope", "scope_missing_any", { scope: challengeScopes(scope) });
    }
  }
  for (const condition of extra ? [...rule.claims, ...extra.claims] : rule.claims) {
    if (!conditionHolds(claimAt(subject.claims, condition.claim), condition)) {
      return new GateError("access_denied", "claim_condition_failed");
    }
  }
  return undefined;
}

type Condition = RouteConfig["claims"][number];

function conditionHolds(value: unknown, condition: Condition): boolean {
  if (condition.equals !== undefined) return value === condition.equals;
  if (condition.one_of !== undefined) return condition.one_of.some((candidate) => candidate === value);
  if (condition.contains !== undefined) {
    if (Array.isArray(value)) return value.some((item) => item === condition.contains);
    return typeof value === "string" && typeof condition.contains === "string" && value.split(" ").includes(condition.contains);
  }
  return false;
}
