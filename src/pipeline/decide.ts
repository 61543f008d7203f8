import type { IssuerConfig, ResolvedConfig } from "../config/schema";
import { GateError } from "../errors/errors";
import type { McpMessage } from "../extract/mcp";
import { compileOperations, matchOperation as matchListed, operationLabel, type CompiledOperation } from "../policy/mcp";
import { pathPolicy, type PathPolicy } from "../policy/path";
import { authorize, type Requirements, type Subject } from "../policy/requirements";
import { compileRoutes, matchRoute, type CompiledRoute, type RouteRequest } from "../policy/routes";

/**
 * THE decision: which rule applies and whether it lets the request in. The gate and explain both decide
 * here and nowhere else: the rule match (for a forwarded CORS preflight, the rule for the announced
 * method), on an MCP route the operation of the JSON-RPC message (`matchOperation`), then, once the token
 * (if any) is verified, "no token on a token rule" (401), the rule's requirements with the operation's,
 * and report-only relaxation (by the rule or the token's issuer). Pure: no I/O.
 */

/** The route rules compiled with the path policy they are matched under. */
export interface Rules {
  routes: readonly CompiledRoute[];
  paths: PathPolicy;
  /** The MCP operations of each route with `mcp`, by route index, in precedence order. */
  operations: ReadonlyMap<number, readonly CompiledOperation[]>;
}

export function compileRules(config: ResolvedConfig): Rules {
  // One path policy for canonicalization and matching.
  const paths = pathPolicy(config.paths);
  const operations = new Map(config.routes.flatMap((route, index) => (route.mcp ? [[index, compileOperations(route.mcp)] as const] : [])));
  return { routes: compileRoutes(config.routes, paths), paths, operations };
}

/** The MCP operation's part in the decision: what it adds to the rule's requirements, or its refusal. */
export interface OperationMatch {
  /** `tools/call admin_reset`, `tools/list`, `response`; absent for a request carrying no message. */
  label?: string;
  requirements?: Requirements;
  refusal?: GateError;
}

/**
 * On a route with `mcp` (`message` read by extract/mcp.ts): a request or notification is allowed only by
 * the operation listed for it; a client-sent response only with `allow_responses`; a request carrying no
 * message (GET, HEAD, DELETE, OPTIONS without a body) by the rule alone. Undefined on other routes.
 */
export function matchOperation(rules: Rules, route: CompiledRoute, message: McpMessage | undefined): OperationMatch | undefined {
  if (!message || !route.rule.mcp) return undefined;
  switch (message.kind) {
    case "none":
      return {};
    case "response":
      return route.rule.mcp.allow_responses ? { label: "response" } : { label: "response", refusal: new GateError("access_denied", "mcp_response_not_allowed") };
    default: {
      const label = operationLabel(message);
      const listed = matchListed(rules.operations.get(route.index) ?? [], message);
      return listed ? { label, requirements: listed.rule } : { label, refusal: new GateError("access_denied", "mcp_operation_not_listed") };
    }
  }
}

export interface Decision {
  outcome: "allow" | "allow_anonymous" | "allow_preflight" | "deny";
  /** 200 when forwarded, else the refusal's status. */
  status: number;
  /** `requirements_met`, `anonymous_allowed`, `preflight_allowed`, `report_only`, or the refusal's reason. */
  reason: string;
  /** The matched rule's name (absent when none applies). */
  rule?: string;
  /** Forwarded only because the rule or the issuer is report-only; `would` is the refusal it stands for. */
  report_only?: true;
  would?: { status: number; reason: string };
  /** The refusal to answer with; absent on a deny without a token (a bare challenge, RFC 6750 3.1). */
  refusal?: GateError;
}

/** The most specific rule for the request; none: 403 (unmatched requests are denied). */
export function matchRule(rules: Rules, request: RouteRequest): CompiledRoute {
  const route = matchRoute(rules.routes, request, rules.paths);
  if (!route) throw new GateError("access_denied", "no_matching_rule");
  return route;
}

/**
 * A forwarded CORS preflight (request.ts `corsPreflight`): allowed without a token by the rule for the
 * method it announces, unless there is none or it denies.
 */
export function decidePreflight(rules: Rules, request: RouteRequest, announced: string): Decision {
  const route = matchRoute(rules.routes, { method: announced, host: request.host, path: request.path }, rules.paths);
  if (!route || route.rule.access === "deny") return refused(new GateError("access_denied", "no_matching_rule"));
  return { outcome: "allow_preflight", status: 200, reason: "preflight_allowed", rule: route.name };
}

/**
 * The decision for the matched rule, given the verified identity (undefined: no token was presented), the
 * issuer that verified it and, on an MCP route, the operation (`matchOperation`).
 */
export function decide(route: CompiledRoute, subject: Subject | undefined, issuer: IssuerConfig | undefined, operation?: OperationMatch): Decision {
  const { rule, name } = route;
  if (!subject && rule.access === "token") return { outcome: "deny", status: 401, reason: "token_missing", rule: name };
  const refusal = operation?.refusal ?? authorize(rule, subject, operation?.requirements);
  if (!refusal) return subject ? { outcome: "allow", status: 200, reason: "requirements_met", rule: name } : { outcome: "allow_anonymous", status: 200, reason: "anonymous_allowed", rule: name };
  // Report-only relaxes a rule's requirements, never authentication: the token was verified before this.
  if (rule.access === "token" && subject && (rule.report_only || issuer?.report_only)) {
    return { outcome: "allow", status: 200, reason: "report_only", rule: name, report_only: true, would: { status: refusal.status, reason: refusal.reason } };
  }
  return refused(refusal, name);
}

function refused(refusal: GateError, rule?: string): Decision {
  return { outcome: "deny", status: refusal.status, reason: refusal.reason, ...(rule === undefined ? {} : { rule }), refusal };
}
