import type { JWTPayload } from "jose";
import { invalidToken } from "../errors/errors";
import { claimAt } from "../lib/claim-path";

/**
 * Claim checks every validation path makes (JWTs, JWE-wrapped JWTs, introspection and provider answers):
 * the token must be an access token of this issuer, not an ID token, with a confirmation (`cnf`) only of a
 * kind the gate can check, and it must carry the issuer's `required_claims`.
 */

/** OpenID Connect Core 1.0 2, 3.1.3.6, 3.3.2.11: claims only an ID token carries. */
export const ID_TOKEN_CLAIMS = ["nonce", "at_hash", "c_hash", "s_hash"] as const;

/**
 * RFC 9449 (DPoP) / RFC 8705 (mTLS): a `cnf` claim binds the token to a key its holder must prove. Any
 * `cnf` at all is refused where the binding cannot be checked (provider answers: `refuseSenderConstrained`).
 */
export function refuseSenderConstrained(claims: object): void {
  if (Object.hasOwn(claims, "cnf")) throw invalidToken("token_sender_constrained");
}

/** The confirmation members the gate can check: RFC 9449 `jkt`, RFC 8705 `x5t#S256` (base64url SHA-256 each). */
export interface Confirmation {
  jkt?: string;
  "x5t#S256"?: string;
}

const SHA256_BASE64URL = /^[A-Za-z0-9_-]{43}$/;

/**
 * The token's `cnf`, when it has one of a form the gate checks: an object whose members are only `jkt`
 * and/or `x5t#S256`, each a base64url SHA-256 value. Anything else (another member such as `jwk` or
 * `kid`, an array, a string, null, an empty object) is refused: a confirmation method we do not know is
 * still one we cannot check. Whether a known binding is accepted is the sender-constraint check's
 * decision (validate/sender.ts), made for every request.
 */
export function confirmationOf(claims: object): Confirmation | undefined {
  if (!Object.hasOwn(claims, "cnf")) return undefined;
  const cnf = (claims as { cnf?: unknown }).cnf;
  if (typeof cnf !== "object" || cnf === null || Array.isArray(cnf)) throw invalidToken("token_sender_constrained");
  const members = Object.entries(cnf);
  const known = members.length > 0 && members.every(([name, value]) => (name === "jkt" || name === "x5t#S256") && typeof value === "string" && SHA256_BASE64URL.test(value));
  if (!known) throw invalidToken("token_sender_constrained");
  return cnf as Confirmation;
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
