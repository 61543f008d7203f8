import { decodeJwt, decodeProtectedHeader, type JWTPayload, type ProtectedHeaderParameters } from "jose";
import type { Algorithm } from "../config/schema";
import { invalidToken } from "../errors/errors";

/**
 * Compact JWS structure checks, run before any key lookup or signature work. jose's base64url decoder is
 * forgiving (it skips whitespace and ignores non-canonical trailing bits), so each segment is checked here
 * against RFC 7515's strict alphabet first; decoding itself is left to jose.
 */

export interface UnverifiedJws {
  header: ProtectedHeaderParameters;
  /** Unverified: used only to choose the issuer whose keys must then verify the token. */
  claims: JWTPayload;
}

/** Structure and header only, for payloads that are not JWT claims sets (JOSE test vectors). */
export function parseCompactHeader(token: string): ProtectedHeaderParameters {
  checkStructure(token);
  try {
    return decodeProtectedHeader(token);
  } catch {
    throw invalidToken("malformed_token");
  }
}

/** Empty is the valid encoding of zero bytes; empty headers and signatures fail later checks. */
const BASE64URL = /^[A-Za-z0-9_-]*$/;
const ALPHABET = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";

/** True when `segment` is the one canonical unpadded base64url encoding of some byte string. */
export function isCanonicalBase64url(segment: string): boolean {
  if (!BASE64URL.test(segment)) return false;
  const remainder = segment.length % 4;
  if (remainder === 1) return false;
  if (remainder === 0) return true;
  // The last character carries 4 (remainder 2) or 2 (remainder 3) padding bits, which must be zero.
  const bits = ALPHABET.indexOf(segment[segment.length - 1]!);
  return (bits & (remainder === 2 ? 0x0f : 0x03)) === 0;
}

function checkStructure(token: string): void {
  const segments = token.split(".");
  // Five parts is a JWE: never decrypted here (jose CVE-2022-36083 class of work-before-auth).
  if (segments.length === 5) throw invalidToken("jwe_not_accepted");
  if (segments.length !== 3) throw invalidToken("malformed_token");
  if (!segments.every(isCanonicalBase64url)) throw invalidToken("malformed_token");
}

/** `header`: the protected header when the caller already decoded it (`compactJwsHeader`), to skip a decode. */
export function parseCompactJws(token: string, header?: ProtectedHeaderParameters): UnverifiedJws {
  checkStructure(token);
  try {
    return { header: header ?? decodeProtectedHeader(token), claims: decodeJwt(token) };
  } catch {
    throw invalidToken("malformed_token");
  }
}

/**
 * Header rules shared by every JWS we verify. The algorithm must be on the caller's allow-list (never
 * `none`, never chosen by the token alone); `crit` and `b64` name extensions we do not implement, so they
 * are refused (RFC 7515 4.1.11, RFC 7797). `jwk`, `jku`, `x5u` and `x5c` are ignored: keys only ever come
 * from the issuer's configuration.
 */
export function checkHeader(header: ProtectedHeaderParameters, algorithms: readonly Algorithm[]): Algorithm {
  const alg = header.alg as Algorithm;
  if (typeof header.alg !== "string" || !algorithms.includes(alg)) throw invalidToken("alg_not_allowed");
  if (header.crit !== undefined) throw invalidToken("crit_unsupported");
  if ("b64" in header) throw invalidToken("b64_unsupported");
  if (header.kid !== undefined && (typeof header.kid !== "string" || header.kid.length > 256)) throw invalidToken("kid_invalid");
  return alg;
}

/**
 * Is this token meant as a compact JWS (so it is validated as a JWT), or opaque (so it may be introspected)?
 * Three canonical base64url segments whose header decodes to an object with an `alg`: then the header is
 * returned, decoded once for both uses. (Five segments, a JWE, the caller refuses as a JWT rather than
 * sending it to an introspection endpoint.)
 */
export function compactJwsHeader(token: string, segments: readonly string[] = token.split(".")): ProtectedHeaderParameters | undefined {
  if (segments.length !== 3 || !isCanonicalBase64url(segments[0]!)) return undefined;
  try {
    const header = decodeProtectedHeader(token);
    return typeof header.alg === "string" ? header : undefined;
  } catch {
    return undefined;
  }
}
