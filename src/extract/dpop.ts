import { invalidProof } from "../errors/errors";

/**
 * The `DPoP` request header (RFC 9449 section 4.1): exactly one proof, a compact JWS. Only the syntax is
 * checked here; validate/dpop.ts verifies it.
 */

/** Three base64url segments: a compact JWS (a JWE or an unsecured JWT with an empty signature are not proofs). */
const COMPACT_JWS = /^[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+$/;

/** The one proof sent with a DPoP-scheme token; 401 `invalid_dpop_proof` when absent, repeated or malformed. */
export function extractProof(headers: Pick<Headers, "get">, maxLength: number): string {
  const proof = headers.get("dpop");
  if (proof === null) throw invalidProof("dpop_proof_missing");
  // Two DPoP headers arrive joined by ", ": a JWS never contains a comma.
  if (proof.includes(",")) throw invalidProof("dpop_proof_multiple");
  if (proof.length > maxLength) throw invalidProof("dpop_proof_too_large");
  if (!COMPACT_JWS.test(proof)) throw invalidProof("dpop_proof_malformed");
  return proof;
}
