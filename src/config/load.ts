import * as v from "valibot";
import { reservedHeaderReason } from "../forward/headers";
import { pathPolicy } from "../policy/path";
import { compileRoutes, findAmbiguities, RoutePatternError } from "../policy/routes";
import { applyPreset } from "./presets";
import { ConfigSchema, HMAC_ALGORITHMS, isAllowedUrl, type ResolvedConfig } from "./schema";

/** One configuration problem, named by its dotted field path. */
export interface ConfigIssue {
  field: string;
  message: string;
}

export type ConfigResult = { ok: true; config: ResolvedConfig } | { ok: false; issues: ConfigIssue[] };

/**
 * Validates raw configuration (an object from `[vars]`, or its JSON text) and applies defaults.
 * Pure: no I/O, so `npm run check-config`, the Worker and tests share it.
 */
export function parseConfig(raw: unknown): ConfigResult {
  let input = raw;
  if (typeof raw === "string") {
    try {
      input = JSON.parse(raw);
    } catch {
      return { ok: false, issues: [{ field: "(root)", message: "is not valid JSON" }] };
    }
  }
  if (input === undefined || input === null) {
    return { ok: false, issues: [{ field: "(root)", message: "is missing" }] };
  }
  const prepared = withPresets(input);
  if (prepared.issues.length) return { ok: false, issues: prepared.issues };
  const parsed = v.safeParse(ConfigSchema, prepared.input);
  if (!parsed.success) {
    // One message per field: the first (later checks of a failed field only repeat it).
    const byField = new Map<string, string>();
    for (const issue of parsed.issues) {
      const field = v.getDotPath(issue) ?? "(root)";
      if (!byField.has(field)) byField.set(field, plainMessage(issue));
    }
    return { ok: false, issues: [...byField].map(([field, message]) => ({ field, message })) };
  }
  const issues = crossFieldIssues(parsed.output);
  return issues.length ? { ok: false, issues } : { ok: true, config: parsed.output };
}

/** Fills issuer presets in; an Amazon issuer also admits `|` in tokens (Amazon's tokens contain it). */
function withPresets(input: unknown): { input: unknown; issues: ConfigIssue[] } {
  if (typeof input !== "object" || input === null || !Array.isArray((input as { issuers?: unknown }).issuers)) return { input, issues: [] };
  const raw = input as { issuers: unknown[]; token?: unknown };
  const issues: ConfigIssue[] = [];
  const issuers = raw.issuers.map((issuer, i) => {
    const applied = applyPreset(issuer);
    if (applied.error) issues.push({ field: `issuers.${i}.preset`, message: applied.error });
    return applied.issuer;
  });
  const amazon = issuers.some((issuer) => (issuer as { preset?: unknown } | null)?.preset === "amazon");
  const token = typeof raw.token === "object" && raw.token !== null ? (raw.token as Record<string, unknown>) : {};
  const withToken = amazon && token.extra_characters === undefined ? { token: { ...token, extra_characters: "|" } } : {};
  return { input: { ...raw, issuers, ...withToken }, issues };
}

/** Valibot's wording for the two commonest mistakes, said plainly. */
function plainMessage(issue: v.BaseIssue<unknown>): string {
  if (issue.expected === "never") return "is not a known field (check the spelling against the README)";
  if (issue.received === "undefined" && issue.expected?.startsWith('"')) return "is required";
  return issue.message;
}

