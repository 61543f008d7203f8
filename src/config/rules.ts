import type * as v from "valibot";
import { BUILT_IN_HEADERS, headerPrefixConflict, reservedHeaderReason } from "../forward/headers";
import { isAllowedUrl } from "../lib/url";
import { compileOperations, operationTies, unmatchableName } from "../policy/mcp";
import { canonicalPath, pathPolicy, type PathPolicy } from "../policy/path";
import { compileRoutes, findAmbiguities, headBesideGet, RoutePatternError } from "../policy/routes";
import { HMAC_ALGORITHMS, METADATA_PREFIX, protectedResourceList, type ConfigSchema, type IssuerConfig, type ResolvedConfig, type RouteConfig } from "./schema";

/**
 * Cross-field rules: everything a field-by-field schema cannot say, all of it here, judged by
 * `crossFieldIssues` after the schema (schema.ts) has checked each field. Every rule names the field to
 * change. When a rule is judged follows from what it reads:
 * - `FIELD_RULES` read a few fields of one issuer and are judged for each issuer whose fields they read
 *   parsed, even when other fields did not, so that one run names as many bad fields as it can (valibot's
 *   partial-check rule, applied per issuer);
 * - `CONFIG_RULES` read the configuration as a whole and are judged only when every field passed, in this
 *   order (the order of the issues reported).
 */

/** One configuration problem, named by its dotted field path. */
export interface ConfigIssue {
  field: string;
  message: string;
}

/** `at`: the issuer's field path (`issuers.2`). */
type IssuerRule = (issuer: IssuerConfig, at: string, config: ResolvedConfig) => readonly ConfigIssue[];
type RouteRule = (route: RouteConfig, at: string) => readonly ConfigIssue[];
type ConfigRule = (config: ResolvedConfig) => readonly ConfigIssue[];

const issue = (field: string, message: string): readonly ConfigIssue[] => [{ field, message }];
const none: readonly ConfigIssue[] = Object.freeze([]);

// Every issuer needs audiences, except GitHub's token check (its tokens have none; the app check binds them).
const audiencesListed: IssuerRule = (issuer, at) =>
  issuer.audiences.length > 0 || issuer.introspection?.flavor === "github" ? none : issue(`${at}.audiences`, "must list at least one audience");

/** `reads`: paths inside the issuer. */
const FIELD_RULES: { reads: readonly (readonly string[])[]; rule: IssuerRule }[] = [
  { reads: [["audiences"], ["introspection", "flavor"]], rule: audiencesListed },
];

/** The second and later issuers of one `issuer` (each parsed issuer is its own object, so `indexOf` is its place). */
const uniqueIssuer: IssuerRule = (issuer, at, config) =>
  config.issuers.findIndex((other) => other.issuer === issuer.issuer) < config.issuers.indexOf(issuer) ? issue(`${at}.issuer`, "is configured twice") : none;

const hmacSecretMatchesAlgorithms: IssuerRule = (issuer, at) => {
  const usesHmac = issuer.algorithms.some((alg) => (HMAC_ALGORITHMS as readonly string[]).includes(alg));
  if (usesHmac && !issuer.hmac_secret) return issue(`${at}.hmac_secret`, "is required when algorithms lists an HS algorithm");
  if (!usesHmac && issuer.hmac_secret) return issue(`${at}.hmac_secret`, "is set but algorithms lists no HS algorithm");
  return none;
};

const jwksTimesOrdered: IssuerRule = (issuer, at) => {
  const { min_age, max_age, default_age, refresh_ahead, refetch_cooldown, max_backoff } = issuer.jwks;
  return [
    ...(min_age > max_age ? issue(`${at}.jwks.min_age`, "must not exceed jwks.max_age") : none),
    ...(default_age < min_age || default_age > max_age ? issue(`${at}.jwks.default_age`, "must lie between jwks.min_age and jwks.max_age") : none),
    ...(refresh_ahead >= min_age ? issue(`${at}.jwks.refresh_ahead`, "must be less than jwks.min_age") : none),
    ...(max_backoff < refetch_cooldown ? issue(`${at}.jwks.max_backoff`, "must not be less than jwks.refetch_cooldown") : none),
  ];
};

