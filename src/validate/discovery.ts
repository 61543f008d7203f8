import { isAllowedUrl } from "../lib/url";
import { FetchJsonError, fetchJson, type Fetcher, type FetchLimits } from "./fetch-json";

/**
 * Finding an issuer's `jwks_uri` from its metadata: RFC 8414 first (`/.well-known/oauth-authorization-server`
 * inserted between host and path), then OpenID Connect Discovery (`/.well-known/openid-configuration`
 * appended to the issuer). The document's `issuer` must equal the configured issuer exactly (RFC 8414 3.3),
 * or a metadata document for another issuer could hand us its keys.
 */

export function metadataUrls(issuer: string): string[] {
  const url = new URL(issuer);
  const path = url.pathname === "/" ? "" : url.pathname.replace(/\/$/, "");
  return [`${url.origin}/.well-known/oauth-authorization-server${path}`, `${url.origin}${path}/.well-known/openid-configuration`];
}

export interface Discovered {
  /** The endpoint the caller asked for (`jwks_uri`, `introspection_endpoint`). */
  url: string;
  maxAge: number | undefined;
}

/** Looks up `field` (an endpoint URL) in the issuer's authorization server metadata. */
export async function discoverEndpoint(
  fetcher: Fetcher,
  issuer: string,
  field: "jwks_uri" | "introspection_endpoint",
  limits: FetchLimits,
): Promise<Discovered> {
  let lastReason = "no_metadata";
  for (const url of metadataUrls(issuer)) {
    try {
      const { body, maxAge } = await fetchJson(fetcher, url, limits);
      const metadata = body as Record<string, unknown> | null;
      if (metadata?.issuer !== issuer) throw new FetchJsonError("metadata_issuer_mismatch");
      const endpoint = metadata[field];
      if (typeof endpoint !== "string" || !isAllowedUrl(endpoint)) throw new FetchJsonError(`metadata_bad_${field}`);
      return { url: endpoint, maxAge };
    } catch (error) {
      lastReason = error instanceof FetchJsonError ? error.reason : "network_error";
      // A mismatching or broken document is not retried at the other location: that would let either
      // location override the other. Only "not there" (404) falls through to the OIDC location.
      if (lastReason !== "status_404") break;
    }
  }
  throw new FetchJsonError(`discovery_${lastReason}`);
}