/** Rules a field-by-field schema cannot express. */
function crossFieldIssues(config: ResolvedConfig): ConfigIssue[] {
  const issues: ConfigIssue[] = [];
  const seen = new Set<string>();
  config.issuers.forEach((issuer, i) => {
    const at = `issuers.${i}`;
    if (seen.has(issuer.issuer)) issues.push({ field: `${at}.issuer`, message: "is configured twice" });
    seen.add(issuer.issuer);
    const usesHmac = issuer.algorithms.some((alg) => (HMAC_ALGORITHMS as readonly string[]).includes(alg));
    if (usesHmac && !issuer.hmac_secret) {
      issues.push({ field: `${at}.hmac_secret`, message: "is required when algorithms lists an HS algorithm" });
    }
    if (!usesHmac && issuer.hmac_secret) {
      issues.push({ field: `${at}.hmac_secret`, message: "is set but algorithms lists no HS algorithm" });
    }
    const { min_age, max_age, default_age, refresh_ahead, refetch_cooldown, max_backoff } = issuer.jwks;
    if (min_age > max_age) issues.push({ field: `${at}.jwks.min_age`, message: "must not exceed jwks.max_age" });
    if (default_age < min_age || default_age > max_age) {
      issues.push({ field: `${at}.jwks.default_age`, message: "must lie between jwks.min_age and jwks.max_age" });
    }
    if (refresh_ahead >= min_age) issues.push({ field: `${at}.jwks.refresh_ahead`, message: "must be less than jwks.min_age" });
    if (max_backoff < refetch_cooldown) {
      issues.push({ field: `${at}.jwks.max_backoff`, message: "must not be less than jwks.refetch_cooldown" });
    }
    const jwtCapable = !issuer.introspection || issuer.introspection.flavor === "rfc7662";
    if (jwtCapable && !issuer.jwks_uri && !issuer.keys && !issuer.issuer.includes("{tenantid}") && !isAllowedUrl(issuer.issuer)) {
      issues.push({ field: `${at}.jwks_uri`, message: "is required unless issuer is an https URL to discover it from" });
    }
  });
  const catchAll = config.issuers
    .map((issuer, i) => [issuer, i] as const)
    .filter(([issuer]) => issuer.introspection?.opaque_tokens && !issuer.introspection.token_prefixes);
  for (const [, i] of catchAll.slice(1)) {
    issues.push({
      field: `issuers.${i}.introspection.opaque_tokens`,
      message: `only one issuer may take all opaque tokens (issuers.${catchAll[0]![1]} does): set it to false or give token_prefixes`,
    });
  }
  config.issuers.forEach((issuer, i) => {
    const at = `issuers.${i}`;
    const flavor = issuer.introspection?.flavor;
    if (issuer.introspection && (flavor === "rfc7662" || flavor === "github")) {
      if (!issuer.introspection.client_id) issues.push({ field: `${at}.introspection.client_id`, message: `is required for ${flavor}` });
      if (!issuer.introspection.client_secret) issues.push({ field: `${at}.introspection.client_secret`, message: `is required for ${flavor}` });
    }
    if (issuer.introspection && flavor !== "rfc7662" && !issuer.introspection.endpoint) {
      issues.push({ field: `${at}.introspection.endpoint`, message: `is required for ${flavor} (use the ${flavor} preset)` });
    }
    if (issuer.keys && issuer.jwks_uri) issues.push({ field: `${at}.keys`, message: "cannot be combined with jwks_uri" });
    const templated = issuer.issuer.includes("{tenantid}");
    if (templated && !issuer.tenants) issues.push({ field: `${at}.tenants`, message: 'is required when issuer contains {tenantid} (list tenant GUIDs, or ["*"])' });
    if (!templated && issuer.tenants) issues.push({ field: `${at}.tenants`, message: "applies only to an issuer containing {tenantid}" });
    if (templated && !issuer.jwks_uri && !issuer.keys) issues.push({ field: `${at}.jwks_uri`, message: "is required when issuer contains {tenantid}" });
  });
  config.issuers.forEach((issuer, i) => {
    if (issuer.introspection && !issuer.introspection.endpoint && !isAllowedUrl(issuer.issuer)) {
      issues.push({ field: `issuers.${i}.introspection.endpoint`, message: "is required unless issuer is an https URL to discover it from" });
    }
  });
  config.routes.forEach((route, i) => {
    if (route.introspect && config.issuers.some((issuer) => !issuer.introspection)) {
      issues.push({ field: `routes.${i}.introspect`, message: "needs introspection configured on every issuer" });
    }
  });
  const prefix = config.forward.header_prefix;
  const builtIn = new Set(["sub", "client-id", "scope", "issuer"].map((name) => prefix + name));
  for (const header of Object.keys(config.forward.claim_headers)) {
    const field = `forward.claim_headers.${header}`;
    if (!header.startsWith(prefix) || header === prefix) {
      issues.push({ field, message: `must start with the header prefix "${prefix}" so client copies are always stripped` });
    } else if (builtIn.has(header)) {
      issues.push({ field, message: "is a built-in claim header" });
    }
  }
  issues.push(...ownHeaderIssues(config.forward));
  config.routes.forEach((route, i) => {
    if (route.access !== "token") {
      for (const field of ["scopes", "scopes_any", "claims"] as const) {
        if (route[field].length) issues.push({ field: `routes.${i}.${field}`, message: `applies only to access = "token" rules` });
      }
      if (route.report_only) issues.push({ field: `routes.${i}.report_only`, message: `applies only to access = "token" rules` });
    }
    route.claims.forEach((condition, j) => {
      const operators = [condition.equals, condition.one_of, condition.contains].filter((op) => op !== undefined).length;
      if (operators !== 1) issues.push({ field: `routes.${i}.claims.${j}`, message: "must have exactly one of equals, one_of, contains" });
    });
  });
  try {
    // With the gate's own path policy: a literal that policy always refuses or rewrites can never match.
    const compiled = compileRoutes(config.routes, pathPolicy(config.paths));
    for (const [first, second] of findAmbiguities(compiled)) {
      issues.push({
        field: `routes.${second.index}`,
        message: `can match the same requests as routes.${first.index} with equal precedence; make one more specific or merge them`,
      });
    }
  } catch (error) {
    if (!(error instanceof RoutePatternError)) throw error;
    issues.push({ field: `routes.${error.index}.${error.field}`, message: error.message });
  }
  return issues;
}

/**
 * The headers the gate sets itself (assertion, shared secret) must be its own: inside `header_prefix` the
 * origin would take them for identity claims (and the origin verifier, which requires the identity headers
 * to be exactly those the assertion lists, would refuse every request), the same name twice would leave one
 * value overwriting the other, and a credentials, hop-by-hop or gate-controlled header would be lost,
 * overwritten or misread on the way.
 */
function ownHeaderIssues(forward: ResolvedConfig["forward"]): ConfigIssue[] {
  const issues: ConfigIssue[] = [];
  const own = [
    ["forward.assertion.header", forward.assertion?.header],
    ["forward.shared_secret.header", forward.shared_secret?.header],
  ] as const;
  for (const [field, header] of own) {
    if (header === undefined) continue;
    const reserved = reservedHeaderReason(header);
    if (header.startsWith(forward.header_prefix)) {
      issues.push({ field, message: `must not start with the identity header prefix "${forward.header_prefix}"` });
    } else if (reserved) {
      issues.push({ field, message: reserved });
    }
  }
  if (forward.assertion && forward.assertion.header === forward.shared_secret?.header) {
    issues.push({ field: "forward.shared_secret.header", message: "must differ from forward.assertion.header" });
  }
  return issues;
}

/** One line per issue, for logs and the CLI. Never includes values, only field names. */
export const formatIssues = (issues: readonly ConfigIssue[]) => issues.map((i) => `${i.field}: ${i.message}`);
