/**
 * CORS on the answers the gate makes itself (refusals, challenges, the RFC 9728 document), so browser-based
 * clients can discover and read why they were refused (THREATS K3). Always `*` and never
 * `Access-Control-Allow-Credentials`: a `*` answer cannot be read by a credentialed (cookie) request, and the
 * gate's answers are the same whatever the `Origin`. Forwarded responses are the origin's, untouched: it owns
 * its CORS policy.
 */

/** Response headers a cross-origin script may read besides the CORS-safelisted ones (a browser DPoP client needs the nonce). */
const EXPOSED = "WWW-Authenticate, Retry-After, DPoP-Nonce";

/** Marks a gate-made answer readable from any origin, without credentials. */
export function readableCrossOrigin(headers: Headers): Headers {
  headers.set("access-control-allow-origin", "*");
  headers.set("access-control-expose-headers", EXPOSED);
  return headers;
}

/**
 * The answer to a preflight (or any OPTIONS) for a public document the gate serves: `methods` only, any
 * request header (`*`, which a non-credentialed request may use; `Authorization` named because `*` never
 * covers it), cached a day (browsers cap it lower).
 */
export function publicPreflight(methods: string): Response {
  const headers = readableCrossOrigin(new Headers({ allow: `${methods}, OPTIONS` }));
  headers.set("access-control-allow-methods", methods);
  headers.set("access-control-allow-headers", "*, authorization");
  headers.set("access-control-max-age", "86400");
  return new Response(null, { status: 204, headers });
}
