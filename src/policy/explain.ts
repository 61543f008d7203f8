import type { JWTPayload } from "jose";
import type { ResolvedConfig } from "../config/schema";
import { GateError } from "../errors/errors";
import { canonicalPath, pathPolicy } from "./path";
import { authorize } from "./requirements";
import { compileRoutes, matchRoute, normalizeHost } from "./routes";
import { grantedScopes } from "./scopes";

/**
 * What the gate would decide for a request, step by step, without sending anything: the canonical path,
 * the matched rule, its requirement and the decision with its reason. Operators run it before deploying
 * (`npm run explain`); tests use it. It calls the same functions as the gate. Claims, when given, are taken
 * as already verified: explain checks policy, not tokens.
 */

export interface ExplainRequest {
  method: string;
  /** Absolute URL, or a path (host `localhost`). */
  url: string;
  /** The token's claims (unverified, from `--token`), or undefined for a request without a token. */
  claims?: JWTPayload;
}

export interface Explanation {
  method: string;
  host: string;
  path?: string;
  rule?: string;
  requirement?: string;
  decision: "allow" | "deny";
  status?: number;
  reason: string;
  report_only?: boolean;
  scopes?: string[];
}

export function explain(config: ResolvedConfig, input: ExplainRequest): Explanation {
  const url = new URL(input.url, "https://localhost");
  const method = input.method.toUpperCase();
  const host = normalizeHost(url.host, url.protocol);
  const base = { method, host };
  const paths = pathPolicy(config.paths); // the gate's own options, from the same function
  let path: string;
  try {
    path = canonicalPath(url.pathname, paths);
  } catch (error) {
    return refusal(base, error);
  }
  const route = matchRoute(compileRoutes(config.routes, paths), { method, host, path }, paths);
  if (!route) return { ...base, path, decision: "deny", status: 403, reason: "no_matching_rule" };
  const at = { ...base, path, rule: route.name, requirement: describe(route.rule) };

  let subject: { issuer: string; scopes: Set<string>; claims: JWTPayload } | undefined;
  if (input.claims) {
    const issuer = config.issuers.find((candidate) => candidate.issuer === input.claims!.iss);
    if (!issuer) return { ...at, decision: "deny", status: 401, reason: "issuer_unknown" };
    subject = { issuer: issuer.issuer, scopes: grantedScopes(input.claims, issuer.scopes_from), claims: input.claims };
  } else if (route.rule.access === "token") {
    return { ...at, decision: "deny", status: 401, reason: "token_missing" };
  }
  const scopes = subject ? { scopes: [...subject.scopes] } : {};
  const failure = authorize(route.rule, subject);
  if (!failure) return { ...at, ...scopes, decision: "allow", reason: subject ? "requirements_met" : "anonymous_allowed" };
  const reportOnly = route.rule.access === "token" && subject && (route.rule.report_only || config.issuers.find((i) => i.issuer === subject.issuer)?.report_only);
  if (reportOnly) return { ...at, ...scopes, decision: "allow", status: failure.status, reason: failure.reason, report_only: true };
  return { ...at, ...scopes, decision: "deny", status: failure.status, reason: failure.reason };
}

function refusal(base: { method: string; host: string }, error: unknown): Explanation {
  if (!(error instanceof GateError)) throw error;
  return { ...base, decision: "deny", status: error.status, reason: error.reason };
}

/** The rule's requirement in words. */
export function describe(rule: ResolvedConfig["routes"][number]): string {
  if (rule.access !== "token") return rule.access;
  const parts = ["valid token"];
  if (rule.scopes.length) parts.push(`all of scopes [${rule.scopes.join(" ")}]`);
  if (rule.scopes_any.length) parts.push(`any of scopes [${rule.scopes_any.join(" ")}]`);
  for (const c of rule.claims) {
    const [op, value] = c.equals !== undefined ? ["=", c.equals] : c.one_of !== undefined ? ["in", c.one_of] : ["contains", c.contains];
    parts.push(`claim ${c.claim} ${op} ${JSON.stringify(value)}`);
  }
  return parts.join(", ") + (rule.report_only ? " (report-only)" : "");
}
