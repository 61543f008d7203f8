import { compactDecrypt, decodeProtectedHeader, importJWK, type JWK } from "jose";
import type { IssuerConfig } from "../config/schema";
import { GateError, invalidToken } from "../errors/errors";
import { SecretKeyRings } from "../lib/secret-keys";
import { isCanonicalBase64url } from "./jws";

/**
 * Encrypted access tokens (nested JWT: a compact JWE whose plaintext is the signed JWT). Everything that
 * could cost work is refused from the header alone, before any key is touched: an algorithm outside the
 * issuer's allow-lists (so PBES2, with its attacker-chosen iteration count, never runs: jose
 * CVE-2022-36083), compression (`zip`: decompression bombs, CVE-2024-28176), a content type other than JWT.
 * A token decrypted with one issuer's key must then be a JWT from that same issuer.
 */

interface DecryptionKey {
  kid: string | undefined;
  alg: string;
  key: CryptoKey;
}

/** Parsed decryption keys by secret text (the secret is read per request, parsed once). */
const secrets = new SecretKeyRings<DecryptionKey[]>({
  missing: () => new GateError("server_error", "decryption_key_missing"),
  invalid: () => new GateError("server_error", "decryption_key_invalid"),
});

/** The issuer's decryption keys: every one must name an `alg` the issuer allows. */
function decryptionKeys(issuer: IssuerConfig, jwks: JWK[]): Promise<DecryptionKey[]> {
  return Promise.all(
    jwks.map(async (jwk) => {
      if (typeof jwk.alg !== "string" || !(issuer.decryption!.key_management as readonly string[]).includes(jwk.alg)) {
        throw new Error("decryption key without an allowed alg");
      }
      return { kid: jwk.kid, alg: jwk.alg, key: (await importJWK(jwk, jwk.alg)) as CryptoKey };
    }),
  );
}

/** The plaintext JWT inside a JWE, and the issuer whose key opened it; 401 when none can. */
export async function decryptNested(
  token: string,
  issuers: readonly IssuerConfig[],
  binding: (name: string) => unknown,
): Promise<{ jwt: string; issuer: IssuerConfig }> {
  const segments = token.split(".");
  // The encrypted key is empty for direct key agreement (ECDH-ES); every other part must be there.
  if (segments.length !== 5 || !segments.every(isCanonicalBase64url) || segments.some((part, i) => part === "" && i !== 1)) {
    throw invalidToken("malformed_token");
  }
  let header: Record<string, unknown>;
  try {
    header = decodeProtectedHeader(token) as Record<string, unknown>;
  } catch {
    throw invalidToken("malformed_token");
  }
  if ("zip" in header) throw invalidToken("jwe_compressed");
  if ("p2s" in header || "p2c" in header) throw invalidToken("jwe_pbes2");
  if (header.crit !== undefined) throw invalidToken("crit_unsupported");
  if (header.cty !== undefined && (typeof header.cty !== "string" || header.cty.toUpperCase() !== "JWT")) throw invalidToken("jwe_not_nested_jwt");
  const { alg, enc } = header;
  if (typeof alg !== "string" || typeof enc !== "string") throw invalidToken("malformed_token");

  const able = issuers.filter(
    (issuer) =>
      (issuer.decryption?.key_management as readonly string[] | undefined)?.includes(alg) &&
      (issuer.decryption?.content_encryption as readonly string[] | undefined)?.includes(enc),
  );
  if (!able.length) throw invalidToken("jwe_alg_not_allowed");
  for (const issuer of able) {
    const keys = await secrets.load(binding(issuer.decryption!.keys), (jwks) => decryptionKeys(issuer, jwks));
    for (const candidate of keys) {
      if (candidate.alg !== alg || (header.kid !== undefined && candidate.kid !== header.kid)) continue;
      try {
        const { plaintext } = await compactDecrypt(token, candidate.key, { keyManagementAlgorithms: [alg], contentEncryptionAlgorithms: [enc] });
        return { jwt: new TextDecoder().decode(plaintext), issuer };
      } catch {
        // Not this key: try the next one.
      }
    }
  }
  throw invalidToken("jwe_undecryptable");
}
