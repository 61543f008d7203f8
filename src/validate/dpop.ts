import { calculateJwkThumbprint, decodeProtectedHeader, EmbeddedJWK, jwtVerify, type JWK, type JWTPayload } from "jose";
import { JWSSignatureVerificationFailed, JWTExpired } from "jose/errors";
import type { IssuerConfig } from "../config/schema";
import { GateError, invalidProof } from "../errors/errors";
import { secretText } from "../lib/bindings";
import { sha256Base64url } from "../lib/digest";
import { checkNonce, issueNonce } from "../lib/nonce";

/**
 * DPoP proof verification (RFC 9449 section 4.3), every JOSE step through jose: a JWS of `typ` dpop+jwt,
 * signed with an allowed asymmetric algorithm by the public `jwk` in its own header; `htm` the request's
 * method, `htu` the URL the gate authorizes (the caller says which: `sameTarget`), `iat` within the window,
 * `ath` the SHA-256 of the access token, and, when the issuer uses nonces, a nonce of this gate. What the
 * proof proves is returned: the RFC 7638 thumbprint of its key, its `jti` and until when it is acceptable.
 * Whether the key matches the token's `cnf.jkt` and whether the `jti` is new are decided by sender.ts.
 */

export type DpopSettings = IssuerConfig["dpop"];

export interface ProofRequest {
  /** The method the gate authorizes (and forwards). */
  method: string;
  /** Whether an `htu` (already parsed, without query and fragment) names the URL the gate authorizes. */
  sameTarget: (htu: URL) => boolean;
  /** The access token the proof must be bound to (`ath`). */
  token: string;
  now: number;
}

export interface VerifiedProof {
  /** RFC 7638 SHA-256 thumbprint of the proof key (base64url). */
  jkt: string;
  jti: string;
  /** Epoch ms after which this proof is refused by its `iat` anyway: how long its `jti` must be remembered. */
  acceptableUntil: number;
}

/** JWK members only a private (or symmetric) key has (RFC 7518 section 6). */
const PRIVATE_MEMBERS = ["d", "p", "q", "dp", "dq", "qi", "oth", "k"];

/** `checkNonce` false: the nonce is not checked (explain without the nonce secret lists it as not checked). */
export async function verifyProof(proof: string, issuer: IssuerConfig, request: ProofRequest, binding: (name: string) => unknown, checkNonce = true): Promise<VerifiedProof> {
  const settings = issuer.dpop;
  const jwk = checkHeader(proof, settings);
  const payload = await verifySignature(proof, settings, issuer.clock_tolerance, request.now);
  const slack = settings.iat_window + issuer.clock_tolerance;
  if (typeof payload.jti !== "string" || payload.jti === "" || payload.jti.length > 256) throw invalidProof("dpop_proof_jti");
  if (payload.htm !== request.method) throw invalidProof("dpop_proof_htm_mismatch");
  if (!sameHtu(payload.htu, request.sameTarget)) throw invalidProof("dpop_proof_htu_mismatch");
  if (typeof payload.iat !== "number" || !Number.isFinite(payload.iat) || Math.abs(payload.iat - request.now / 1000) > slack) throw invalidProof("dpop_proof_iat_outside_window");
  if (typeof payload.ath !== "string" || payload.ath !== (await sha256Base64url(request.token))) throw invalidProof(payload.ath === undefined ? "dpop_proof_ath_missing" : "dpop_proof_ath_mismatch");
  if (settings.nonce && checkNonce) await checkProofNonce(payload.nonce, settings.nonce, issuer.issuer, request.now, binding);
  return { jkt: await calculateJwkThumbprint(jwk, "sha256"), jti: payload.jti, acceptableUntil: (payload.iat + slack) * 1000 };
}

/** `typ`, `alg` and `jwk`, checked before any key is imported: each refusal with its own reason. */
function checkHeader(proof: string, settings: DpopSettings): JWK {
  let header: ReturnType<typeof decodeProtectedHeader>;
  try {
    header = decodeProtectedHeader(proof);
  } catch {
    throw invalidProof("dpop_proof_malformed");
  }
  // Exactly `dpop+jwt` (section 4.2), not a media type spelling of it.
  if (header.typ !== "dpop+jwt") throw invalidProof("dpop_proof_typ");
  if (typeof header.alg !== "string" || !(settings.algorithms as readonly string[]).includes(header.alg)) throw invalidProof("dpop_proof_alg_not_allowed");
  const jwk = header.jwk;
  if (typeof jwk !== "object" || jwk === null || Array.isArray(jwk)) throw invalidProof("dpop_proof_jwk_missing");
  if (PRIVATE_MEMBERS.some((member) => Object.hasOwn(jwk, member))) throw invalidProof("dpop_proof_jwk_private");
  return jwk;
}

async function verifySignature(proof: string, settings: DpopSettings, clockTolerance: number, now: number): Promise<JWTPayload> {
  try {
    const { payload } = await jwtVerify(proof, EmbeddedJWK, { typ: "dpop+jwt", algorithms: [...settings.algorithms], currentDate: new Date(now), clockTolerance });
    return payload;
  } catch (error) {
    if (error instanceof JWSSignatureVerificationFailed) throw invalidProof("dpop_proof_signature_invalid");
    if (error instanceof JWTExpired) throw invalidProof("dpop_proof_expired");
    throw invalidProof("dpop_proof_invalid");
  }
}

/**
 * `htu` (section 4.2) is the target URI without query and fragment: a proof that has either is not one
 * (refused, not trimmed). The rest is compared in the gate's canonical form (`sameTarget`).
 */
function sameHtu(htu: unknown, sameTarget: (htu: URL) => boolean): boolean {
  if (typeof htu !== "string" || htu.includes("?") || htu.includes("#")) return false;
  let url: URL;
  try {
    url = new URL(htu);
  } catch {
    return false;
  }
  return sameTarget(url);
}

/**
 * Section 9: a nonce the gate issued (lib/nonce.ts, bound to the issuer), else 401 `use_dpop_nonce` with
 * a fresh one in `DPoP-Nonce`.
 */
async function checkProofNonce(nonce: unknown, settings: NonNullable<DpopSettings["nonce"]>, context: string, now: number, binding: (name: string) => unknown): Promise<void> {
  const secret = nonceSecret(settings, binding);
  if (await checkNonce(secret, context, settings.lifetime, now, nonce)) return;
  const fresh = await issueNonce(secret, context, settings.lifetime, now);
  throw new GateError("use_dpop_nonce", nonce === undefined ? "dpop_nonce_missing" : "dpop_nonce_invalid", { nonce: fresh });
}

/** The nonce secret (at least 32 characters); missing or short is a deployment error (500). */
export function nonceSecret(settings: NonNullable<DpopSettings["nonce"]>, binding: (name: string) => unknown): string {
  const secret = secretText(binding(settings.secret));
  if (secret === undefined || secret.length < 32) throw new GateError("server_error", "dpop_nonce_secret_missing");
  return secret;
}