const templated = (issuer: IssuerConfig) => issuer.issuer.includes("{tenantid}");

const jwksUriDiscoverable: IssuerRule = (issuer, at) => {
  const jwtCapable = !issuer.introspection || issuer.introspection.flavor === "rfc7662";
  return jwtCapable && !issuer.jwks_uri && !issuer.keys && !templated(issuer) && !isAllowedUrl(issuer.issuer)
    ? issue(`${at}.jwks_uri`, "is required unless issuer is an https URL to discover it from")
    : none;
};

const oneCatchAllOpaqueIssuer: ConfigRule = (config) => {
  const catchAll = config.issuers
    .map((issuer, i) => [issuer, i] as const)
    .filter(([issuer]) => issuer.introspection?.opaque_tokens && !issuer.introspection.token_prefixes);
  return catchAll.slice(1).map(([, i]) => ({
    field: `issuers.${i}.introspection.opaque_tokens`,
    message: `only one issuer may take all opaque tokens (issuers.${catchAll[0]![1]} does): set it to false or give token_prefixes`,
  }));
};

const introspectionClient: IssuerRule = (issuer, at) => {
  const flavor = issuer.introspection?.flavor;
  if (!issuer.introspection || (flavor !== "rfc7662" && flavor !== "github")) return none;
  return [
    ...(issuer.introspection.client_id ? none : issue(`${at}.introspection.client_id`, `is required for ${flavor}`)),
    ...(issuer.introspection.client_secret ? none : issue(`${at}.introspection.client_secret`, `is required for ${flavor}`)),
  ];
};

const providerEndpoint: IssuerRule = (issuer, at) => {
  const flavor = issuer.introspection?.flavor;
  return issuer.introspection && flavor !== "rfc7662" && !issuer.introspection.endpoint
    ? issue(`${at}.introspection.endpoint`, `is required for ${flavor} (use the ${flavor} preset)`)
    : none;
};

const keysOrJwksUri: IssuerRule = (issuer, at) => (issuer.keys && issuer.jwks_uri ? issue(`${at}.keys`, "cannot be combined with jwks_uri") : none);

const tenantsWithTemplate: IssuerRule = (issuer, at) => [
  ...(templated(issuer) && !issuer.tenants ? issue(`${at}.tenants`, 'is required when issuer contains {tenantid} (list tenant GUIDs, or ["*"])') : none),
  ...(!templated(issuer) && issuer.tenants ? issue(`${at}.tenants`, "applies only to an issuer containing {tenantid}") : none),
  ...(templated(issuer) && !issuer.jwks_uri && !issuer.keys ? issue(`${at}.jwks_uri`, "is required when issuer contains {tenantid}") : none),
];

const introspectionEndpointDiscoverable: IssuerRule = (issuer, at) =>
  issuer.introspection && !issuer.introspection.endpoint && !isAllowedUrl(issuer.issuer)
    ? issue(`${at}.introspection.endpoint`, "is required unless issuer is an https URL to discover it from")
    : none;

/** `required` means DPoP-bound tokens only (RFC 9728 `dpop_bound_access_tokens_required`): an unbound one never passes. */
const dpopUnboundTokensConsistent: IssuerRule = (issuer, at) =>
  issuer.dpop.mode === "required" && issuer.dpop.unbound_tokens === "allow"
    ? issue(`${at}.dpop.unbound_tokens`, 'cannot be "allow" when dpop.mode is "required" (required accepts DPoP-bound tokens only)')
    : none;

