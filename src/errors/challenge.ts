import { GateError } from "./errors";

export interface ChallengeOptions {
  realm: string;
  /** RFC 9728 metadata URL, added to every Bearer challenge when configured. */
  resourceMetadata?: string | undefined;
}

/** RFC 7235 quoted-string; config values are validated to be printable ASCII, this escapes `"` and `\`. */
const quote = (value: string) => `"${value.replace(/["\\]/g, (c) => `\\${c}`)}"`;

/**
 * Builds the `WWW-Authenticate` value (RFC 6750 section 3). With no error (no credentials were sent) the
 * challenge carries no error code, as section 3.1 requires.
 */
export function bearerChallenge(options: ChallengeOptions, error?: GateError): string {
  const params = [`realm=${quote(options.realm)}`];
  if (error) {
    params.push(`error=${quote(error.code)}`, `error_description=${quote(error.description)}`);
    if (error.code === "insufficient_scope" && error.scope?.length) params.push(`scope=${quote(error.scope.join(" "))}`);
  }
  if (options.resourceMetadata) params.push(`resource_metadata=${quote(options.resourceMetadata)}`);
  return `Bearer ${params.join(", ")}`;
}

const CHALLENGED = new Set(["invalid_request", "invalid_token", "insufficient_scope"]);

/** The JSON error response. `error` undefined means "no credentials": a bare 401 challenge. */
export function errorResponse(options: ChallengeOptions, error?: GateError): Response {
  const headers = new Headers({ "content-type": "application/json", "cache-control": "no-store" });
  if (!error) {
    headers.set("www-authenticate", bearerChallenge(options));
    return new Response(JSON.stringify({ error: "unauthorized", error_description: "An access token is required" }), {
      status: 401,
      headers,
    });
  }
  if (CHALLENGED.has(error.code)) headers.set("www-authenticate", bearerChallenge(options, error));
  return jsonError(error, headers);
}

/** The JSON body and status for any GateError (challenge headers, if any, already in `headers`). */
export function jsonError(error: GateError, headers = new Headers({ "content-type": "application/json", "cache-control": "no-store" })): Response {
  if (error.retryAfter !== undefined) headers.set("retry-after", String(Math.max(1, Math.ceil(error.retryAfter))));
  return new Response(JSON.stringify({ error: error.code, error_description: error.description }), {
    status: error.status,
    headers,
  });
}
