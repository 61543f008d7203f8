import type { JWTPayload } from "jose";
import { invalidToken } from "../errors/errors";
import { claimAt } from "../lib/claim-path";

/**
 * Claim checks every validation path makes (JWTs, JWE-wrapped JWTs, introspection and provider answers):
 * the token must be a plain Bearer access token of this issuer, not a sender-constrained token or an
 * ID token, and it must carry the issuer's `required_claims`.
 */

/** OpenID Connect Core 1.0 2, 3.1.3.6, 3.3.2.11: claims only an ID token carries. */
export const ID_TOKEN_CLAIMS = ["nonce", "at_hash", "c_hash", "s_hash"] as const;

/**
 * RFC 9449 (DPoP) / RFC 8705 (mTLS): a `cnf` claim binds the token to a key its holder must prove, which a
 * Bearer presentation cannot. Any `cnf` at all (whatever members, an array, a string, null) is refused:
 * a confirmation method we do not know is still one we cannot check.
 */
export function refuseSenderConstrained(claims: object): void {
  if (Object.hasOwn(claims, "cnf")) throw invalidToken("token_sender_constrained");
}

/** An ID token is for the client that asked for it, never a credential for an API. */
export function refuseIdToken(claims: object, names: readonly string[] = ID_TOKEN_CLAIMS): void {
  if (names.some((name) => Object.hasOwn(claims, name))) throw invalidToken("id_token_not_accepted");
}

/** Each dotted path must hold a value (not null, not ""); the reason names the configured path, never a value. */
export function requireClaims(claims: JWTPayload, paths: readonly string[]): void {
  for (const path of paths) {
    const value = claimAt(claims, path);
    if (value === undefined || value === null || value === "") throw invalidToken(`claim_missing_${path}`);
  }
}