const introspectRoutesHaveIntrospection: ConfigRule = (config) =>
  config.routes.flatMap((route, i) =>
    route.introspect && config.issuers.some((issuer) => !issuer.introspection)
      ? issue(`routes.${i}.introspect`, "needs introspection configured on every issuer")
      : none,
  );

const claimHeadersInNamespace: ConfigRule = (config) => {
  const prefix = config.forward.header_prefix;
  const conflict = headerPrefixConflict(prefix);
  // With such a prefix every claim header would be suspect; the prefix is the field to change.
  if (conflict) return issue("forward.header_prefix", `must not be the start of ${conflict}: the identity namespace is stripped from every request and filled from claims; choose one of your own, such as "x-auth-"`);
  const builtIn = new Set(BUILT_IN_HEADERS.map((name) => prefix + name));
  return Object.keys(config.forward.claim_headers).flatMap((header) => {
    const field = `forward.claim_headers.${header}`;
    if (!header.startsWith(prefix) || header === prefix) return issue(field, `must start with the header prefix "${prefix}" so client copies are always stripped`);
    if (builtIn.has(header)) return issue(field, "is a built-in claim header");
    const reserved = reservedHeaderReason(header);
    return reserved ? issue(field, reserved) : none;
  });
};

/**
 * The headers the gate sets itself (assertion, shared secret) must be its own: inside `header_prefix` the
 * origin would take them for identity claims (and the origin verifier, which requires the identity headers
 * to be exactly those the assertion lists, would refuse every request), the same name twice would leave one
 * value overwriting the other, and a credentials, hop-by-hop or gate-controlled header would be lost,
 * overwritten or misread on the way.
 */
const ownHeadersOutsideNamespace: ConfigRule = ({ forward }) => {
  const own = [
    ["forward.assertion.header", forward.assertion?.header],
    ["forward.shared_secret.header", forward.shared_secret?.header],
  ] as const;
  const issues = own.flatMap(([field, header]) => {
    if (header === undefined) return none;
    if (header.startsWith(forward.header_prefix)) return issue(field, `must not start with the identity header prefix "${forward.header_prefix}"`);
    const reserved = reservedHeaderReason(header);
    return reserved ? issue(field, reserved) : none;
  });
  if (forward.assertion && forward.assertion.header === forward.shared_secret?.header) {
    issues.push(...issue("forward.shared_secret.header", "must differ from forward.assertion.header"));
  }
  return issues;
};

const tokenOnlyFields: RouteRule = (route, at) => {
  if (route.access === "token") return none;
  const fields = (["scopes", "scopes_any", "claims"] as const).filter((field) => route[field].length);
  return [...fields, ...(route.report_only ? (["report_only"] as const) : [])].flatMap((field) => issue(`${at}.${field}`, `applies only to access = "token" rules`));
};

const claimOperators = (claims: RouteConfig["claims"], at: string): readonly ConfigIssue[] =>
  claims.flatMap((condition, j) =>
    [condition.equals, condition.one_of, condition.contains].filter((op) => op !== undefined).length === 1
      ? none
      : issue(`${at}.claims.${j}`, "must have exactly one of equals, one_of, contains"),
  );

const oneClaimOperator: RouteRule = (route, at) => claimOperators(route.claims, at);

/**
 * An MCP route's operations: not on a `deny` rule (nothing reaches them); requirements only on `token`
 * rules; one claim operator each; a name only on methods that carry one; no two of one method with the
 * same name shape (they would tie, as route ties do).
 */
