import type { JWTPayload } from "jose";
import type { RouteConfig } from "../config/schema";
import { GateError } from "../errors/errors";
import { claimAt } from "../lib/claim-path";
import { challengeScopes } from "./scopes";

/**
 * A matched rule's requirement, applied to the verified identity (or to its absence). Pure: the middleware
 * and `explain` call exactly this. Returns the refusal instead of throwing so report-only mode can log it.
 */

export interface Subject {
  scopes: ReadonlySet<string>;
  claims: JWTPayload;
}

export function authorize(rule: RouteConfig, subject: Subject | undefined): GateError | undefined {
  switch (rule.access) {
    case "deny":
      return new GateError("access_denied", "rule_denies");
    case "public":
    case "optional":
      return undefined;
    case "token":
      if (!subject) return new GateError("invalid_token", "token_missing");
      return requirementsOf(rule, subject);
  }
}

/** A scope refusal names every scope the rule needs (`challengeScopes`), not only the missing part. */
function requirementsOf(rule: RouteConfig, subject: Subject): GateError | undefined {
  if (!rule.scopes.every((scope) => subject.scopes.has(scope))) {
    return new GateError("insufficient_scope", "scope_missing", { scope: challengeScopes(rule) });
  }
  if (rule.scopes_any.length && !rule.scopes_any.some((scope) => subject.scopes.has(scope))) {
    return new GateError("insufficient_scope", "scope_missing_any", { scope: challengeScopes(rule) });
  }
  for (const condition of rule.claims) {
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
