import { readableCrossOrigin } from "../lib/cors";
import { GateError } from "./errors";

export interface ChallengeOptions {
  realm: string;
  /** The RFC 9728 metadata URL of the request's protected resource, added to every Bearer challenge when configured. */
  resourceMetadata?: string | undefined;
  /**
   * The scopes the matched rule needs (`challengeScopes`), named on its 401 challenges (MCP 2025-11-25 SHOULD,
   * RFC 6750 section 3); a 403 `insufficient_scope` names the refusal's own.
   */
  scope?: readonly string[] | undefined;
}

/** RFC 7235 quoted-string; config values are validated to be printable ASCII, this escapes `"` and `\`. */
const quote = (value: string) => `"${value.replace(/["\\]/g, (c) => `\\${c}`)}"`;

/**
 * Builds the `WWW-Authenticate` value (RFC 6750 section 3). With no error (no credentials were sent) the
 * challenge carries no error code, as section 3.1 requires. `scope` on 401s and on 403 `insufficient_scope`.
 */
export function bearerChallenge(options: ChallengeOptions, error?: GateError): string {
  const params = [`realm=${quote(options.realm)}`];
  if (error) params.push(`error=${quote(error.code)}`, `error_description=${quote(error.description)}`);
  const scope = error?.code === "insufficient_scope" ? error.scope : !error || error.code === "invalid_token" ? options.scope : undefined;
  if (scope?.length) params.push(`scope=${quote(scope.join(" "))}`);
  if (options.resourceMetadata) params.push(`resource_metadata=${quote(options.resourceMetadata)}`);
  return `Bearer ${params.join(", ")}`;
}

const CHALLENGED = new Set(["invalid_request", "invalid_token", "insufficient_scope"]);

const errorHeaders = () => readableCrossOrigin(new Headers({ "content-type": "application/json", "cache-control": "no-store" }));

/**
 * The JSON error response, readable cross-origin (its challenge exposed) like every answer the gate makes.
 * `error` undefined means "no credentials": a bare 401 challenge.
 */
export function errorResponse(options: ChallengeOptions, error?: GateError): Response {
  const headers = errorHeaders();
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
export function jsonError(error: GateError, headers = errorHeaders()): Response {
  if (error.retryAfter !== undefined) headers.set("retry-after", String(Math.max(1, Math.ceil(error.retryAfter))));
  return new Response(JSON.stringify({ error: error.code, error_description: error.description }), {
    status: error.status,
    headers,
  });
}