const mcpOperations: RouteRule = (route, at) => {
  if (!route.mcp) return none;
  if (route.access === "deny") return issue(`${at}.mcp`, 'does not apply to access = "deny" rules');
  const operations = route.mcp.operations;
  const each = operations.flatMap((operation, j) => {
    const field = `${at}.mcp.operations.${j}`;
    const tokenOnly = route.access === "token" ? [] : (["scopes", "scopes_any", "claims"] as const).filter((name) => operation[name].length);
    const unmatchable = unmatchableName(operation);
    return [
      ...tokenOnly.flatMap((name) => issue(`${field}.${name}`, 'applies only to access = "token" rules')),
      ...claimOperators(operation.claims, field),
      ...(unmatchable ? issue(`${field}.name`, unmatchable) : none),
    ];
  });
  const ties = operationTies(compileOperations(route.mcp)).map(([first, second]) => ({
    field: `${at}.mcp.operations.${second}`,
    message: `names the same method and name shape as mcp.operations.${first}; merge them`,
  }));
  return [...each, ...ties];
};

/** With the gate's own path policy: a literal that policy always refuses or rewrites can never match. */
const routePatternsMatchable: ConfigRule = (config) => {
  try {
    return findAmbiguities(compileRoutes(config.routes, pathPolicy(config.paths))).map(([first, second]) => ({
      field: `routes.${second.index}`,
      message: `can match the same requests as routes.${first.index} with equal precedence; make one more specific or merge them`,
    }));
  } catch (error) {
    if (!(error instanceof RoutePatternError)) throw error;
    return issue(`routes.${error.index}.${error.field}`, error.message);
  }
};

/** What a rule asks of a request besides its scopes, for comparing two rules. */
const requirementsBesideScopes = (rule: RouteConfig) =>
  JSON.stringify([rule.access, [...rule.scopes_any].sort(), rule.claims, rule.report_only, rule.introspect, rule.dpop ?? null, rule.mcp ?? null]);

/** Whether `head` asks at least what `get` asks: refuses everything, or the same with the same or more scopes. */
const asksAtLeast = (head: RouteConfig, get: RouteConfig) =>
  head.access === "deny" || (requirementsBesideScopes(head) === requirementsBesideScopes(get) && get.scopes.every((scope) => head.scopes.includes(scope)));

/**
 * A HEAD rule beside the GET rule of the same pattern must ask at least as much: origins answer HEAD with
 * their GET handler (its work done, its headers sent), so a weaker HEAD rule would run the GET handler under it.
 */
const headRulesAsGet: ConfigRule = (config) => {
  try {
    return headBesideGet(compileRoutes(config.routes, pathPolicy(config.paths)))
      .filter(([head, get]) => !asksAtLeast(head.rule, get.rule))
      .map(([head, get]) => ({
        field: `routes.${head.index}.methods`,
        message: `names HEAD apart from routes.${get.index}, which covers GET for the same pattern, and asks less: origins answer HEAD with their GET handler, so list HEAD in routes.${get.index} instead (or ask at least what it asks)`,
      }));
  } catch (error) {
    // A pattern error is reported by routePatternsMatchable.
    if (error instanceof RoutePatternError) return none;
    throw error;
  }
};

/**
 * A resource's path says which requests it covers, compared with their canonical paths: it must be spelled
 * canonically, and each resource needs its own (its document is served at it).
 */
const resourcePathsCanonicalAndDistinct: ConfigRule = (config) => {
  const resources = protectedResourceList(config).map(({ resource, field }) => ({ field: `${field}.resource`, path: new URL(resource.resource).pathname }));
  const covered = resources.map(({ path }) => path.replace(/\/$/, ""));
  return resources.flatMap(({ field, path }, i) => {
    const canonical = canonicalOrUndefined(path);
    if (canonical !== path) return issue(field, canonical === undefined ? "has a path no request can have (see the canonical path)" : `has a path that is not canonical: write ${JSON.stringify(canonical)}`);
    const first = covered.indexOf(covered[i]!);
    return first < i ? issue(field, `has the same path as ${resources[first]!.field}: each resource needs its own path`) : none;
  });
};

/**
 * The assertion keys are served at `jwks_path` ahead of every rule: the path must be one a request can have
 * (canonical, with the gate's path policy), and must not take over the metadata documents' namespace.
 */
