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
  /** DPoP is accepted: a `DPoP` challenge with these `algs` (RFC 9449 section 7.1) is sent too. */
  dpopAlgorithms?: readonly string[] | undefined;
  /** False when every token must be DPoP-bound: no Bearer challenge. Default true. */
  bearer?: boolean;
}

/** The scheme a client presented its token with: the refusal's error goes into that scheme's challenge. */
export type Scheme = "bearer" | "dpop";

/** RFC 7235 quoted-string; config values are validated to be printable ASCII, this escapes `"` and `\`. */
const quote = (value: string) => `"${value.replace(/["\\]/g, (c) => `\\${c}`)}"`;

/**
 * Builds the `WWW-Authenticate` value (RFC 6750 section 3). With no error (no credentials were sent) the
 * challenge carries no error code, as section 3.1 requires. `scope` on 401s and on 403 `insufficient_scope`.
 */
export function bearerChallenge(options: ChallengeOptions, error?: GateError): string {
  return `Bearer ${challengeParams(options, error).join(", ")}`;
}

/** RFC 9449 section 7.1: `DPoP algs="ES256 PS256"`, with the error when the refusal is about this scheme. */
export function dpopChallenge(options: ChallengeOptions, error?: GateError): string {
  const [realm, ...rest] = challengeParams(options, error);
  return `DPoP ${[realm, `algs=${quote((options.dpopAlgorithms ?? []).join(" "))}`, ...rest].join(", ")}`;
}

function challengeParams(options: ChallengeOptions, error: GateError | undefined): string[] {
  const params = [`realm=${quote(options.realm)}`];
  if (error) params.push(`error=${quote(error.code)}`, `error_description=${quote(error.description)}`);
  const scope = error?.code === "insufficient_scope" ? error.scope : !error || error.code === "invalid_token" ? options.scope : undefined;
  if (scope?.length) params.push(`scope=${quote(scope.join(" "))}`);
  if (options.resourceMetadata) params.push(`resource_metadata=${quote(options.resourceMetadata)}`);
  return params;
}

const CHALLENGED = new Set(["invalid_request", "invalid_token", "insufficient_scope", "invalid_dpop_proof", "use_dpop_nonce"]);
const DPOP_ERRORS = new Set(["invalid_dpop_proof", "use_dpop_nonce"]);

const errorHeaders = () => readableCrossOrigin(new Headers({ "content-type": "application/json", "cache-control": "no-store" }));

/**
 * The challenges for a refusal: Bearer and/or DPoP as configured, the error (if any) in the challenge of
 * the scheme it concerns (a proof error: DPoP; otherwise the scheme the token came with), the other bare.
 */
function setChallenges(headers: Headers, options: ChallengeOptions, error: GateError | undefined, scheme: Scheme): void {
  const dpop = options.dpopAlgorithms !== undefined && options.dpopAlgorithms.length > 0;
  const bearer = options.bearer !== false || !dpop;
  const about: Scheme = error && DPOP_ERRORS.has(error.code) ? "dpop" : scheme;
  // The error is never dropped: when its scheme is not offered, the offered one carries it.
  const errorIn: Scheme = about === "dpop" ? (dpop ? "dpop" : "bearer") : bearer ? "bearer" : "dpop";
  if (bearer) headers.append("www-authenticate", bearerChallenge(options, errorIn === "bearer" ? error : undefined));
  if (dpop) headers.append("www-authenticate", dpopChallenge(options, errorIn === "dpop" ? error : undefined));
}

/**
 * The JSON error response, readable cross-origin (its challenge exposed) like every answer the gate makes.
 * `error` undefined means "no credentials": a bare 401 challenge. `scheme`: how the refused token was
 * presented (default Bearer).
 */
export function errorResponse(options: ChallengeOptions, error?: GateError, scheme: Scheme = "bearer"): Response {
  const headers = errorHeaders();
  if (!error) {
    setChallenges(headers, options, undefined, scheme);
    return new Response(JSON.stringify({ error: "unauthorized", error_description: "An access token is required" }), {
      status: 401,
      headers,
    });
  }
  if (CHALLENGED.has(error.code)) setChallenges(headers, options, error, scheme);
  if (error.nonce !== undefined) headers.set("dpop-nonce", error.nonce);
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
