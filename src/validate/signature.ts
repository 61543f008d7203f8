import { compactVerify, importJWK, type JWK } from "jose";
import type { Algorithm } from "../config/schema";
import { invalidToken } from "../errors/errors";
import { selectKey, toKeyRecord, unusableReason, type KeyRecord } from "./keys";
import { checkHeader, parseCompactHeader } from "./jws";

/**
 * The signature layer on its own: strict structure, header policy, key policy, key selection and the
 * signature, with no claim or `typ` checks. The gate runs the same steps inside `JwtVerifier`; this
 * entry point exists so external JOSE test vectors (Wycheproof, RFC 7515/7520/8037) can be run against
 * exactly that layer. Resolves to the verified payload bytes; rejects with a GateError.
 */
export async function verifySignatureLayer(
  token: string,
  jwks: { keys: unknown[] },
  algorithms: readonly Algorithm[],
): Promise<Uint8Array> {
  const header = parseCompactHeader(token);
  const alg = checkHeader(header, algorithms);
  const records: KeyRecord[] = [];
  for (const candidate of jwks.keys) {
    if (typeof candidate !== "object" || candidate === null || unusableReason(candidate as JWK)) continue;
    try {
      records.push(await toKeyRecord(candidate as JWK));
    } catch {
      // Malformed keys are skipped, as in a fetched JWKS.
    }
  }
  const record = selectKey(records, alg, header.kid);
  // selectKey only returns a key that fits `alg` (kty, crv, the key's own alg).
  if (!record) throw invalidToken("no_matching_key");
  try {
    const { payload } = await compactVerify(token, await importJWK(record.jwk, alg), { algorithms: [alg] });
    return payload;
  } catch {
    throw invalidToken("signature_invalid");
  }
}