const assertionKeysPathServable: ConfigRule = (config) => {
  const path = config.forward.assertion?.jwks_path;
  if (path === undefined) return none;
  const field = "forward.assertion.jwks_path";
  const canonical = canonicalOrUndefined(path, pathPolicy(config.paths));
  if (canonical !== path) return issue(field, canonical === undefined ? "is a path no request can have (see the canonical path)" : `is not canonical: write ${JSON.stringify(canonical)}`);
  if (path === "/" || path === METADATA_PREFIX || path.startsWith(`${METADATA_PREFIX}/`)) return issue(field, `must not be / or under ${METADATA_PREFIX} (the gate answers those paths itself)`);
  return none;
};

function canonicalOrUndefined(path: string, policy?: PathPolicy): string | undefined {
  try {
    return canonicalPath(path, policy);
  } catch {
    return undefined;
  }
}

const eachIssuer =
  (...rules: IssuerRule[]): ConfigRule =>
  (config) =>
    config.issuers.flatMap((issuer, i) => rules.flatMap((rule) => rule(issuer, `issuers.${i}`, config)));

const eachRoute =
  (...rules: RouteRule[]): ConfigRule =>
  (config) =>
    config.routes.flatMap((route, i) => rules.flatMap((rule) => rule(route, `routes.${i}`)));

const CONFIG_RULES: ConfigRule[] = [
  eachIssuer(uniqueIssuer, hmacSecretMatchesAlgorithms, jwksTimesOrdered, jwksUriDiscoverable),
  oneCatchAllOpaqueIssuer,
  eachIssuer(introspectionClient, providerEndpoint, keysOrJwksUri, tenantsWithTemplate),
  eachIssuer(introspectionEndpointDiscoverable, dpopUnboundTokensConsistent),
  introspectRoutesHaveIntrospection,
  claimHeadersInNamespace,
  ownHeadersOutsideNamespace,
  eachRoute(tokenOnlyFields, oneClaimOperator, mcpOperations),
  routePatternsMatchable,
  headRulesAsGet,
  resourcePathsCanonicalAndDistinct,
  assertionKeysPathServable,
];

/**
 * The cross-field issues of a schema result: the field rules' for every issuer they can judge, then, when
 * neither the schema nor they found anything, the configuration rules'.
 */
export function crossFieldIssues(parsed: v.SafeParseResult<typeof ConfigSchema>): ConfigIssue[] {
  const early = fieldRuleIssues(parsed.output, parsed.issues ?? []);
  if (!parsed.success || early.length) return early;
  return CONFIG_RULES.flatMap((rule) => rule(parsed.output));
}

/** On a failed parse the output is partial: an issuer is only judged on fields that parsed. */
function fieldRuleIssues(output: unknown, fieldIssues: readonly v.BaseIssue<unknown>[]): ConfigIssue[] {
  const issuers = (output as { issuers?: unknown } | null)?.issuers;
  if (!Array.isArray(issuers)) return [];
  const config = output as ResolvedConfig;
  return issuers.flatMap((issuer: IssuerConfig, i) =>
    FIELD_RULES.flatMap(({ reads, rule }) => (parsedWithin(fieldIssues, ["issuers", i], reads) ? rule(issuer, `issuers.${i}`, config) : none)),
  );
}

/**
 * Whether no field issue touches any of `reads` (paths below `at`): valibot's partial-check test, for
 * which an issue touches a path when the two agree on every key they both have.
 */
function parsedWithin(fieldIssues: readonly v.BaseIssue<unknown>[], at: readonly (string | number)[], reads: readonly (readonly string[])[]): boolean {
  return fieldIssues.every((fieldIssue) => {
    const keys = fieldIssue.path?.map((item) => item.key) ?? [];
    if (!at.every((key, k) => keys[k] === key)) return true;
    const below = keys.slice(at.length);
    return reads.every((read) => read.some((key, k) => k < below.length && key !== below[k]));
  });
}
