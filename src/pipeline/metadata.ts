import type { ResolvedConfig } from "../config/schema";
import { dpopAlgorithms, dpopRequiredEverywhere } from "./request";

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

export function metadataDocument(config: ResolvedConfig): Record<string, unknown> {
  const metadata = config.resource_metadata!;
  return {
    ...metadataFields(metadata, config.token.allow_query),
    ...senderConstraintMetadata(config),
  };
}

function metadataFields(config: NonNullable<ResolvedConfig["resource_metadata"]>, allowQuery: boolean): Record<string, unknown> {
  return {
    resource: config.resource,
    authorization_servers: config.authorization_servers,
    bearer_methods_supported: allowQuery ? ["header", "query"] : ["header"],
    ...(config.scopes_supported ? { scopes_supported: config.scopes_supported } : {}),
    ...(config.resource_name ? { resource_name: config.resource_name } : {}),
    ...(config.resource_documentation ? { resource_documentation: config.resource_documentation } : {}),
  };
}
