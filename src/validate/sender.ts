import type { JWTPayload } from "jose";
import type { DpopMode, IssuerConfig } from "../config/schema";
import type { Scheme } from "../errors/challenge";
import { invalidProof, invalidToken } from "../errors/errors";
import { hexToBase64url } from "../lib/digest";
import { confirmationOf, type Confirmation } from "./claims";
import { verifyProof, type ProofRequest, type VerifiedProof } from "./dpop";
import type { ReplayCheck } from "./dpop-replay";

/**
 * Sender-constrained tokens: whether a verified token may be used the way it was presented. A token bound
 * to a DPoP key (`cnf.jkt`, RFC 9449) needs the DPoP scheme and a proof by that key, used once; a token
 * bound to a client certificate (`cnf["x5t#S256"]`, RFC 8705) needs that certificate on this TLS
 * connection; a bearer token is accepted as the issuer's (or the rule's) DPoP mode says. Made on every
 * request, after the token is verified (a cache hit too: the binding is per request, not per token).
 */

export interface Presentation {
  scheme: Scheme;
  proof: string | undefined;
  /**
   * Cloudflare's `request.cf.tlsClientAuth` (mTLS), when there is one: read only for a certificate-bound
   * token, since every request would otherwise pay for materializing `request.cf`.
   */
  tlsClientAuth: () => unknown;
}

/** How the token was bound to its sender, for the origin (identity headers, assertion). */
export interface SenderConstraint {
  /** RFC 7638 thumbprint of the DPoP key the request proved. */
  jkt?: string;
  /** RFC 8705 `x5t#S256` of the client certificate presented. */
  "x5t#S256"?: string;
}

export interface SenderCheck {
  presentation: Presentation;
  /** The DPoP mode that applies: the rule's `dpop`, else the issuer's `dpop.mode`. */
  mode: DpopMode;
  request: ProofRequest;
  replay: ReplayCheck;
  binding: (name: string) => unknown;
}

/**
 * The checks that need no proof, certificate or store (explain makes them too): a `cnf` of a checkable
 * kind, a DPoP-bound token only where DPoP is on and only with the DPoP scheme, a bearer token only where
 * DPoP is not required (and with the DPoP scheme only when `unbound_tokens = "allow"`), a certificate-bound
 * token only where the issuer accepts them. Returns the token's confirmation.
 */
export function checkPresentation(claims: JWTPayload, issuer: IssuerConfig, mode: DpopMode, scheme: Presentation["scheme"]): Confirmation {
  const cnf = confirmationOf(claims) ?? {};
  // A binding the configuration does not check is refused, as every `cnf` was before sender constraints.
  if (cnf["x5t#S256"] !== undefined && !issuer.mtls_bound_tokens) throw invalidToken("token_sender_constrained");
  if (cnf.jkt !== undefined && mode === "disabled") throw invalidToken("token_sender_constrained");
  if (scheme === "bearer") {
    // RFC 9449 section 7.2: a DPoP-bound token presented as a bearer token is refused.
    if (cnf.jkt !== undefined) throw invalidToken("dpop_bound_token_as_bearer");
    if (mode === "required") throw invalidToken("dpop_required");
    return cnf;
  }
  if (mode === "disabled") throw invalidToken("dpop_not_enabled");
  if (cnf.jkt === undefined && (mode === "required" || issuer.dpop.unbound_tokens === "reject")) throw invalidToken("token_not_dpop_bound");
  return cnf;
}

/** The binding proven, undefined for an unbound token; throws a 401 (or 503 from the store) otherwise. */
export async function checkSenderConstraint(claims: JWTPayload, issuer: IssuerConfig, check: SenderCheck): Promise<SenderConstraint | undefined> {
  const { presentation } = check;
  const cnf = checkPresentation(claims, issuer, check.mode, presentation.scheme);
  const constraint: SenderConstraint = {};
  if (cnf["x5t#S256"] !== undefined) constraint["x5t#S256"] = checkCertificate(cnf["x5t#S256"], presentation.tlsClientAuth());
  if (presentation.scheme === "bearer") return bound(constraint);
  const proof = await checkProof(presentation.proof!, cnf, issuer, check.request, check.binding);
  // Last: only a proof that passed every other check costs a store request, and can use up its jti.
  if (!(await check.replay(proof.jkt, proof.jti, check.request.now, proof.acceptableUntil))) throw invalidProof("dpop_proof_replayed");
  if (cnf.jkt !== undefined) constraint.jkt = proof.jkt;
  return bound(constraint);
}

/**
 * The proof checks that need no store (explain makes them too): the proof itself (dpop.ts, the nonce unless
 * `checkNonce` is false) and, for a DPoP-bound token, that its key is the one the token names.
 */
export async function checkProof(proof: string, cnf: Confirmation, issuer: IssuerConfig, request: ProofRequest, binding: (name: string) => unknown, checkNonce = true): Promise<VerifiedProof> {
  const verified = await verifyProof(proof, issuer, request, binding, checkNonce);
  // RFC 9449 section 7.1's own example: a key that does not match the binding is an invalid token.
  if (cnf.jkt !== undefined && verified.jkt !== cnf.jkt) throw invalidToken("dpop_key_mismatch");
  return verified;
}

const bound = (constraint: SenderConstraint) => (Object.keys(constraint).length ? constraint : undefined);

/**
 * RFC 8705 section 3: the certificate of this TLS connection, verified by Cloudflare's mTLS (certificate
 * presented, verification SUCCESS, not revoked), must be the one the token names. Cloudflare gives the
 * SHA-256 fingerprint in hex; `x5t#S256` is the same digest in base64url.
 */
function checkCertificate(x5t: string, tls: unknown): string {
  const auth = (tls ?? {}) as { certPresented?: unknown; certVerified?: unknown; certRevoked?: unknown; certFingerprintSHA256?: unknown };
  if (auth.certPresented !== "1") throw invalidToken("mtls_certificate_missing");
  if (auth.certVerified !== "SUCCESS" || auth.certRevoked === "1") throw invalidToken("mtls_certificate_unverified");
  const presented = typeof auth.certFingerprintSHA256 === "string" ? hexToBase64url(auth.certFingerprintSHA256) : undefined;
  if (presented !== x5t) throw invalidToken("mtls_certificate_mismatch");
  return x5t;
}
