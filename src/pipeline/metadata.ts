import type { ResolvedConfig } from "../config/schema";

/**
 * RFC 9728 OAuth 2.0 Protected Resource Metadata: the document the gate serves (a local answer, local.ts)
 * and the URL every Bearer challenge names. The document lives at the resource identifier with
 * `/.well-known/oauth-protected-resource` inserted between host and path (section 3.1).
 */
export function metadataUrl(resource: string): URL {
  const url = new URL(resource);
  const path = url.pathname === "/" ? "" : url.pathname;
  return new URL(`${url.origin}/.well-known/oauth-protected-resource${path}`);
}

export function metadataDocument(
  config: NonNullable<ResolvedConfig["resource_metadata"]>,
  allowQuery: boolean,
): Record<string, unknown> {
  return {
    resource: config.resource,
    authorization_servers: config.authorization_servers,
    bearer_methods_supported: allowQuery ? ["header", "query"] : ["header"],
    ...(config.scopes_supported ? { scopes_supported: config.scopes_supported } : {}),
    ...(config.resource_name ? { resource_name: config.resource_name } : {}),
    ...(config.resource_documentation ? { resource_documentation: config.resource_documentation } : {}),
  };
}
