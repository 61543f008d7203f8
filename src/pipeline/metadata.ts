import { METADATA_PREFIX, protectedResourceList, type ResolvedConfig, type ResourceConfig, type RouteConfig } from "../config/schema";
import { combinedRequirement } from "../policy/requirements";
import { patternWithin, type CompiledRoute } from "../policy/routes";
import { scopesSupported, type ScopeRequirement } from "../policy/scopes";
import { dpopAlgorithms, dpopRequiredEverywhere } from "./request";

/**
 * RFC 9728 OAuth 2.0 Protected Resource Metadata: the documents the gate serves (local answers, local.ts)
 * and the URL each Bearer challenge names. A document lives at its resource identifier with
 * `/.well-known/oauth-protected-resource` inserted between host and path (section 3.1), so several
 * resources behind one gate (several MCP servers) each have their own. A resource covers the requests at
 * its identifier's path and below; the longest covering resource is the request's.
 */


export function metadataUrl(resource: string): URL {
  const url = new URL(resource);
  const path = url.pathname === "/" ? "" : url.pathname;
  return new URL(`${url.origin}${METADATA_PREFIX}${path}`);
}

export interface ProtectedResource {
  /** The document's path (`/.well-known/oauth-protected-resource/mcp/notes`). */
  documentPath: string;
  /** The document's URL, as challenges name it (`resource_metadata`). */
  documentUrl: string;
  document: Record<string, unknown>;
}

export interface ProtectedResources {
  /** By document path. */
  byDocumentPath: ReadonlyMap<string, ProtectedResource>;
  /** The resource a request path belongs to (the longest covering one), if any. */
  covering: (path: string) => ProtectedResource | undefined;
}

/**
 * The configured resources with their documents, built once per gate. `routes` are compiled with the
 * gate's path policy (literals lower-cased when `caseInsensitive`).
 */
export function protectedResources(config: ResolvedConfig, routes: readonly CompiledRoute[], caseInsensitive: boolean): ProtectedResources {
  const fold = (path: string) => (caseInsensitive ? path.toLowerCase() : path);
  const configured = protectedResourceList(config).map(({ resource }) => ({ resource, prefix: segmentsOf(fold(new URL(resource.resource).pathname)) }));
  // Longest first: the first covering resource is the most specific.
  configured.sort((a, b) => b.prefix.length - a.prefix.length);
  const resources = configured.map(({ resource, prefix }) => {
    const url = metadataUrl(resource.resource);
    const inner = configured.filter((other) => other.prefix.length > prefix.length && startsWith(other.prefix, prefix)).map((other) => other.prefix);
    const scopes = resource.scopes_supported ?? scopesSupported(requirementsUnder(routes, prefix, inner));
    const entry: ProtectedResource = { documentPath: url.pathname, documentUrl: url.href, document: { ...metadataDocument(resource, scopes, config.token.allow_query), ...senderConstraintMetadata(config) } };
    return { entry, prefix };
  });
  return {
    byDocumentPath: new Map(resources.map(({ entry }) => [entry.documentPath, entry])),
    covering: (path) => {
      const parts = segmentsOf(fold(path));
      return resources.find(({ prefix }) => startsWith(parts, prefix))?.entry;
    },
  };
}

/** Every scope requirement a rule can pose: the rule's own and, on an MCP route, each operation's on top of it. */
export function ruleRequirements(rule: RouteConfig): ScopeRequirement[] {
  return [rule, ...(rule.mcp?.operations ?? []).map((operation) => combinedRequirement(rule, operation))];
}

/**
 * The requirements of the rules that can match requests of a resource at `prefix`: those whose pattern
 * reaches under it, except rules wholly inside a more specific resource (`inner`), which are that one's;
 * in configuration order.
 */
function requirementsUnder(routes: readonly CompiledRoute[], prefix: readonly string[], inner: readonly (readonly string[])[]): ScopeRequirement[] {
  return [...routes]
    .sort((a, b) => a.index - b.index)
    .filter((route) => patternWithin(route, prefix) !== "outside" && !inner.some((other) => patternWithin(route, other) === "inside"))
    .flatMap((route) => ruleRequirements(route.rule));
}

/**
 * Sender-constrained tokens as configured: `dpop_signing_alg_values_supported` and
 * `dpop_bound_access_tokens_required` when DPoP is on anywhere (the same algorithms the DPoP challenge
 * names; required only when every issuer and rule requires it), `tls_client_certificate_bound_access_tokens`
 * (RFC 8705 section 3.4) only when an issuer accepts certificate-bound tokens.
 */
function senderConstraintMetadata(config: ResolvedConfig): Record<string, unknown> {
  const algorithms = dpopAlgorithms(config);
  return {
    ...(algorithms ? { dpop_signing_alg_values_supported: algorithms, dpop_bound_access_tokens_required: dpopRequiredEverywhere(config) } : {}),
    ...(config.issuers.some((issuer) => issuer.mtls_bound_tokens) ? { tls_client_certificate_bound_access_tokens: true } : {}),
  };
}

function metadataDocument(config: ResourceConfig, scopes: readonly string[], allowQuery: boolean): Record<string, unknown> {
  return {
    resource: config.resource,
    authorization_servers: config.authorization_servers,
    bearer_methods_supported: allowQuery ? ["header", "query"] : ["header"],
    ...(scopes.length ? { scopes_supported: scopes } : {}),
    ...(config.resource_name ? { resource_name: config.resource_name } : {}),
    ...(config.resource_documentation ? { resource_documentation: config.resource_documentation } : {}),
  };
}

/** A path's segments for prefix comparison: `/` and `` are none, a trailing `/` adds none. */
function segmentsOf(path: string): string[] {
  return path.split("/").filter((segment, i, all) => !(segment === "" && (i === 0 || i === all.length - 1)));
}

const startsWith = (parts: readonly string[], prefix: readonly string[]) => prefix.every((segment, i) => parts[i] === segment);
