/**
 * Typed decision errors. Every way a request can be refused has a stable `reason` code (logged, documented
 * in the README error reference) and maps to exactly one RFC 6750 / HTTP outcome. Messages are generic on
 * purpose: no token, claim value or internal detail ever reaches a response.
 */

/** The RFC 6750 section 3.1 error code, or our own codes for non-token outcomes. */
export type ErrorCode =
  | "invalid_request"
  | "invalid_token"
  | "insufficient_scope"
  | "invalid_dpop_proof"
  | "use_dpop_nonce"
  | "access_denied"
  | "payload_too_large"
  | "temporarily_unavailable"
  | "server_error"
  | "bad_gateway"
  | "gateway_timeout";

export const STATUS: Record<ErrorCode, number> = {
  invalid_request: 400,
  invalid_token: 401,
  insufficient_scope: 403,
  invalid_dpop_proof: 401,
  use_dpop_nonce: 401,
  access_denied: 403,
  payload_too_large: 413,
  temporarily_unavailable: 503,
  server_error: 500,
  bad_gateway: 502,
  gateway_timeout: 504,
};

const DESCRIPTION: Record<ErrorCode, string> = {
  invalid_request: "The request is malformed",
  invalid_token: "The access token is invalid",
  insufficient_scope: "The access token does not grant the required scope",
  invalid_dpop_proof: "The DPoP proof is invalid",
  use_dpop_nonce: "The DPoP proof must carry the nonce in the DPoP-Nonce header",
  access_denied: "No rule allows this request",
  payload_too_large: "The request body is larger than the gate reads",
  temporarily_unavailable: "Token verification is temporarily unavailable",
  server_error: "The authorizer is misconfigured",
  bad_gateway: "The origin could not be reached",
  gateway_timeout: "The origin did not answer in time",
};

export class GateError extends Error {
  readonly code: ErrorCode;
  /** Machine-readable cause, for logs only (never sent to the client). */
  readonly reason: string;
  /** Seconds, for 503 answers. */
  readonly retryAfter: number | undefined;
  /** Scopes the route needs, for 403 insufficient_scope challenges. */
  readonly scope: readonly string[] | undefined;
  /** A fresh DPoP nonce, sent as `DPoP-Nonce` (use_dpop_nonce answers, RFC 9449 section 9). */
  readonly nonce: string | undefined;

  constructor(code: ErrorCode, reason: string, extra: { retryAfter?: number; scope?: readonly string[]; nonce?: string } = {}) {
    super(DESCRIPTION[code]);
    this.name = "GateError";
    this.code = code;
    this.reason = reason;
    this.retryAfter = extra.retryAfter;
    this.scope = extra.scope;
    this.nonce = extra.nonce;
  }

  get status(): number {
    return STATUS[this.code];
  }

  get description(): string {
    return DESCRIPTION[this.code];
  }
}

/** Shorthands, so call sites read as the spec's terms. */
export const invalidToken = (reason: string) => new GateError("invalid_token", reason);
export const invalidRequest = (reason: string) => new GateError("invalid_request", reason);
export const invalidProof = (reason: string) => new GateError("invalid_dpop_proof", reason);
