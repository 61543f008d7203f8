import { base64url, calculateJwkThumbprint, importJWK, type JWK } from "jose";
import type { Algorithm } from "../config/schema";

/**
 * Key policy: which JWKS entries may verify which algorithm. The algorithm always comes from the issuer's
 * allow-list and must agree with everything the key says about itself (`kty`, `crv`, `alg`, `use`,
 * `key_ops`); the token header never widens it.
 */

/** A usable public key from a JWKS, with its RFC 7638 thumbprint (computed once per key set load). */
export interface KeyRecord {
  jwk: JWK;
  kid: string | undefined;
  thumbprint: string;
}

const CURVE: Partial<Record<Algorithm, string>> = { ES256: "P-256", ES384: "P-384", ES512: "P-521" };

function expectedKty(alg: Algorithm): "RSA" | "EC" | "OKP" | "oct" {
  if (alg.startsWith("RS") || alg.startsWith("PS")) return "RSA";
  if (alg.startsWith("ES")) return "EC";
  if (alg.startsWith("HS")) return "oct";
  return "OKP";
}

/** Why a JWKS entry can never be used, or undefined if it may verify some algorithm. */
export function unusableReason(jwk: JWK): string | undefined {
  if (jwk.kty === "oct") return "symmetric_key_in_jwks";
  if (jwk.kty !== "RSA" && jwk.kty !== "EC" && jwk.kty !== "OKP") return "unsupported_kty";
  if ("d" in jwk || "p" in jwk || "k" in jwk) return "private_material";
  if (jwk.use !== undefined && jwk.use !== "sig") return "not_for_signatures";
  if (jwk.key_ops !== undefined && (!Array.isArray(jwk.key_ops) || !jwk.key_ops.includes("verify"))) return "no_verify_op";
  if (jwk.kid !== undefined && typeof jwk.kid !== "string") return "bad_kid";
  if (jwk.kty === "RSA") return weakRsaReason(jwk);
  if (jwk.kty === "OKP" && jwk.crv !== "Ed25519") return "unsupported_curve";
  if (jwk.kty === "EC" && !["P-256", "P-384", "P-521"].includes(jwk.crv ?? "")) return "unsupported_curve";
  return undefined;
}

/** WebCrypto accepts e = 1, with which any signature "verifies": check modulus size and exponent. */
function weakRsaReason(jwk: JWK): string | undefined {
  if (typeof jwk.n !== "string" || typeof jwk.e !== "string") return "malformed_rsa";
  let n: Uint8Array;
  let e: Uint8Array;
  try {
    n = base64url.decode(jwk.n);
    e = base64url.decode(jwk.e);
  } catch {
    return "malformed_rsa";
  }
  const first = n.findIndex((byte) => byte !== 0);
  if (first < 0) return "weak_rsa";
  const bits = (n.length - first - 1) * 8 + (32 - Math.clz32(n[first]!));
  if (bits < 2048) return "weak_rsa";
  const exponent = e.reduce((value, byte) => value * 256n + BigInt(byte), 0n);
  if (exponent < 3n || exponent % 2n === 0n) return "weak_rsa";
  return undefined;
}

/** May this (already usable) key verify `alg`? */
export function keyFitsAlgorithm(jwk: JWK, alg: Algorithm): boolean {
  if (jwk.kty !== expectedKty(alg)) return false;
  const curve = CURVE[alg];
  if (curve && jwk.crv !== curve) return false;
  if (jwk.alg === undefined) return true;
  // "EdDSA" and the fully-specified "Ed25519" (RFC 9864) name the same thing for an Ed25519 key.
  const family = (a: string) => (a === "Ed25519" ? "EdDSA" : a);
  return family(jwk.alg) === family(alg);
}

export async function toKeyRecord(jwk: JWK): Promise<KeyRecord> {
  return { jwk, kid: jwk.kid, thumbprint: await calculateJwkThumbprint(jwk, "sha256") };
}

/**
 * Imported keys per isolate, by issuer + thumbprint + algorithm: imports are the costly part of a cold
 * verification. Only settled keys are shared; a pending import is never awaited by another request, since
 * workerd does not let one request's promise resolve another's continuation (jose #355, #509).
 * Bounded so a key-churning issuer cannot grow it without limit.
 */
export class ImportedKeys {
  readonly #keys = new Map<string, CryptoKey>();
  constructor(private readonly limit = 256) {}

  async get(issuer: string, record: KeyRecord, alg: Algorithm): Promise<CryptoKey> {
    const id = `${issuer}\n${record.thumbprint}\n${alg}`;
    const cached = this.#keys.get(id);
    if (cached) return cached;
    const key = (await importJWK(record.jwk, alg)) as CryptoKey;
    if (this.#keys.size >= this.limit) this.#keys.clear();
    this.#keys.set(id, key);
    return key;
  }
}
